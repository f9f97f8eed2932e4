"""Measuring mocks with the observer pipeline, batched on the same device as generation.

Every mock goes through :mod:`jaxgrad.pipeline`'s jitted chain (geometry fit, PSF-HWHM
elliptical annuli, summed spectra + line fits for cubes or summed fluxes for maps, Method I
gridded posterior per annulus) and then a WLS gradient through the annuli, with the
suite's design rules (issue 20, :mod:`jaxgrad.mocks.spec`):

* only annuli inside the measured extent r_ext(∇Z), where the intrinsic profile lies in
  every used diagnostic's valid range;
* each annulus summarised by ``spec.estimator`` (mode / median / mean of Method I's
  posterior) and weighted by the likelihood's own width (:func:`method1_fisher_err`),
  never by a width that a range edge has truncated;
* an annulus whose posterior mode sits at a range edge (the likelihood peaks outside the
  valid range) is flagged and left out, and so is one whose posterior has two peaks
  (e.g. R3 alone where [OII] drops below S/N 2.5 in the outer annuli: a peak on each
  branch and nothing picks one; :func:`method1_flags`); the counts are stored.

Columns:

* ``grad_meas``, ``grad_err``, ``z0_meas``: the suite's gradient (spec.estimator);
* ``grad_meas_mode``, ``grad_meas_median``, ``grad_meas_mean``: the three summaries
  (the systematic between them is part of the suite's report);
* ``grad_meas_posterior_width``: spec.estimator weighted by the posterior's own
  16–84 % half-width, edge annuli kept (the weighting the rules above replace);
* ``grad_meas_noinner`` / ``grad_meas_cap3re``: without the innermost annulus / only
  annuli within 3 R_e;
* ``grad2_meas``: Method II (median of per-diagnostic gradients);
* ``n_bins``, ``n_saturated``, ``n_ambiguous``, ``n_truncated``, ``r_outer_kpc``, ``measurable``,
  ``annulus_width_arcsec``.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.mocks.generate import MockBatch, model_spec
from jaxgrad.mocks.spec import SuiteSpec

N_ANNULI = 12
# On CPU the chain runs over chunks of this many mocks (a compiled loop): the line fits'
# grid intermediates then stay in cache, ~1.5x faster than one vmap over a 100-mock batch.
# Accelerators take the whole batch at once.
CPU_CHUNK = 10


def _chunk():
    return CPU_CHUNK if jax.default_backend() == "cpu" else None


@lru_cache(maxsize=16)
def _chain(suite: SuiteSpec):
    from jaxgrad.pipeline import batched as pb

    spec = model_spec(suite)
    diags = suite.diagnostics()
    # Measure with exactly the diagnostics the forward model used to set the line ratios:
    # a calibration's other diagnostics are separate fits (e.g. Sanders+24 O32 is not
    # R3 - O2), so mixing them in would bias Method I even for noiseless mocks.
    # Every mock has one PSF for all its channels/maps, so PSF homogenisation is the
    # identity (a zero-width kernel): skip it, as batched_gradient_from_* does for such data.
    kw = dict(calibration=suite.calibration, n_annuli=N_ANNULI, warn=False, diagnostics=diags,
              homogenise=False)
    if suite.mode == "cube":
        centres = spec.channel_centers()
        lf = pb.linefit_spec_for(suite.lines, centres, sigma_init_kms=float(np.hypot(suite.sigma0, suite.lsf_sigma)))
        cspec, _ = pb.make_chain_spec(suite.lines, suite.pixel_scale, suite.ny, suite.nx, linefit=lf,
                                      n_chan=spec.n_chan, has_err_cube=True, **kw)
        fn = pb.batched_cubes_fn(cspec, _chunk())
    else:
        centres = None
        cspec, _ = pb.make_chain_spec(suite.lines, suite.pixel_scale, suite.ny, suite.nx, **kw)
        fn = pb.batched_maps_fn(cspec, _chunk())
    return fn, centres, cspec.met


def _wls_many(r, y, e, mask):
    from jaxgrad.pipeline.gradient import wls_gradient

    return jax.vmap(wls_gradient)(r, y, e, mask)


@lru_cache(maxsize=16)
def _measure_fn(suite: SuiteSpec):
    """The whole measurement (inputs, chain, variant fits) as one jitted function."""
    from jaxgrad.pipeline import metallicity as _met
    from jaxgrad.pipeline.batched import batch_options, centred_face_on

    fn, centres, met = _chain(suite)
    per_bin = jax.vmap(jax.vmap(lambda m, z: _met.method1_fisher_err(m, met, z)))
    flags = jax.vmap(jax.vmap(lambda m: _met.method1_flags(m, met)))

    def run(data, sigma, psf_fwhm, z, extent_kpc):
        B = data.shape[0]
        dtype = data.dtype
        # one σ per mock: an error "cube" of shape [B, C, 1, 1] (the chain broadcasts it)
        errs = jnp.broadcast_to(sigma[:, None, None, None], data.shape[:2] + (1, 1)).astype(dtype)
        n_img = data.shape[1]
        fwhm = jnp.broadcast_to(psf_fwhm[:, None], (B, n_img)).astype(dtype)
        q = jnp.ones((B,), dtype)
        geom = centred_face_on(B, dtype)
        opts = batch_options(B, max_radius_kpc=None, outer_snr=3.0, radius_mode="midpoint", dtype=dtype)
        opts = opts._replace(max_radius_kpc=extent_kpc.astype(dtype))  # annuli inside r_ext only
        z = z.astype(dtype)
        if centres is not None:
            out = fn(data, errs, jnp.asarray(centres, dtype), z, fwhm, q, geom, opts)
        else:
            out = fn(data, errs, z, fwhm, q, geom, opts)
        bins = out.bins
        m1 = bins.m1
        inside = bins.valid & m1.measurable & jnp.isfinite(m1.median)
        saturated, truncated, ambiguous = flags(m1)
        use = inside & ~saturated & ~ambiguous
        r = bins.radius
        summary = {"mode": m1.mode, "median": m1.median, "mean": m1.mean}
        fits = {k: _wls_many(r, v, per_bin(m1, v), use) for k, v in summary.items()}
        y = summary[suite.estimator]
        e = per_bin(m1, y)
        main = fits[suite.estimator]
        first = jnp.argmax(use, axis=1)
        not_inner = use & (jnp.arange(use.shape[1])[None, :] != first[:, None])
        return {
            "grad_meas": main.grad, "grad_err": main.grad_err, "z0_meas": main.z0,
            "grad_meas_mode": fits["mode"].grad, "grad_meas_median": fits["median"].grad,
            "grad_meas_mean": fits["mean"].grad,
            "grad_meas_posterior_width": _wls_many(r, y, m1.err, inside).grad,
            "grad_meas_noinner": _wls_many(r, y, e, not_inner).grad,
            "grad_meas_cap3re": _wls_many(r, y, e, use & (r <= 3.0 * suite.r_e)).grad,
            "grad2_meas": out.method2.grad, "n_bins": main.n,
            "n_saturated": jnp.sum(inside & saturated, axis=1),
            "n_ambiguous": jnp.sum(inside & ambiguous & ~saturated, axis=1),
            "n_truncated": jnp.sum(inside & truncated, axis=1),
            "r_outer_kpc": jnp.max(jnp.where(use, r, 0.0), axis=1),
            "measurable": main.valid, "annulus_width_arcsec": out.width,
            # per annulus [B, K] (returned by measure_batch(..., annuli=True); not stored)
            "annulus_radius_kpc": r, "annulus_logoh": y, "annulus_err": e, "annulus_used": use,
        }

    return jax.jit(run)


def measure_batch_jax(batch: MockBatch, suite: SuiteSpec) -> dict[str, jax.Array]:
    """Measure a batch (JAX arrays in, JAX arrays out; no host transfer of the data)."""
    return _measure_fn(suite)(batch.data, batch.sigma, batch.params.psf_fwhm, batch.params.z,
                              batch.extent_kpc)


def measure_batch(batch: MockBatch, suite: SuiteSpec, annuli: bool = False) -> dict[str, np.ndarray]:
    """:func:`measure_batch_jax` returning NumPy arrays: the per-mock columns a suite
    stores, plus the per-annulus ``annulus_*`` arrays ``[B, K]`` with ``annuli=True``."""
    return {k: np.asarray(v) for k, v in measure_batch_jax(batch, suite).items()
            if annuli or not k.startswith("annulus_")}
