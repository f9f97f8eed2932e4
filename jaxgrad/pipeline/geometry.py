"""Galaxy geometry from data: a 2-D Gaussian fit to the brightest line map (traceable).

Paper A takes the centre, axis ratio and position angle of each galaxy from a 2-D
Gaussian fitted to its brightest line map ([OIII]5008 or Hα) (docs/science.md §6). Here the
fit is a fixed number of Levenberg–Marquardt (damped Gauss–Newton) steps in JAX, started
from the flux-weighted moments, so it jit-compiles once and vmaps over galaxies.

Sky conventions are those of :mod:`jaxgrad.physics.disk` and
:mod:`jaxgrad.instrument.grid`: offsets in arcsec from the field centre, x to the right,
y up, PA in degrees East of North (counter-clockwise from +y), axis ratio b/a ≤ 1, and
a thin circular disk has cos i = b/a.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.instrument import grid as _grid
from jaxgrad.instrument import psf as _psf
from jaxgrad.physics import disk as _disk
from jaxgrad.pipeline._linalg import spd_solve

__all__ = ["Geometry", "fit_gaussian_2d", "moments_geometry", "disk_radius_angle",
           "pixel_grid"]


class Geometry(NamedTuple):
    """Projected geometry of a galaxy (scalar leaves; a batch adds axis 0).

    Fields:
        x0, y0: centre offset from the field centre, arcsec (x right, y up).
        q: axis ratio b/a in (0, 1]; the de-projection uses cos i = q.
        pa: major-axis position angle, degrees East of North, in [0, 180).
        sigma_maj: Gaussian σ along the major axis, arcsec (fit output; 0 if given).
        amplitude: Gaussian peak (map units; 0 if given).
        converged: the fit's relative χ² change in its last step was < 1e-4.
    """

    x0: jax.Array
    y0: jax.Array
    q: jax.Array
    pa: jax.Array
    sigma_maj: jax.Array
    amplitude: jax.Array
    converged: jax.Array


def make_geometry(x0=0.0, y0=0.0, q=1.0, pa=0.0, dtype=None) -> Geometry:
    """A :class:`Geometry` from known values (validated)."""
    if not (0 < float(np.min(q)) and float(np.max(q)) <= 1):
        raise ValueError(f"axis ratio q must be in (0, 1], got {q!r}")
    dtype = dtype or jnp.result_type(float)
    vals = [jnp.asarray(v, dtype) for v in (x0, y0, q, pa)]
    shape = jnp.broadcast_shapes(*(v.shape for v in vals))
    x0, y0, q, pa = (jnp.broadcast_to(v, shape) for v in vals)
    z = jnp.zeros(shape, dtype)
    return Geometry(x0, y0, q, jnp.mod(pa, 180.0), z, z, jnp.ones(shape, bool))


def pixel_grid(ny: int, nx: int, pixel_scale: float, dtype=None):
    """Pixel-centre offsets (arcsec) ``dx [1, nx]``, ``dy [ny, 1]`` from the field centre."""
    dtype = dtype or jnp.result_type(float)
    ox = jnp.asarray(_grid.pixel_offsets(nx, pixel_scale), dtype)
    oy = jnp.asarray(_grid.pixel_offsets(ny, pixel_scale), dtype)
    return ox[None, :], oy[:, None]


def disk_radius_angle(geom: Geometry, ny: int, nx: int, pixel_scale: float, dtype=None):
    """De-projected radius (arcsec) and angle from the major axis (deg) per pixel.

    The radius is the semi-major axis of the ellipse (axis ratio q, PA) through the
    pixel centre, i.e. the disk-plane radius with cos i = q. The angle is measured in the
    disk plane and folded into [0°, 90°].

    Returns:
        (a ``[ny, nx]`` arcsec, angle ``[ny, nx]`` deg).
    """
    dx, dy = pixel_grid(ny, nx, pixel_scale, dtype)
    inc = jnp.rad2deg(jnp.arccos(jnp.clip(geom.q, _disk.Q_MIN, 1.0)))
    u, v, _ = _disk.disk_coordinates(dx - geom.x0, dy - geom.y0, geom.pa, inc)
    a = _disk.safe_sqrt(u**2 + v**2)
    ang = jnp.rad2deg(jnp.arctan2(jnp.abs(v), jnp.abs(u)))
    return a, ang


def moments_geometry(image, pixel_scale: float, clip: float = 0.1):
    """Geometry from flux-weighted second moments of pixels above ``clip`` × peak.

    Used to start :func:`fit_gaussian_2d`; traceable. Non-finite pixels are ignored.

    Returns:
        (x0, y0, sigma_maj, sigma_min, pa_deg).
    """
    ny, nx = image.shape
    img = jnp.where(jnp.isfinite(image), image, 0.0)
    dx, dy = pixel_grid(ny, nx, pixel_scale, img.dtype)
    peak = jnp.max(img)
    w = jnp.where(img > clip * peak, img, 0.0)
    tot = jnp.maximum(jnp.sum(w), 1e-30)
    x0 = jnp.sum(w * dx) / tot
    y0 = jnp.sum(w * dy) / tot
    cxx = jnp.sum(w * (dx - x0) ** 2) / tot
    cyy = jnp.sum(w * (dy - y0) ** 2) / tot
    cxy = jnp.sum(w * (dx - x0) * (dy - y0)) / tot
    tr = cxx + cyy
    disc = jnp.sqrt(jnp.maximum((cxx - cyy) ** 2 / 4 + cxy**2, 0.0))
    l1 = jnp.maximum(tr / 2 + disc, 1e-6 * pixel_scale**2)
    l2 = jnp.maximum(tr / 2 - disc, 1e-6 * pixel_scale**2)
    # major-axis direction (ex, ey) = (−sin PA, cos PA)
    ang = 0.5 * jnp.arctan2(2 * cxy, cxx - cyy)  # angle of the major axis from +x
    pa = jnp.rad2deg(ang) - 90.0
    return x0, y0, jnp.sqrt(l1), jnp.sqrt(l2), jnp.mod(pa, 180.0)


def _gauss_terms(p, dx, dy):
    """Major/minor-axis coordinates (u, v), their inverse squared widths and the model."""
    loga, x0, y0, lsa, lsb, pa = p
    u, v, _ = _disk.disk_coordinates(dx - x0, dy - y0, pa, 0.0)
    ia, ib = jnp.exp(-2 * lsa), jnp.exp(-2 * lsb)
    return u, v, ia, ib, jnp.exp(loga - 0.5 * (u**2 * ia + v**2 * ib))


def _gauss_model(p, dx, dy):
    return _gauss_terms(p, dx, dy)[-1]


def _resid_jac(p, img, sw, dx, dy):
    """Weighted residuals ``[N]`` of :func:`_gauss_model` and their transposed Jacobian ``[6, N]``.

    Analytic: with E = log a − (u²/σa² + v²/σb²)/2 and model m = exp(E), every column is
    −√w·m·∂E/∂p (u, v rotate with PA: ∂u/∂PA = v, ∂v/∂PA = −u, in radians).
    """
    u, v, ia, ib, m = _gauss_terms(p, dx, dy)
    th = jnp.deg2rad(p[5])
    s, c = jnp.sin(th), jnp.cos(th)  # ∂u/∂x0 = sin PA, ∂v/∂x0 = cos PA (disk_coordinates)
    ua, vb = u * ia, v * ib
    dE = (jnp.ones_like(m), -(ua * s + vb * c), ua * c - vb * s, u * ua, v * vb,
          (u * vb - v * ua) * (jnp.pi / 180.0))
    msw = -(m * sw)
    J = jnp.stack([(msw * d).ravel() for d in dE])  # [6, N]: contiguous rows
    return ((img - m) * sw).ravel(), J


# the LM loop stops at the first successful step that improves χ² by less than this
# (relative; at float32 rounding the fit has converged), or after this many failed or
# stalled steps in a row. Measured on 300 Paper A mocks against 40 steps of the earlier
# rule (stop after three stalled steps): the same geometries to float32 rounding, about
# half the steps.
_STALL_STEPS = 3
_STALL_REL = 1e-6


def fit_gaussian_2d(image, pixel_scale: float, n_iter: int = 40, psf_fwhm=None,
                    weights=None) -> Geometry:
    """Fit an elliptical 2-D Gaussian to a line map (traceable; vmap over galaxies).

    Unweighted least squares by default (the map's shape, not its noise, sets the
    geometry); ``weights`` (e.g. 1/err²) may be given. Non-finite pixels are masked. The
    fit runs at most ``n_iter`` Levenberg–Marquardt steps from the moments (analytic
    Jacobian), stopping at the first successful step that improves χ² by less than 1e-6
    (relative) or after three failed or stalled steps in a row; under ``vmap`` the batch
    stops when its last member does. Not reverse-differentiable (a while loop).

    Args:
        image: line map ``[ny, nx]`` (any flux unit; normalised internally).
        pixel_scale: arcsec per pixel (static).
        n_iter: maximum number of LM steps (static).
        psf_fwhm: if given (arcsec, circular), the PSF σ is removed in quadrature from
            both Gaussian axes before forming q (an intrinsic axis ratio). Paper A uses
            the observed map's q: leave None for that.
        weights: optional per-pixel weights ``[ny, nx]``.

    Returns:
        :class:`Geometry` (x0, y0 arcsec; q; PA deg E of N in [0, 180)).
    """
    image = jnp.asarray(image)
    dtype = jnp.result_type(image, float)
    image = image.astype(dtype)
    ny, nx = image.shape
    good = jnp.isfinite(image)
    if weights is not None:
        good = good & jnp.isfinite(weights) & (weights > 0)
        w = jnp.where(good, weights, 0.0)
        w = w / jnp.maximum(jnp.max(w), 1e-30)
    else:
        w = good.astype(dtype)
    img = jnp.where(good, image, 0.0)
    scale = jnp.maximum(jnp.max(jnp.abs(img)), 1e-30)
    img = img / scale
    dx, dy = pixel_grid(ny, nx, pixel_scale, dtype)
    x0, y0, sa, sb, pa = moments_geometry(img, pixel_scale)
    floor = 0.25 * pixel_scale
    p0 = jnp.stack([jnp.log(jnp.maximum(jnp.max(img), 1e-6)), x0, y0,
                    jnp.log(jnp.maximum(sa, floor)), jnp.log(jnp.maximum(sb, floor)), pa]).astype(dtype)
    sw = jnp.sqrt(w)

    def resid(p):
        return ((img - _gauss_model(p, dx, dy)) * sw).ravel()

    def chi2(p):
        r = resid(p)
        return jnp.sum(r * r)

    def step(carry):
        p, lam, c, it, streak, _ = carry
        r, Jt = _resid_jac(p, img, sw, dx, dy)
        A = Jt @ Jt.T
        g = Jt @ r
        A_d = A + lam * jnp.diag(jnp.diag(A) + 1e-9)
        dp = -spd_solve(A_d, g)
        # keep the size and the angle steps sane
        dp = dp.at[3:5].set(jnp.clip(dp[3:5], -0.7, 0.7))
        dp = dp.at[1:3].set(jnp.clip(dp[1:3], -5 * pixel_scale, 5 * pixel_scale))
        dp = dp.at[5].set(jnp.clip(dp[5], -30.0, 30.0))
        pn = p + dp
        cn = chi2(pn)
        better = jnp.isfinite(cn) & (cn < c)
        p = jnp.where(better, pn, p)
        rel = jnp.where(better, (c - cn) / jnp.maximum(c, 1e-30), 0.0)
        lam = jnp.where(better, lam * 0.3, lam * 5.0)
        # a successful step that no longer improves χ² has converged; failed steps (LM
        # raising λ) stop the loop only after _STALL_STEPS in a row
        streak = jnp.where(better & (rel < _STALL_REL), _STALL_STEPS,
                           jnp.where(rel < _STALL_REL, streak + 1, 0))
        return p, jnp.clip(lam, 1e-7, 1e7), jnp.where(better, cn, c), it + 1, streak, rel

    def going(carry):
        return (carry[3] < n_iter) & (carry[4] < _STALL_STEPS)

    zero = jnp.asarray(0, jnp.int32)
    init = (p0, jnp.asarray(1e-3, dtype), chi2(p0), zero, zero, jnp.asarray(1.0, dtype))
    p, _, _, _, _, rel_last = jax.lax.while_loop(going, step, init)
    loga, x0, y0, lsa, lsb, pa = p
    sa, sb = jnp.exp(lsa), jnp.exp(lsb)
    swap = sb > sa
    s_maj = jnp.where(swap, sb, sa)
    s_min = jnp.where(swap, sa, sb)
    pa = jnp.where(swap, pa + 90.0, pa)
    if psf_fwhm is not None:
        sp2 = (jnp.asarray(psf_fwhm, dtype) * _psf.FWHM_TO_SIGMA) ** 2
        floor2 = (0.05 * pixel_scale) ** 2
        q = jnp.sqrt(jnp.maximum(s_min**2 - sp2, floor2) / jnp.maximum(s_maj**2 - sp2, floor2))
        q = jnp.minimum(q, 1.0)
    else:
        q = s_min / s_maj
    return Geometry(x0=x0, y0=y0, q=jnp.clip(q, _disk.Q_MIN, 1.0), pa=jnp.mod(pa, 180.0),
                    sigma_maj=s_maj, amplitude=jnp.exp(loga) * scale,
                    converged=rel_last < 1e-4)
