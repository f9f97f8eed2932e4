"""Binned (annulus) models: per-bin samplers from the pipeline, and a gradient model.

Per-bin metallicity models already live in the observer pipeline and are re-exported
here rather than written twice:

* :func:`method1_numpyro` — Paper A's Method I per bin, NumPyro
  (:func:`jaxgrad.pipeline.sampling.method1_numpyro`);
* :func:`paper_b_numpyro` — Paper B's per-bin (log Z, A_V, f_Hβ) model
  (:func:`jaxgrad.pipeline.sampling.paper_b_numpyro`).

:func:`binned_profile_model` goes one step further on the same binned data: Paper B's
per-bin likelihood (:func:`jaxgrad.pipeline.metallicity.paper_b_loglike`) with
12+log(O/H) of bin b tied to a straight line, log Z_b = Z0 + ∇Z r_b, one galaxy-wide
A_V and a free Hβ flux per bin — the binned analogue of the forward model without the
PSF (so it inherits the beam-smearing bias of annulus data). It is the cheap target the
benchmark and the NUTS-vs-emcee test use.

Geometry: fluxes are divided by a per-bin scale (the bin's largest flux) and the Hβ
flux of each bin is sampled as ln(f_Hβ / scale) ~ Normal(0, 2) — additive with the log
line ratios; the radius enters through a pivot r̄ (mean bin radius), Z0 is sampled as
Z(r̄) so Z and ∇Z are nearly uncorrelated, and Z0 is recorded as a deterministic site.

The pipeline is imported lazily (inference does not need it to import).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from jaxgrad.inference.priors import SOFTNESS_DEX, SoftUniform

__all__ = ["BinnedData", "binned_profile_model", "make_binned_data", "method1_numpyro",
           "paper_b_numpyro"]


def method1_numpyro(*args, **kwargs):
    """Re-export of :func:`jaxgrad.pipeline.sampling.method1_numpyro` (see there)."""
    from jaxgrad.pipeline.sampling import method1_numpyro as f

    return f(*args, **kwargs)


def paper_b_numpyro(*args, **kwargs):
    """Re-export of :func:`jaxgrad.pipeline.sampling.paper_b_numpyro` (see there)."""
    from jaxgrad.pipeline.sampling import paper_b_numpyro as f

    return f(*args, **kwargs)


class BinnedData(NamedTuple):
    """Annulus data for :func:`binned_profile_model` (arrays; dynamic model argument).

    Attributes:
        radius: bin radii ``[B]``, kpc.
        flux: line fluxes ``[B, L]`` divided by ``scale`` (lines as the spec's).
        err: 1σ errors ``[B, L]``, same scaling.
        scale: per-bin flux scale ``[B]`` (the bin's largest flux).
        r_pivot: pivot radius (kpc), the mean bin radius.
    """

    radius: jax.Array
    flux: jax.Array
    err: jax.Array
    scale: jax.Array
    r_pivot: jax.Array


def make_binned_data(radius, flux, err, dtype=None) -> BinnedData:
    """Validate and scale annulus fluxes ``[B, L]`` (1e-18 erg/s/cm²) at radii ``[B]`` (kpc)."""
    r = np.asarray(radius, float)
    f = np.asarray(flux, float)
    e = np.asarray(err, float)
    if r.ndim != 1 or f.shape != (r.size, f.shape[-1]) or e.shape != f.shape:
        raise ValueError(f"need radius [B], flux and err [B, L]; got {r.shape}, {f.shape}, {e.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(f)) and np.all(np.isfinite(e)) and np.all(e > 0)):
        raise ValueError("radius, flux and err must be finite and err > 0")
    scale = np.max(np.abs(f), axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    dtype = dtype or jnp.result_type(float)
    a = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return BinnedData(a(r), a(f / scale[:, None]), a(e / scale[:, None]), a(scale), a(r.mean()))


def binned_profile_model(data: BinnedData, met_spec, *, grad_sd: float = 0.5, av_max=None,
                         z_range=None):
    """NumPyro model: linear log Z(r) through annuli with Paper B's per-bin likelihood.

    Args:
        data: :class:`BinnedData`.
        met_spec: :class:`jaxgrad.pipeline.metallicity.MetallicitySpec` (lines,
            calibration, scatter, S/N cut, dust law) — static.
        grad_sd: σ of the Normal(0, σ) prior on ∇Z, dex/kpc.
        av_max: if given, A_V ~ Uniform(0, av_max) is sampled; else A_V = 0 (de-reddened
            data, as in Paper A's mocks).
        z_range: (lo, hi) of the SoftUniform prior on log Z at the pivot radius
            (default: the spec's grid).

    Sites: ``logoh_pivot``, ``grad_z``, ``ln_fhb`` ``[B]``, (``av``); deterministic
    ``logoh0``.
    """
    from jaxgrad.pipeline.metallicity import paper_b_loglike

    lo, hi = z_range if z_range is not None else met_spec.grid[:2]
    zp = numpyro.sample("logoh_pivot", SoftUniform(lo, hi, SOFTNESS_DEX))
    g = numpyro.sample("grad_z", dist.Normal(0.0, grad_sd))
    nb = data.radius.shape[0]
    with numpyro.plate("bin", nb):
        lnf = numpyro.sample("ln_fhb", dist.Normal(0.0, 2.0))
    av = numpyro.sample("av", dist.Uniform(0.0, av_max)) if av_max is not None else 0.0
    numpyro.deterministic("logoh0", zp - g * data.r_pivot)
    z = zp + g * (data.radius - data.r_pivot)
    av_b = jnp.broadcast_to(jnp.asarray(av, data.flux.dtype), (nb,))
    ll = jax.vmap(lambda zb, a, f, fl, e: paper_b_loglike(zb, a, f, fl, e, met_spec))(
        z, av_b, jnp.exp(lnf), data.flux, data.err)
    numpyro.factor("loglik", jnp.sum(ll))
