"""PSF homogenisation: convolve every channel (or line map) to one target PSF.

Paper A homogenises each cube to the PSF of its reddest used line with a Gaussian kernel
whose width is the quadrature difference of the two PSFs (docs/science.md §6). For Gaussian
PSFs this is exact: G(Σ_src) ⊗ G(Σ_tgt − Σ_src) = G(Σ_tgt). Elliptical PSFs are handled
through their covariance matrices; where Σ_tgt − Σ_src is not positive (a source PSF
broader than the target along some axis) the negative part is clipped to zero, so such
channels keep their own (broader) PSF along that axis.

Errors are propagated as independent pixels: var_out = K² ⊗ var_in (the correlation the
convolution introduces between neighbouring pixels is not tracked).

Non-finite pixels are set to zero before convolving and are returned as NaN again.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgrad.instrument import convolve as _conv
from jaxgrad.instrument import psf as _psf

__all__ = ["gaussian_covariance", "matching_kernel_shape", "homogenise_stack", "target_fwhm"]


def gaussian_covariance(fwhm, axis_ratio=1.0, pa_deg=0.0):
    """Sky covariance ``[2, 2]`` (arcsec², axes (x, y)) of an elliptical Gaussian PSF."""
    s_maj = jnp.asarray(fwhm) * _psf.FWHM_TO_SIGMA
    s_min = s_maj * axis_ratio
    pa = jnp.deg2rad(pa_deg)
    ex = jnp.stack([-jnp.sin(pa), jnp.cos(pa)])  # major-axis direction (x, y)
    ey = jnp.stack([-jnp.cos(pa), -jnp.sin(pa)])
    return s_maj**2 * jnp.outer(ex, ex) + s_min**2 * jnp.outer(ey, ey)


def matching_kernel_shape(src_fwhm, tgt_fwhm, src_q=1.0, tgt_q=1.0, src_pa=0.0, tgt_pa=0.0,
                          min_fwhm=1e-6):
    """(FWHM, axis ratio, PA) of the Gaussian kernel taking the source PSF to the target.

    Σ_k = Σ_tgt − Σ_src with negative eigenvalues clipped to 0 (traceable).
    """
    d = gaussian_covariance(tgt_fwhm, tgt_q, tgt_pa) - gaussian_covariance(src_fwhm, src_q, src_pa)
    a, b, c = d[0, 0], d[0, 1], d[1, 1]
    tr = a + c
    disc = jnp.sqrt(jnp.maximum((a - c) ** 2 / 4 + b**2, 0.0))
    l1 = jnp.maximum(tr / 2 + disc, 0.0)
    l2 = jnp.maximum(tr / 2 - disc, 0.0)
    ang = 0.5 * jnp.arctan2(2 * b, a - c)  # major axis angle from +x
    fwhm = jnp.maximum(jnp.sqrt(l1) / _psf.FWHM_TO_SIGMA, min_fwhm)
    q = jnp.clip(jnp.sqrt(l2 / jnp.maximum(l1, 1e-30)), 1e-3, 1.0)
    return fwhm, q, jnp.rad2deg(ang) - 90.0


def target_fwhm(psf_fwhm_per_item, index_reddest: int):
    """The target FWHM: that of the reddest used line (an index into the items)."""
    return jnp.asarray(psf_fwhm_per_item)[index_reddest]


def homogenise_stack(stack, var, pixel_scale: float, src_fwhm, tgt_fwhm, src_q=None,
                     tgt_q=1.0, src_pa=0.0, tgt_pa=0.0):
    """Convolve each image of a stack from its own Gaussian PSF to a target PSF.

    Args:
        stack: images ``[N, ny, nx]`` (channels of a cube or line maps), flux per pixel.
        var: their variances ``[N, ny, nx]`` or None.
        pixel_scale: arcsec per pixel (static).
        src_fwhm: PSF FWHM of each image ``[N]`` (arcsec, major axis).
        tgt_fwhm: target PSF FWHM (arcsec, major axis), scalar.
        src_q: PSF axis ratios ``[N]`` (None: all circular, and the target circular too;
            the fast separable path).
        tgt_q, src_pa, tgt_pa: target axis ratio and position angles (deg E of N).

    Returns:
        (stack, var) homogenised; var is None when the input var is None.
    """
    stack = jnp.asarray(stack)
    dtype = stack.dtype
    n, ny, nx = stack.shape
    bad = ~jnp.isfinite(stack)
    if var is not None:
        bad = bad | ~jnp.isfinite(var)
    x = jnp.where(bad, 0.0, stack)
    v = None if var is None else jnp.where(bad, 0.0, var)
    src = jnp.broadcast_to(jnp.asarray(src_fwhm, dtype), (n,))
    if src_q is None:
        kf = jnp.sqrt(jnp.maximum(jnp.asarray(tgt_fwhm, dtype) ** 2 - src**2, 0.0))
        kf = jnp.maximum(kf, 1e-6 * pixel_scale)

        def one(img, vv, f):
            my = _psf.gaussian_matrix(ny, pixel_scale, f).astype(dtype)
            mx = _psf.gaussian_matrix(nx, pixel_scale, f).astype(dtype)
            out = _conv.separable(img, my, mx)
            ov = None if vv is None else _conv.separable(vv, my**2, mx**2)
            return out, ov

        if v is None:
            out = jax.vmap(lambda i, f: one(i, None, f)[0])(x, kf)
            ov = None
        else:
            out, ov = jax.vmap(one)(x, v, kf)
    else:
        sq = jnp.broadcast_to(jnp.asarray(src_q, dtype), (n,))
        spa = jnp.broadcast_to(jnp.asarray(src_pa, dtype), (n,))

        def one_e(img, vv, f, q, pa):
            kf, kq, kpa = matching_kernel_shape(f, tgt_fwhm, q, tgt_q, pa, tgt_pa,
                                                min_fwhm=1e-3 * pixel_scale)
            ker = _psf.elliptical_gaussian_kernel(ny, nx, pixel_scale, kf, kq, kpa).astype(dtype)
            out = _conv.fft_convolve(img, ker)
            ov = None if vv is None else _conv.fft_convolve(vv, ker**2)
            return out, ov

        if v is None:
            out = jax.vmap(lambda i, f, q, pa: one_e(i, None, f, q, pa)[0])(x, src, sq, spa)
            ov = None
        else:
            out, ov = jax.vmap(one_e)(x, v, src, sq, spa)
    out = jnp.where(bad, jnp.nan, out)
    if ov is not None:
        ov = jnp.where(bad, jnp.nan, ov)
    return out, ov
