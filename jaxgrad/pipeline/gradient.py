"""Straight-line fits of 12+log(O/H) against radius through a set of bins (traceable).

``log Z(r) = Z0 + ∇Z r`` with r in kpc and ∇Z in dex/kpc (docs/science.md §1). Bins enter with
a validity mask so a fixed maximum number of bins can be vmapped over galaxies.

* :func:`wls_gradient` — weighted least squares (closed form, exact posterior of a flat
  prior and Gaussian errors).
* :func:`method2_gradient` — Paper A's Method II: a WLS gradient per diagnostic (only
  diagnostics with more than two valid bins), reported as the median across diagnostics.
* :func:`azimuthal_gradients` — WLS gradients in bins of angle from the major axis,
  [0°, 30°), [30°, 60°), [60°, 90°] (Paper A's azimuthal test).

The MCMC versions (NumPyro NUTS and Paper A's emcee set-up) are in
:mod:`jaxgrad.pipeline.sampling`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["GradientFit", "wls_gradient", "method2_gradient", "azimuthal_gradients",
           "AZIMUTH_EDGES"]

AZIMUTH_EDGES = (0.0, 30.0, 60.0, 90.0)


class GradientFit(NamedTuple):
    """A straight-line fit through bins.

    Fields:
        grad, grad_err: ∇Z and its 1σ, dex/kpc.
        z0, z0_err: 12+log(O/H) at r = 0 and its 1σ, dex.
        cov: ``[2, 2]`` covariance of (z0, grad).
        chi2: χ² of the fit; n: bins used; valid: n ≥ ``min_bins``.
    """

    grad: jax.Array
    grad_err: jax.Array
    z0: jax.Array
    z0_err: jax.Array
    cov: jax.Array
    chi2: jax.Array
    n: jax.Array
    valid: jax.Array


def wls_gradient(r, logoh, err, mask, min_bins: int = 2) -> GradientFit:
    """Weighted least-squares line through masked bins (traceable, vmappable).

    Args:
        r: radii ``[K]``, kpc.
        logoh: 12+log(O/H) ``[K]``, dex.
        err: 1σ ``[K]``, dex (must be > 0 where ``mask``).
        mask: ``[K]`` bool, bins to use (non-finite values are dropped too).
        min_bins: fewer valid bins → NaN result with ``valid=False``.

    Returns:
        :class:`GradientFit` (covariance from the normal equations, errors not rescaled
        by χ²).
    """
    dtype = jnp.result_type(r, logoh, err, float)
    r, y, e = (jnp.asarray(a, dtype) for a in (r, logoh, err))
    m = mask & jnp.isfinite(r) & jnp.isfinite(y) & jnp.isfinite(e) & (e > 0)
    w = jnp.where(m, 1.0 / jnp.where(m, e, 1.0) ** 2, 0.0)
    r0 = jnp.where(m, r, 0.0)
    y0 = jnp.where(m, y, 0.0)
    s = jnp.sum(w)
    sx = jnp.sum(w * r0)
    sxx = jnp.sum(w * r0 * r0)
    sy = jnp.sum(w * y0)
    sxy = jnp.sum(w * r0 * y0)
    det = s * sxx - sx * sx
    n = jnp.sum(m)
    ok = (n >= min_bins) & (det > 1e-12 * jnp.maximum(s * sxx, 1e-30))
    det_s = jnp.where(ok, det, 1.0)
    g = (s * sxy - sx * sy) / det_s
    a = (sxx * sy - sx * sxy) / det_s
    cov = jnp.array([[sxx, -sx], [-sx, s]]) / det_s
    chi2 = jnp.sum(w * (y0 - a - g * r0) ** 2)
    nan = jnp.asarray(jnp.nan, dtype)

    def f(x):
        return jnp.where(ok, x, nan)

    return GradientFit(grad=f(g), grad_err=f(jnp.sqrt(cov[1, 1])), z0=f(a),
                       z0_err=f(jnp.sqrt(cov[0, 0])), cov=jnp.where(ok, cov, nan),
                       chi2=f(chi2), n=n, valid=ok)


class Method2Gradient(NamedTuple):
    """Method II gradient: median across diagnostics of per-diagnostic WLS gradients.

    Fields:
        grad, z0: medians across the diagnostics used (dex/kpc, dex).
        grad_err, z0_err: median of the per-diagnostic 1σ errors.
        spread: half the range (max − min) of the per-diagnostic gradients.
        per_diagnostic: :class:`GradientFit` with a leading ``[D]`` axis.
        used: ``[D]`` diagnostics with more than ``min_bins − 1`` valid bins.
        n_used: number of diagnostics used; valid: n_used ≥ 1.
    """

    grad: jax.Array
    grad_err: jax.Array
    z0: jax.Array
    z0_err: jax.Array
    spread: jax.Array
    per_diagnostic: GradientFit
    used: jax.Array
    n_used: jax.Array
    valid: jax.Array


def method2_gradient(r, logoh_d, err_d, valid_d, min_bins: int = 3) -> Method2Gradient:
    """Paper A's Method II (traceable).

    Args:
        r: radii ``[K]``, kpc.
        logoh_d: per-diagnostic 12+log(O/H) ``[K, D]``.
        err_d: their 1σ ``[K, D]``.
        valid_d: ``[K, D]`` bool.
        min_bins: a diagnostic is used with at least this many valid bins (Paper A:
            more than two, i.e. 3).
    """
    fits = jax.vmap(lambda y, e, m: wls_gradient(r, y, e, m, min_bins),
                    in_axes=(1, 1, 1))(logoh_d, err_d, valid_d)
    used = fits.valid
    n_used = jnp.sum(used)

    def med(x):
        return jnp.nanmedian(jnp.where(used, x, jnp.nan))

    g = jnp.where(used, fits.grad, jnp.nan)
    spread = 0.5 * (jnp.nanmax(g) - jnp.nanmin(g))
    ok = n_used > 0
    nan = jnp.asarray(jnp.nan, fits.grad.dtype)
    return Method2Gradient(
        grad=jnp.where(ok, med(fits.grad), nan), grad_err=jnp.where(ok, med(fits.grad_err), nan),
        z0=jnp.where(ok, med(fits.z0), nan), z0_err=jnp.where(ok, med(fits.z0_err), nan),
        spread=jnp.where(ok, spread, nan), per_diagnostic=fits, used=used, n_used=n_used,
        valid=ok)


def azimuthal_gradients(r, logoh, err, mask, angle_deg, edges=AZIMUTH_EDGES,
                        min_bins: int = 3) -> GradientFit:
    """WLS gradients in bins of angle from the major axis (traceable).

    Args:
        r: de-projected radii ``[N]`` (kpc) of spaxels or bins.
        logoh, err: 12+log(O/H) and 1σ ``[N]``.
        mask: ``[N]`` bool.
        angle_deg: angle from the major axis folded into [0°, 90°] ``[N]``.
        edges: static bin edges in degrees (the last bin includes its upper edge).
        min_bins: minimum points per angular bin.

    Returns:
        :class:`GradientFit` with a leading axis of ``len(edges) − 1`` angle bins.
    """
    fits = []
    n = len(edges) - 1
    for i in range(n):
        lo, hi = edges[i], edges[i + 1]
        sel = (angle_deg >= lo) & ((angle_deg < hi) if i < n - 1 else (angle_deg <= hi))
        fits.append(wls_gradient(r, logoh, err, mask & sel, min_bins))
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *fits)
