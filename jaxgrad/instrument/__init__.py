"""Instrument: pixel and spectral grids, PSF kernels, convolution, LSF and noise.

Knows nothing about galaxies: every function maps arrays to arrays.
"""

from jaxgrad.instrument import convolve, grid, noise, psf

__all__ = ["convolve", "grid", "noise", "psf"]
