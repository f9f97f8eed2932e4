"""Elliptical annuli, summed fluxes and spectra, error spectra and the outer radius.

Paper A (docs/science.md §6): elliptical annuli (the galaxy's axis ratio and PA) one PSF
HWHM wide, the HWHM being that of the geometric mean of the two PSF axes; the radius of
an annulus is (a_in + a_out)/2 on the major axis, which for a thin disk with cos i = b/a
is the de-projected radius; spectra (cubes) or fluxes (maps) are summed within each
annulus; the error spectrum is the RMS in a moving window of 160 channels with the lines
masked (or the ERR cube summed in quadrature); the outer radius is where the brightest
line's S/N per annulus drops below a threshold.

Everything here is traceable with a fixed maximum number of annuli ``n_annuli`` and a
validity mask, so it vmaps over galaxies.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxgrad import lines as _lines
from jaxgrad.pipeline import geometry as _geom

__all__ = [
    "annulus_width",
    "annulus_index",
    "annulus_weights",
    "sum_maps",
    "sum_spectra",
    "contiguous_valid",
    "moving_rms",
    "line_channel_mask",
    "component_wavelengths",
    "channel_edges_from_centres",
]

C_KM_S = 299792.458


def annulus_width(psf_fwhm, pixel_scale: float, psf_axis_ratio=1.0, min_width_pix: float = 1.0):
    """Annulus width (arcsec): the PSF HWHM of the geometric-mean axis, ≥ ``min_width_pix``.

    HWHM = ½ FWHM_maj √(b/a)_PSF. The floor (default one pixel) keeps annuli from being
    narrower than the sampling when the PSF is negligible.
    """
    w = 0.5 * jnp.asarray(psf_fwhm) * jnp.sqrt(jnp.asarray(psf_axis_ratio))
    return jnp.maximum(w, min_width_pix * pixel_scale)


def annulus_index(geom: _geom.Geometry, ny: int, nx: int, pixel_scale: float, width,
                  n_annuli: int, dtype=None):
    """Annulus of every pixel, ``[ny, nx]`` int in [0, n_annuli] (n_annuli = outside).

    Returns:
        (index, a, angle): annulus index, de-projected radius a (arcsec) and angle from
        the major axis (deg, [0, 90]) per pixel.
    """
    a, ang = _geom.disk_radius_angle(geom, ny, nx, pixel_scale, dtype)
    k = jnp.floor(a / width).astype(jnp.int32)
    return jnp.clip(k, 0, n_annuli), a, ang


def annulus_weights(index, n_annuli: int, good=None, dtype=None):
    """One-hot membership ``[n_annuli, ny*nx]`` (0/1), zero for masked pixels."""
    dtype = dtype or jnp.result_type(float)
    flat = index.ravel()
    w = (flat[None, :] == jnp.arange(n_annuli)[:, None]).astype(dtype)
    if good is not None:
        w = w * good.ravel()[None, :].astype(dtype)
    return w


def sum_maps(maps, errs, weights):
    """Fluxes and errors summed per annulus.

    Args:
        maps: ``[L, ny, nx]`` flux per pixel (non-finite values must already be masked
            through ``weights``).
        errs: ``[L, ny, nx]`` 1σ per pixel.
        weights: ``[K, ny*nx]`` from :func:`annulus_weights`.

    Returns:
        (flux ``[K, L]``, err ``[K, L]``, npix ``[K]``).
    """
    L = maps.shape[0]
    m = jnp.where(jnp.isfinite(maps), maps, 0.0).reshape(L, -1)
    v = jnp.where(jnp.isfinite(errs), errs, 0.0).reshape(L, -1) ** 2
    return weights @ m.T, jnp.sqrt(weights @ v.T), jnp.sum(weights, axis=1)


def sum_spectra(cube, err, weights):
    """Spectra (and ERR spectra, or None) summed per annulus: ``[K, C]``.

    ``err`` is ``[C, ny, nx]``, or ``[C, 1, 1]`` for an error the same in every spaxel
    (its annulus spectrum is then err × √(number of pixels), no pass over a cube).
    """
    C = cube.shape[0]
    s = weights @ jnp.where(jnp.isfinite(cube), cube, 0.0).reshape(C, -1).T
    if err is None:
        return s, None
    e2 = jnp.where(jnp.isfinite(err), err, 0.0) ** 2
    if err.shape[-2:] == (1, 1):
        v = jnp.sum(weights**2, axis=1)[:, None] * e2.reshape(1, C)
    else:
        v = weights @ e2.reshape(C, -1).T
    return s, jnp.sqrt(v)


def contiguous_valid(ok):
    """``ok[k]`` and every inner annulus ok (the outer radius: first failure stops)."""
    return jnp.cumprod(ok.astype(jnp.int32), axis=-1).astype(bool)


def channel_edges_from_centres(centres):
    """Channel edges ``[C+1]`` from centres ``[C]`` (geometric midpoints; exact for
    log-uniform, i.e. constant-velocity, channels)."""
    c = jnp.asarray(centres)
    mid = jnp.sqrt(c[1:] * c[:-1])
    first = c[0] ** 2 / mid[0]
    last = c[-1] ** 2 / mid[-1]
    return jnp.concatenate([first[None], mid, last[None]])


_PARTNERS = {"OIII_5008": "OIII_4960", "OIII_4960": "OIII_5008",
             "NII_6585": "NII_6550", "NII_6550": "NII_6585"}


def component_wavelengths(line_names) -> list[float]:
    """Rest wavelengths (Å) of every component of the lines, doublet partners included
    ([OIII]4960 with 5008, [NII]6550 with 6585: they are in the data either way)."""
    lam = []
    for n in line_names:
        lam += list(_lines.get(n).components)
        if n in _PARTNERS:
            lam += list(_lines.get(_PARTNERS[n]).components)
    return sorted(set(lam))


def line_channel_mask(centres_um, z, line_names, half_width_kms: float):
    """Channels within ±half_width (km/s) of any component of the lines at redshift z
    (doublet partners included, see :func:`component_wavelengths`)."""
    lam = jnp.asarray(component_wavelengths(line_names), jnp.result_type(centres_um)) / 1e4
    obs = lam * (1.0 + z)
    dv = (centres_um[:, None] / obs[None, :] - 1.0) * C_KM_S
    return jnp.any(jnp.abs(dv) <= half_width_kms, axis=1)


def moving_rms(spectrum, masked, window: int = 160, min_count: int = 10):
    """Error spectrum: the RMS about the local mean in a moving window, lines masked.

    For channel c the window is channels [c − window/2, c + window/2) (clipped at the
    ends); masked channels (lines, non-finite values) are left out. Where fewer than
    ``min_count`` channels remain, the RMS of all unmasked channels is used.

    Args:
        spectrum: ``[..., C]`` flux per channel.
        masked: ``[..., C]`` (or ``[C]``) bool, True to leave a channel out.
        window: window length in channels (static).
        min_count: minimum channels in a window (static).

    Returns:
        ``[..., C]`` 1σ per channel.
    """
    x = jnp.asarray(spectrum)
    use = ~jnp.broadcast_to(masked, x.shape) & jnp.isfinite(x)
    xv = jnp.where(use, x, 0.0)
    wv = use.astype(x.dtype)
    C = x.shape[-1]
    h = window // 2
    zero = jnp.zeros(x.shape[:-1] + (1,), x.dtype)
    cs = jnp.concatenate([zero, jnp.cumsum(xv, -1)], -1)
    cs2 = jnp.concatenate([zero, jnp.cumsum(xv * xv, -1)], -1)
    cn = jnp.concatenate([zero, jnp.cumsum(wv, -1)], -1)
    lo = jnp.clip(jnp.arange(C) - h, 0, C)
    hi = jnp.clip(jnp.arange(C) + (window - h), 0, C)
    n = cn[..., hi] - cn[..., lo]
    s = cs[..., hi] - cs[..., lo]
    s2 = cs2[..., hi] - cs2[..., lo]
    nn = jnp.maximum(n, 1.0)
    mean = s / nn
    var = jnp.maximum(s2 / nn - mean**2, 0.0) * nn / jnp.maximum(nn - 1.0, 1.0)
    ntot = jnp.maximum(cn[..., -1:], 1.0)
    mtot = cs[..., -1:] / ntot
    vtot = jnp.maximum(cs2[..., -1:] / ntot - mtot**2, 0.0) * ntot / jnp.maximum(ntot - 1.0, 1.0)
    var = jnp.where(n >= min_count, var, vtot)
    return jnp.sqrt(var)


def kpc_radius(width_arcsec, n_annuli: int, kpc_per_arcsec):
    """Annulus radii (a_in + a_out)/2 in kpc, ``[n_annuli]``."""
    k = jnp.arange(n_annuli, dtype=jnp.result_type(width_arcsec, float))
    return (k + 0.5) * width_arcsec * kpc_per_arcsec

