"""Mock data for tests, benchmarks and simulation-based calibration.

:func:`simulate_galaxy` renders the forward model and adds Gaussian noise of one
constant σ for all lines, set so that the brightest line has mean S/N ``snr`` within
R_e (the convention of Paper A's mock suite, docs/science.md §7). Optionally an intrinsic
calibration scatter is simulated too (``sigma_ln``): each model flux is multiplied by
exp(s ln10 · N(0, 1)) independently per pixel and line — the log-normal scatter the
likelihood's scatter term linearises.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.forward import (
    GalaxyParams,
    ModelSpec,
    check_sampling,
    radius_map,
    validate_params,
)
from jaxgrad.inference.data import GalaxyData
from jaxgrad.inference.likelihood import predict
from jaxgrad.instrument.noise import noise_sigma_for_snr

__all__ = ["INFERRED", "noise_level", "simulate_galaxy", "simulate_planes"]

# parameters fitted by default; everything else is passed on as "known"
INFERRED = ("logoh0", "grad_z", "flux_hb", "r_e", "sersic_n")


@partial(jax.jit, static_argnums=(1, 3))
def noise_level(params: GalaxyParams, spec: ModelSpec, snr: float, kind: str = "maps"):
    """σ giving the brightest plane mean S/N = ``snr`` inside R_e (traceable)."""
    model = predict(params, spec, kind)
    r = radius_map(params, spec)
    inside = r <= params.r_e
    k = jnp.argmax(jnp.sum(model, axis=(1, 2)))
    return noise_sigma_for_snr(model[k], snr, inside)


@partial(jax.jit, static_argnums=(2, 4, 6))
def simulate_planes(key, params: GalaxyParams, spec: ModelSpec, sigma, kind: str = "maps",
                    sigma_ln=None, scatter_law: str = "lognormal", plane_scale=None):
    """Noisy model planes ``[K, ny, nx]`` (traceable; vmap over keys/params for batches).

    Args:
        key: PRNG key.
        params: scalar GalaxyParams.
        spec: model spec.
        sigma: noise σ (scalar or broadcastable to the planes), flux units.
        kind: ``"maps"`` or ``"cube"``.
        sigma_ln: optional calibration scatter s ln 10 per plane ``[K]``, independent
            per pixel.
        scatter_law: ``"lognormal"`` (flux × exp(s ln10 N): a scatter of the log ratio,
            median-preserving, so the mean flux is biased up by exp((s ln10)²/2)) or
            ``"gaussian"`` (flux × (1 + s ln10 N): exactly the linearised law the
            likelihood assumes — the well-specified case for sampler and recovery checks).
        plane_scale: optional factor per plane ``[K]`` for the whole galaxy (coherent
            calibration offsets: 10^δ_l of each line's ratio to Hβ).
    """
    if scatter_law not in ("lognormal", "gaussian"):
        raise ValueError(f"scatter_law must be 'lognormal' or 'gaussian', got {scatter_law!r}")
    model = predict(params, spec, kind)
    if plane_scale is not None:
        model = model * jnp.asarray(plane_scale, model.dtype)[:, None, None]
    k_noise, k_scat = jax.random.split(key)
    if sigma_ln is not None:
        sl = jnp.asarray(sigma_ln, model.dtype)[:, None, None]
        eps = sl * jax.random.normal(k_scat, model.shape, model.dtype)
        model = model * (jnp.exp(eps) if scatter_law == "lognormal" else 1.0 + eps)
    sig = jnp.broadcast_to(jnp.asarray(sigma, model.dtype), model.shape)
    return model + sig * jax.random.normal(k_noise, model.shape, model.dtype)


def simulate_galaxy(key, params: GalaxyParams, spec: ModelSpec, snr: float = 30.0,
                    kind: str = "maps", name: str = "mock", sigma_ln=None,
                    known_fields=None, scatter_law: str = "lognormal") -> GalaxyData:
    """A noisy mock :class:`GalaxyData` of one galaxy.

    Args:
        key: PRNG key.
        params: scalar GalaxyParams (validated).
        spec: model spec.
        snr: mean S/N within R_e of the brightest line (sets one σ for all planes).
        kind: ``"maps"`` or ``"cube"``.
        name: label.
        sigma_ln, scatter_law: optional calibration scatter per plane and its law (see
            :func:`simulate_planes`).
        known_fields: fields passed on as ``known`` (default: all but :data:`INFERRED`).
    """
    validate_params(params, spec)
    check_sampling(params, spec)
    sigma = float(noise_level(params, spec, snr, kind))
    planes = np.asarray(simulate_planes(key, params, spec, sigma, kind, sigma_ln, scatter_law))
    fields = known_fields if known_fields is not None else [f for f in GalaxyParams._fields if f not in INFERRED]
    known = {f: float(getattr(params, f)) for f in fields}
    return GalaxyData(planes, np.full(planes.shape, sigma), None, spec, known=known, kind=kind, name=name)
