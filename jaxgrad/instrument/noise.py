"""Gaussian noise at a target signal-to-noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def noise_sigma_for_snr(signal, snr, mask=None):
    """Constant per-pixel σ giving mean S/N = ``snr`` over ``mask`` (all pixels if None).

    Args:
        signal: noiseless data, any shape.
        snr: target mean S/N (> 0).
        mask: optional boolean array selecting the pixels the S/N refers to.
    """
    if mask is None:
        mean = jnp.mean(signal)
    else:
        mean = jnp.sum(jnp.where(mask, signal, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
    return mean / snr


def add_noise(key, signal, sigma):
    """signal + N(0, σ²) with σ broadcastable to ``signal``; key first (explicit PRNG)."""
    return signal + sigma * jax.random.normal(key, jnp.shape(signal), jnp.result_type(signal))
