"""Observer pipeline: measure metallicity gradients from cubes and line maps as the papers do.

Paper A's chain (Lee et al.; docs/science.md §5–§7) and Paper B's alternatives (Li et al.):

* :mod:`~jaxgrad.pipeline.geometry` — centre, b/a, PA from a 2-D Gaussian fit (vmappable);
* :mod:`~jaxgrad.pipeline.psf_match` — PSF homogenisation to the reddest line's PSF;
* :mod:`~jaxgrad.pipeline.annuli` — elliptical annuli, summed fluxes/spectra, moving-RMS
  error spectra, outer radius;
* :mod:`~jaxgrad.pipeline.linefit` — Gaussian line fits with shared redshift and width,
  tied doublets, optional broad components, Jacobian errors (vmappable);
* :mod:`~jaxgrad.pipeline.voronoi` — Voronoi binning to a target S/N;
* :mod:`~jaxgrad.pipeline.metallicity` — Method I (gridded exact posterior), Method II
  (per-diagnostic inversion), Paper B's joint likelihood, Balmer-decrement dust;
* :mod:`~jaxgrad.pipeline.gradient` — WLS gradients, Method II median, azimuthal bins;
* :mod:`~jaxgrad.pipeline.sampling` — NumPyro and emcee versions (Method I, Paper B,
  gradient fits);
* :mod:`~jaxgrad.pipeline.core` / :mod:`~jaxgrad.pipeline.batched` — the fixed-shape
  per-galaxy chain and its jitted, vmapped batch version for mock suites;
* :mod:`~jaxgrad.pipeline.measure` — :func:`measure_cube` / :func:`measure_maps`, the
  validated one-call entry points returning a :class:`PipelineResult`.
"""

from jaxgrad.pipeline import (
    annuli,
    batched,
    core,
    diagnostics,
    geometry,
    gradient,
    linefit,
    metallicity,
    psf_match,
    sampling,
    voronoi,
)
from jaxgrad.pipeline.batched import (
    BatchedGradients,
    batched_gradient_from_cubes,
    batched_gradient_from_maps,
)
from jaxgrad.pipeline.geometry import Geometry, fit_gaussian_2d, make_geometry
from jaxgrad.pipeline.gradient import (
    GradientFit,
    azimuthal_gradients,
    method2_gradient,
    wls_gradient,
)
from jaxgrad.pipeline.linefit import LineFitSpec, fit_spectrum, make_linefit_spec
from jaxgrad.pipeline.measure import PipelineResult, measure_cube, measure_maps
from jaxgrad.pipeline.metallicity import (
    MetallicitySpec,
    make_metallicity_spec,
    method1_grid,
    method2_inversion,
    paper_b_loglike,
)
from jaxgrad.pipeline.sampling import (
    fit_gradient_emcee,
    fit_gradient_numpyro,
    method1_numpyro,
    paper_b_numpyro,
)
from jaxgrad.pipeline.voronoi import voronoi_bins

__all__ = [
    "BatchedGradients", "Geometry", "GradientFit", "LineFitSpec", "MetallicitySpec",
    "PipelineResult", "annuli", "azimuthal_gradients", "batched", "batched_gradient_from_cubes",
    "batched_gradient_from_maps", "core", "diagnostics", "fit_gaussian_2d", "fit_gradient_emcee",
    "fit_gradient_numpyro", "fit_spectrum", "geometry", "gradient", "linefit",
    "make_geometry", "make_linefit_spec", "make_metallicity_spec", "measure_cube",
    "measure_maps", "metallicity", "method1_grid", "method1_numpyro", "method2_gradient",
    "method2_inversion", "paper_b_loglike", "paper_b_numpyro", "psf_match", "sampling",
    "voronoi", "voronoi_bins", "wls_gradient",
]
