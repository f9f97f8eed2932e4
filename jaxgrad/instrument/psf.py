"""PSF kernels (traceable in their width parameters).

All kernels are sampled on the pixel grid of the data (pixel-integrated), cover offsets
−(n−1)…(n−1) pixels along each axis, so convolution of an n-pixel field never truncates
the kernel, and are normalised to unit sum (flux-conserving).

Models:
  * ``"gaussian"`` — circular Gaussian, FWHM in arcsec; separable, applied as two small
    dense matrices (:func:`gaussian_matrix`).
  * ``"elliptical"`` — elliptical Gaussian: major-axis FWHM, axis ratio, PA (deg E of N).
  * ``"moffat"`` — circular Moffat, FWHM and β.
  * ``"image"`` — a user-supplied image (odd dimensions, pixel scale of the data).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

MODELS = ("gaussian", "elliptical", "moffat", "image")
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_SUB = 5  # sub-samples per pixel and axis for non-separable kernels


def gaussian_kernel_1d(n: int, pixel_scale: float, fwhm):
    """Pixel-integrated 1-D Gaussian on offsets −(n−1)…(n−1) pixels, unit sum.

    Args:
        n: field size (pixels) along the axis.
        pixel_scale: arcsec per pixel.
        fwhm: FWHM in arcsec (traced).

    Returns:
        Array ``[2n−1]``.
    """
    sigma = jnp.asarray(fwhm) * FWHM_TO_SIGMA / pixel_scale
    d = jnp.arange(-(n - 1), n, dtype=sigma.dtype)
    k = ndtr((d + 0.5) / sigma) - ndtr((d - 0.5) / sigma)
    return k / jnp.sum(k)


def gaussian_matrix(n: int, pixel_scale: float, fwhm):
    """Dense [n, n] matrix M with (M @ v) the zero-padded 'same' convolution of v."""
    k = gaussian_kernel_1d(n, pixel_scale, fwhm)
    idx = np.arange(n)[:, None] - np.arange(n)[None, :] + (n - 1)
    return k[idx]


def _offsets_2d(ny: int, nx: int):
    sub = (np.arange(_SUB) + 0.5) / _SUB - 0.5
    dy = (np.arange(-(ny - 1), ny)[:, None] + sub[None, :]).ravel()
    dx = (np.arange(-(nx - 1), nx)[:, None] + sub[None, :]).ravel()
    return dy, dx


def _bin_sub(img, ny: int, nx: int):
    return img.reshape(2 * ny - 1, _SUB, 2 * nx - 1, _SUB).sum(axis=(1, 3))


def elliptical_gaussian_kernel(ny: int, nx: int, pixel_scale: float, fwhm, axis_ratio, pa_deg):
    """Elliptical Gaussian kernel ``[2ny−1, 2nx−1]`` (major FWHM arcsec, b/a, PA deg E of N)."""
    dtype = jnp.result_type(fwhm, float)
    dy, dx = (jnp.asarray(a * pixel_scale, dtype) for a in _offsets_2d(ny, nx))
    dy, dx = dy[:, None], dx[None, :]
    pa = jnp.deg2rad(pa_deg)
    u = -dx * jnp.sin(pa) + dy * jnp.cos(pa)  # along major axis
    v = -dx * jnp.cos(pa) - dy * jnp.sin(pa)
    s_maj = fwhm * FWHM_TO_SIGMA
    s_min = s_maj * axis_ratio
    img = jnp.exp(-0.5 * ((u / s_maj) ** 2 + (v / s_min) ** 2))
    k = _bin_sub(img, ny, nx)
    return k / jnp.sum(k)


def moffat_kernel(ny: int, nx: int, pixel_scale: float, fwhm, beta):
    """Circular Moffat kernel ``[2ny−1, 2nx−1]``, I ∝ (1 + (r/α)²)^−β, FWHM = 2α√(2^{1/β}−1)."""
    dy, dx = _offsets_2d(ny, nx)
    r2 = jnp.asarray((dy[:, None] ** 2 + dx[None, :] ** 2) * pixel_scale**2, jnp.result_type(fwhm, float))
    alpha = fwhm / (2.0 * jnp.sqrt(2.0 ** (1.0 / beta) - 1.0))
    img = (1.0 + r2 / alpha**2) ** (-beta)
    k = _bin_sub(img, ny, nx)
    return k / jnp.sum(k)


def check_image(psf_image) -> np.ndarray:
    """Validate a user PSF image (2-D, odd sizes, finite, non-negative, positive sum)."""
    a = np.asarray(psf_image, dtype=float)
    if a.ndim != 2 or a.shape[0] % 2 == 0 or a.shape[1] % 2 == 0:
        raise ValueError(f"psf_image must be a 2-D array with odd sizes, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
        raise ValueError("psf_image must be finite, non-negative and have a positive sum")
    return a / a.sum()
