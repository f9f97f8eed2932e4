"""Gaussian noise at a target signal-to-noise, and a fast exact normal sampler for CPUs."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


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


# Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel random numbers: as easy as
# 1, 2, 3"; the constants of Random123 and of jax.random): rotations per round and the
# key-schedule parity constant.
_ROT = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x, r: int):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _threefry2x32(k1, k2, x0, x1):
    """Threefry-2x32 (20 rounds) of the counter pairs ``(x0, x1)``, written out unrolled."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in _ROT[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def standard_normal(key, shape, dtype=jnp.float32):
    """N(0, 1) draws equal bit for bit to ``jax.random.normal(key, shape, dtype)`` under
    ``jax.threefry_partitionable(False)``, about 1.25x faster on CPU (traceable, vmappable).

    JAX lowers threefry on CPU as a 5-step loop whose state passes through memory between
    steps; here the 20 rounds are written out, so XLA fuses the bits, the uniform and
    erf⁻¹ into one pass (measured: 0.85 -> 0.68 ms for 48×64×64 draws per mock, batch 10).
    Same counters (0…n−1, split in halves), same bits-to-uniform map on (−1, 1), same
    √2 erf⁻¹(u); tested against ``jax.random.normal`` and Random123's known-answer
    vectors. (Fused into a larger computation, XLA may round the last bit of erf⁻¹ or of
    a following multiply-add differently, as it may for ``jax.random.normal`` itself.)
    float32 only; other dtypes and a non-raw key fall back to ``jax.random.normal``.

    Args:
        key: a raw ``uint32[2]`` threefry key (``jax.random.PRNGKey``).
        shape: output shape.
        dtype: output dtype.
    """
    shape = tuple(shape)
    n = math.prod(shape)
    key = jnp.asarray(key)
    if (jnp.dtype(dtype) != jnp.float32 or key.dtype != jnp.uint32 or key.shape != (2,)
            or n == 0 or n >= 2**32 - 1):
        with jax.threefry_partitionable(False):
            return jax.random.normal(key, shape, dtype)
    half = (n + 1) // 2
    c = lax.iota(np.uint32, half)
    second = c + np.uint32(half)
    if n % 2:  # odd n: jax pads the counters with one zero, and drops its output
        second = jnp.where(c == np.uint32(half - 1), np.uint32(0), second)
    y0, y1 = _threefry2x32(key[0], key[1], c, second)
    bits = jnp.concatenate([y0, y1[:-1] if n % 2 else y1])
    one = np.array(1.0, np.float32).view(np.uint32)
    f = lax.bitcast_convert_type((bits >> np.uint32(9)) | one, jnp.float32) - np.float32(1.0)
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    u = lax.max(lo, f * (np.float32(1.0) - lo) + lo)
    return (np.float32(math.sqrt(2.0)) * lax.erf_inv(u)).reshape(shape)
