"""Bayesian inference: NumPyro models of galaxies and of populations of gradients."""
