"""Bayesian inference: NumPyro models of galaxies and of populations of gradients."""

# Forward-model inference (single galaxy, hierarchy, emcee reference, SBC).
from jaxgrad.inference.data import DataWarning, GalaxyData, Obs, pad_to
from jaxgrad.inference.galaxy import BranchWarning, FitResult, build_galaxy_model, fit_galaxy, galaxy_model
from jaxgrad.inference.likelihood import line_scatter, log_likelihood
from jaxgrad.inference.priors import SoftUniform, default_priors
from jaxgrad.inference.sampler import ConvergenceWarning, DivergenceWarning, diagnose, ess_bulk, flatten_model, make_nuts, run_nuts
from jaxgrad.inference.simulate import simulate_galaxy
from jaxgrad.inference.population import PopulationResult, fit_population, population_model
from jaxgrad.inference.emcee_ref import EmceeResult, run_emcee
from jaxgrad.inference.binned import binned_profile_model, make_binned_data, method1_numpyro, paper_b_numpyro
from jaxgrad.inference.sbc import SBCResult, rank_uniformity, run_sbc
from jaxgrad.inference import sbc  # noqa: E402  (module: jaxgrad.inference.sbc.run_sbc, ...)
