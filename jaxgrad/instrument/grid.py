"""Pixel and spectral grids.

Pixel grid: ``[ny, nx]`` pixels of side ``pixel_scale`` arcsec, centred on the field
centre; pixel (j, i) has centre offset ((i − (nx−1)/2)·s, (j − (ny−1)/2)·s). With
``oversample = k`` each pixel is split into k×k sub-pixels whose centres are used to
evaluate the model, then summed back (flux-conserving).

Spectral grid: channel edges in observed-frame µm, strictly increasing; channels of
constant velocity width are log-uniform in λ.
"""

from __future__ import annotations

import math

import numpy as np

C_KM_S = 299792.458


def pixel_offsets(n: int, pixel_scale: float, oversample: int = 1) -> np.ndarray:
    """1-D sub-pixel centre offsets (arcsec) from the field centre, length n*oversample."""
    k = oversample
    fine = (np.arange(n * k) + 0.5) / k - n / 2.0
    return fine * pixel_scale


def velocity_channel_edges(center_um: float, n_chan: int, dv_kms: float) -> tuple[float, ...]:
    """Edges (µm) of ``n_chan`` channels of constant width ``dv_kms`` centred on ``center_um``."""
    if n_chan < 1 or dv_kms <= 0 or center_um <= 0:
        raise ValueError(
            f"need n_chan >= 1, dv_kms > 0 and center_um > 0, got {n_chan}, {dv_kms}, {center_um}"
        )
    k = np.arange(n_chan + 1) - n_chan / 2.0
    return tuple(float(v) for v in center_um * np.exp(k * dv_kms / C_KM_S))


def linear_channel_edges(start_um: float, stop_um: float, n_chan: int) -> tuple[float, ...]:
    """Edges (µm) of ``n_chan`` channels of constant width in λ between start and stop."""
    if not (0 < start_um < stop_um) or n_chan < 1:
        raise ValueError(f"need 0 < start_um < stop_um and n_chan >= 1, got {start_um}, {stop_um}, {n_chan}")
    return tuple(float(v) for v in np.linspace(start_um, stop_um, n_chan + 1))


def channels_around_lines(rest_wavelengths_aa, z: float, dv_kms: float,
                          pad_kms: float = 1000.0) -> tuple[float, ...]:
    """Constant-velocity channels covering the redshifted lines with a margin.

    Args:
        rest_wavelengths_aa: rest wavelengths of the lines, Angstrom.
        z: redshift.
        dv_kms: channel width, km/s.
        pad_kms: margin beyond the bluest and reddest line, km/s.
    """
    lam = np.asarray(rest_wavelengths_aa, float) * (1 + z) / 1e4
    lo = lam.min() * math.exp(-pad_kms / C_KM_S)
    hi = lam.max() * math.exp(pad_kms / C_KM_S)
    n = int(math.ceil(math.log(hi / lo) * C_KM_S / dv_kms))
    center = math.sqrt(lo * hi)
    return velocity_channel_edges(center, n, dv_kms)


def check_edges(edges) -> tuple[float, ...]:
    """Validate channel edges (strictly increasing, positive, ≥ 2 values)."""
    e = np.asarray(edges, float)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(e <= 0) or np.any(np.diff(e) <= 0):
        raise ValueError("channel_edges must be >= 2 finite, positive, strictly increasing wavelengths in µm")
    return tuple(float(v) for v in e)
