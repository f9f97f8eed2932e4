"""Batched, jitted observer chain for mock suites (thousands of galaxies at once).

Two entry points, one per data kind:

* :func:`batched_gradient_from_maps` — line maps + error maps ``[B, L, ny, nx]``;
* :func:`batched_gradient_from_cubes` — cubes (+ ERR cubes) ``[B, C, ny, nx]``.

Both run, per galaxy and vmapped over the batch: PSF homogenisation to the reddest line
→ geometry (2-D Gaussian fit to the brightest line, or given) → elliptical annuli one
PSF HWHM wide (``n_annuli`` at most, validity mask, outer radius from the brightest
line's S/N) → summed fluxes, or summed spectra + Gaussian line fits → Method I (exact
gridded posterior of 12+log(O/H) per annulus, all diagnostics, dust-corrected when a
Balmer decrement is available) and Method II (per-diagnostic inversion) → weighted
least-squares gradients (Method I; Method II = median of per-diagnostic WLS gradients).

Shapes are fixed, so one compilation serves every batch of the same shape and settings
(compiled functions are cached per static configuration). Memory: cubes cost
``B × C × ny × nx`` floats plus the line fits; pass ``chunk_size`` to process the batch
in chunks inside one compiled loop (``jax.lax.map`` with ``batch_size``).

Example (the beam-smearing suite)::

    import jaxgrad as jg
    from jaxgrad.pipeline import batched_gradient_from_maps

    spec = jg.ModelSpec(lines=("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008"),
                        ny=48, nx=48, pixel_scale=0.05, range_check="off")
    params = jg.make_params(grad_z=grads, psf_fwhm=fwhms, logoh0=7.9, z=5.0)  # [B]
    maps = jg.batch_line_maps(params, spec)             # [B, 4, 48, 48]
    errs = ...                                          # [B, 4, 48, 48]
    res = batched_gradient_from_maps(maps, errs, spec.lines, 0.05, z=5.0,
                                     psf_fwhm=fwhms, calibration="sanders24",
                                     diagnostics=("R3", "O2", "Ne3O2"))
    res.grad, res.grad_err        # Method I WLS gradient per galaxy [B], dex/kpc
    res.grad2                     # Method II (median over diagnostics) [B]
    res.output.bins.m1.median     # per-annulus 12+log(O/H) [B, n_annuli]

Notes for mock suites:

* Everything that fixes shapes or code paths is static (lines, field size, pixel scale,
  ``n_annuli``, diagnostics, grid size, whether the geometry is fitted, PSF
  homogenisation, the line-fit set-up): one compilation per combination and batch size.
  Values that only change numbers — z, PSF FWHM (per galaxy, or per line/channel),
  geometry, ``max_radius_kpc``, ``outer_snr``, ``radius_mode`` — are traced.
* To skip the per-call validation, build the spec once with :func:`make_chain_spec`
  and call the cached jitted function directly: ``f = batched_maps_fn(spec, chunk)`` then
  ``f(maps, errs, z, psf_fwhm, psf_q, geometry, options)`` with arrays of leading size B
  (``psf_fwhm`` ``[B, L]``; ``geometry = make_geometry(np.zeros(B), np.zeros(B),
  np.ones(B), np.zeros(B))``, ignored when the spec fits it;
  ``options = batch_options(B, max_radius_kpc, outer_snr, radius_mode)``).
* The chain never raises inside: galaxies with no detection come back with
  ``measurable=False`` and NaN gradients; missing lines (all-NaN maps) drop only their
  diagnostics. Only the edge checks (shapes, errors ≤ 0, lines outside a cube) raise.
* Paper A's annulus radius is the midpoint (a_in + a_out)/2 (``radius_mode="midpoint"``,
  the default). With annuli only one or two pixels wide (a PSF smaller than ~2 pixels)
  it biases Z0 by ~0.2 pixel × ∇Z at the centre; ``"flux_weighted"`` avoids that.
* For self-consistent mocks from :func:`jaxgrad.line_maps`, pass
  ``diagnostics=calibration.diagnostics_for_lines(lines)`` (the diagnostics the forward
  model used): a calibration's other diagnostics (e.g. sanders24's O32 and R23) are
  separate fits and do not agree exactly with those.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import lines as _lines
from jaxgrad.pipeline import core as _core
from jaxgrad.pipeline import geometry as _geom
from jaxgrad.pipeline import linefit as _lf
from jaxgrad.pipeline import metallicity as _met

__all__ = ["BatchedGradients", "batched_gradient_from_maps", "batched_gradient_from_cubes",
           "make_chain_spec", "batched_maps_fn", "batched_cubes_fn", "batch_options"]

C_KM_S = 299792.458


@dataclass
class BatchedGradients:
    """Result of a batched run (NumPy arrays, leading axis = galaxy).

    Attributes:
        grad, grad_err: Method I WLS gradient and 1σ, dex/kpc ``[B]``.
        z0, z0_err: Method I 12+log(O/H) at r = 0 and 1σ ``[B]``.
        n_bins: annuli with a Method I metallicity ``[B]``.
        measurable: at least two annuli with a metallicity ``[B]``.
        grad2, grad2_err, z02: Method II (median over diagnostics) ``[B]``.
        grad2_spread: half the range of the per-diagnostic gradients ``[B]``.
        grad_diag, grad_diag_err: per-diagnostic WLS gradients ``[B, D]`` (NaN where a
            diagnostic has fewer than ``min_bins_method2`` bins).
        radius: annulus radii ``[B, K]`` kpc; logoh, logoh_err: Method I median and 1σ
            ``[B, K]``; bin_valid: ``[B, K]``.
        diagnostics: names of the D diagnostics; lines: names of the L lines.
        output: the full :class:`~jaxgrad.pipeline.core.ChainOutput` (JAX arrays).
    """

    grad: np.ndarray
    grad_err: np.ndarray
    z0: np.ndarray
    z0_err: np.ndarray
    n_bins: np.ndarray
    measurable: np.ndarray
    grad2: np.ndarray
    grad2_err: np.ndarray
    z02: np.ndarray
    grad2_spread: np.ndarray
    grad_diag: np.ndarray
    grad_diag_err: np.ndarray
    radius: np.ndarray
    logoh: np.ndarray
    logoh_err: np.ndarray
    bin_valid: np.ndarray
    diagnostics: tuple
    lines: tuple
    output: _core.ChainOutput


def _summary(out: _core.ChainOutput, spec: _core.ChainSpec) -> BatchedGradients:
    a = np.asarray
    m1, m2 = out.method1, out.method2
    use = a(out.bins.valid) & a(out.bins.m1.measurable)
    return BatchedGradients(
        grad=a(m1.grad), grad_err=a(m1.grad_err), z0=a(m1.z0), z0_err=a(m1.z0_err),
        n_bins=a(m1.n), measurable=a(out.measurable), grad2=a(m2.grad), grad2_err=a(m2.grad_err),
        z02=a(m2.z0), grad2_spread=a(m2.spread), grad_diag=a(m2.per_diagnostic.grad),
        grad_diag_err=a(m2.per_diagnostic.grad_err), radius=a(out.bins.radius),
        logoh=np.where(use, a(out.bins.m1.median), np.nan),
        logoh_err=np.where(use, a(out.bins.m1.err), np.nan), bin_valid=use,
        diagnostics=spec.met.diagnostics, lines=spec.lines, output=out)


def default_bright_line(lines) -> str:
    """[OIII]5008 if present, else Hα, else the reddest line."""
    for n in ("OIII_5008", "Ha"):
        if n in lines:
            return n
    return max(lines, key=lambda n: _lines.get(n).wavelength)


def make_chain_spec(lines, pixel_scale: float, ny: int, nx: int, *, calibration="sanders24",
                    diagnostics=None, n_annuli: int = 12, bright_line=None,
                    min_width_pix: float = 1.0, fit_geometry: bool = True, geometry_psf_deconvolve: bool = False,
                    homogenise: bool = True, elliptical_psf: bool = False,
                    snr_min: float = 2.5, ratio_snr_min: float = 0.0,
                    default_scatter: float = 0.1, dust_correct: bool = True,
                    dust_law: str = "calzetti", n_grid: int = 512,
                    default_branch: str = "lower", min_bins_method2: int = 3,
                    cosmology=(70.0, 0.3), linefit=None, n_chan: int = 0,
                    has_err_cube: bool = True, rms_window: int = 160,
                    line_mask_kms: float = 800.0, warn: bool = True):
    """Build the static :class:`~jaxgrad.pipeline.core.ChainSpec` (edge; validates).

    See :func:`batched_gradient_from_maps` for the arguments (the value-only options —
    ``max_radius_kpc``, ``outer_snr``, ``radius_mode`` — are traced, see
    :func:`~jaxgrad.pipeline.core.make_options`). Returns (spec, dropped diagnostics).
    """
    from jaxgrad.units import to_internal

    lines = _lines.validate(lines)
    pixel_scale = to_internal(pixel_scale, "arcsec", "pixel_scale")
    if not (np.ndim(pixel_scale) == 0 and pixel_scale > 0):
        raise ValueError(f"pixel_scale must be > 0 arcsec, got {pixel_scale!r}")
    if not (isinstance(n_annuli, (int, np.integer)) and n_annuli >= 2):
        raise ValueError(f"n_annuli must be an integer >= 2, got {n_annuli!r}")
    if not (min_width_pix > 0):
        raise ValueError(f"min_width_pix must be > 0, got {min_width_pix!r}")
    bright_line = bright_line or default_bright_line(lines)
    if bright_line not in lines:
        raise ValueError(f"bright_line {bright_line!r} is not among the lines {lines}")
    met, dropped = _met.make_metallicity_spec(
        lines, calibration, diagnostics=diagnostics, default_scatter=default_scatter,
        n_grid=n_grid, snr_min=snr_min, ratio_snr_min=ratio_snr_min,
        dust_correct=dust_correct, dust_law=dust_law, default_branch=default_branch,
        warn=warn)
    spec = _core.ChainSpec(
        met=met, ny=int(ny), nx=int(nx), pixel_scale=float(pixel_scale), n_annuli=int(n_annuli),
        bright=lines.index(bright_line), min_width_pix=float(min_width_pix),
        fit_geometry=bool(fit_geometry),
        geometry_psf_deconvolve=bool(geometry_psf_deconvolve), homogenise=bool(homogenise),
        elliptical_psf=bool(elliptical_psf), min_bins_method2=int(min_bins_method2),
        cosmology=tuple(float(c) for c in cosmology), linefit=linefit, n_chan=int(n_chan),
        has_err_cube=bool(has_err_cube), rms_window=int(rms_window),
        line_mask_kms=float(line_mask_kms))
    return spec, dropped


# --------------------------------------------------------------------------- validation
def check_errors(errs, name: str = "errs") -> None:
    """ValueError if any finite error is ≤ 0 (non-finite errors only mask pixels)."""
    e = np.asarray(errs)
    fin = np.isfinite(e)
    if np.any(e[fin] <= 0):
        n = int(np.sum(e[fin] <= 0))
        raise ValueError(
            f"{name} must be > 0 where finite; found {n} value(s) <= 0 (min {e[fin].min()!r}). "
            "Use NaN to mask pixels instead of a zero or negative error.")


_BATCH_UNITS = {"psf_fwhm": "arcsec", "max_radius_kpc": "kpc", "z": "", "psf_axis_ratio": ""}


def _batch_vec(x, B, name, dtype, positive=True, trailing=()):
    """Broadcast a scalar / per-galaxy ``[B]`` / per-item ``[B, *trailing]`` argument.

    A 1-D argument of length B is per galaxy; one of length ``trailing[0]`` (≠ B) is per
    item (line or channel) and shared by the batch.
    """
    from jaxgrad.units import to_internal

    x = to_internal(x, _BATCH_UNITS.get(name, ""), name)
    a = np.asarray(x, float)
    if a.ndim == 0:
        a = np.full((B,) + trailing, float(a))
    elif a.shape == (B,):
        a = np.broadcast_to(a.reshape((B,) + (1,) * len(trailing)), (B,) + trailing)
    elif trailing and a.shape == trailing:
        a = np.broadcast_to(a, (B,) + trailing)
    if a.shape != (B,) + trailing:
        raise ValueError(f"{name} must be a scalar, shape [{B}] or {[B, *trailing]}, got {np.shape(x)}")
    if not np.all(np.isfinite(a)) or (positive and np.any(a <= 0)):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}, got {x!r}")
    return jnp.asarray(a, dtype)


def centred_face_on(B: int, dtype) -> _geom.Geometry:
    """A batch of B centred, circular (q = 1, PA = 0) geometries: the default disk."""
    z = jnp.zeros((B,), dtype)
    return _geom.Geometry(z, z, jnp.ones((B,), dtype), z, z, z, jnp.ones((B,), bool))


def _geom_batch(geometry, B, dtype):
    if geometry is None:
        return centred_face_on(B, dtype), True
    if isinstance(geometry, dict):
        geometry = _geom.make_geometry(**geometry, dtype=dtype)
    if not isinstance(geometry, _geom.Geometry):
        raise TypeError(f"geometry must be None, a dict or a Geometry, got {type(geometry).__name__}")
    g = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(jnp.asarray(v), (B,)), geometry)
    return g, False


def batch_options(B: int, max_radius_kpc=None, outer_snr: float = 3.0,
                  radius_mode: str = "midpoint", dtype=None) -> _core.ChainOptions:
    """:class:`~jaxgrad.pipeline.core.ChainOptions` for a batch of B galaxies
    (``max_radius_kpc`` scalar or ``[B]``; None = no cap)."""
    dtype = dtype or jnp.result_type(float)
    return _options_batch(max_radius_kpc, outer_snr, radius_mode, B, dtype)


def _options_batch(max_radius_kpc, outer_snr, radius_mode, B, dtype):
    o = _core.make_options(None, outer_snr, radius_mode, dtype)
    rmax = jnp.full((B,), jnp.inf, dtype) if max_radius_kpc is None else \
        _batch_vec(max_radius_kpc, B, "max_radius_kpc", dtype)
    return _core.ChainOptions(rmax, jnp.full((B,), o.outer_snr), jnp.full((B,), o.radius_code))


# --------------------------------------------------------------------------- jitted
def _mapper(f, chunk_size):
    """vmap over the batch, or a loop over chunks of ``chunk_size`` vmapped galaxies.

    (Chunks are formed explicitly, padding the last one with copies of the first galaxy,
    so outputs with a zero-length axis — e.g. no broad components — reshape fine.)
    """
    vf = jax.vmap(f)
    if chunk_size is None:
        return vf

    def run(*xs):
        B = jax.tree_util.tree_leaves(xs)[0].shape[0]
        n = -(-B // chunk_size)
        pad = n * chunk_size - B

        def split(x):
            if pad:
                x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,) + x.shape[1:])])
            return x.reshape((n, chunk_size) + x.shape[1:])

        out = jax.lax.map(lambda a: vf(*a), jax.tree_util.tree_map(split, xs))
        return jax.tree_util.tree_map(lambda y: y.reshape((n * chunk_size,) + y.shape[2:])[:B], out)

    return run


@lru_cache(maxsize=32)
def batched_maps_fn(spec: _core.ChainSpec, chunk_size: int | None = None):
    """The jitted, vmapped maps chain for a static spec (cached).

    Signature of the returned function:
    ``f(maps [B,L,ny,nx], errs, z [B], psf_fwhm [B,L], psf_q [B], geom (Geometry of [B]),
    opts (ChainOptions of [B])) -> ChainOutput`` with leading axis B.
    """
    def one(m, e, z, f, q, g, r):
        return _core.maps_chain(spec, m, e, z, f, q, g, r)

    return jax.jit(_mapper(one, chunk_size))


@lru_cache(maxsize=32)
def batched_cubes_fn(spec: _core.ChainSpec, chunk_size: int | None = None):
    """The jitted, vmapped cube chain for a static spec (cached).

    ``f(cubes [B,C,ny,nx], errs [B,C,ny,nx], centres_um [C], z [B], psf_fwhm [B,C],
    psf_q [B], geom, opts) -> ChainOutput``.
    """
    def one(c, e, z, f, q, g, r, lam):
        return _core.cube_chain(spec, c, e, lam, z, f, q, g, r)

    mapped = _mapper(one, chunk_size)

    def f(cubes, errs, centres, z, fwhm, q, g, r):
        B = cubes.shape[0]
        lam = jnp.broadcast_to(centres, (B,) + centres.shape)
        return mapped(cubes, errs, z, fwhm, q, g, r, lam)

    return jax.jit(f)


def batched_gradient_from_maps(maps, errs, lines, pixel_scale: float, z, psf_fwhm, *,
                               calibration="sanders24", diagnostics=None,
                               n_annuli: int = 12, psf_axis_ratio=1.0, geometry=None,
                               max_radius_kpc=None, bright_line=None, outer_snr: float = 3.0,
                               min_width_pix: float = 1.0, snr_min: float = 2.5,
                               default_scatter: float = 0.1, dust_correct: bool = True,
                               dust_law: str = "calzetti", n_grid: int = 512,
                               homogenise: bool = True, geometry_psf_deconvolve: bool = False,
                               min_bins_method2: int = 3, radius_mode: str = "midpoint",
                               chunk_size: int | None = None,
                               warn: bool = True) -> BatchedGradients:
    """Measure gradients of a batch of galaxies from line maps (jitted, vmapped).

    Args:
        maps: ``[B, L, ny, nx]`` line fluxes per pixel (any flux unit), ordered as
            ``lines``; NaN/inf pixels are masked.
        errs: ``[B, L, ny, nx]`` 1σ per pixel, > 0 where finite (ValueError otherwise).
        lines: the L line names.
        pixel_scale: arcsec per pixel.
        z: redshift, scalar or ``[B]``.
        psf_fwhm: PSF FWHM (arcsec), scalar, ``[B]`` or ``[B, L]`` (per line map; maps are
            homogenised to the reddest line's PSF).
        calibration: calibration name; diagnostics: diagnostics to use (default all the
            lines allow; for mocks from :func:`jaxgrad.line_maps` use the calibration's
            ``diagnostics_for_lines(lines)`` to stay self-consistent).
        n_annuli: maximum number of annuli (static output size K).
        psf_axis_ratio: PSF b/a (scalar or ``[B]``); the annulus width is the HWHM of the
            geometric-mean axis.
        geometry: None to fit it per galaxy, or a
            :class:`~jaxgrad.pipeline.geometry.Geometry` / dict(x0, y0, q, pa) with
            scalar or ``[B]`` values.
        max_radius_kpc: drop annuli beyond this radius (scalar or ``[B]``; None: no cap).
        bright_line: line for the geometry and outer radius (default [OIII]5008 or Hα).
        outer_snr: minimum S/N of the brightest line per annulus (contiguous from centre).
        min_width_pix: floor of the annulus width in pixels.
        snr_min: minimum line S/N (2.5).
        default_scatter: calibration scatter (dex) where the calibration gives none.
        dust_correct, dust_law: Balmer-decrement correction and curve.
        n_grid: points of the 12+log(O/H) grid of Method I.
        homogenise: PSF-homogenise the maps (when per-line PSFs differ).
        geometry_psf_deconvolve: PSF-deconvolve the fitted axis ratio.
        min_bins_method2: minimum annuli per diagnostic in Method II (3).
        radius_mode: ``"midpoint"`` (Paper A's (a_in + a_out)/2), ``"mean"`` or
            ``"flux_weighted"`` (mean de-projected radius of the annulus' pixels,
            weighted by the brightest line; see :class:`~jaxgrad.pipeline.core.ChainSpec`).
        chunk_size: process the batch in chunks of this size (memory).
        warn: warn about diagnostics dropped for missing lines.

    Returns:
        :class:`BatchedGradients`.
    """
    maps = jnp.asarray(maps)
    if maps.ndim != 4:
        raise ValueError(f"maps must have shape [B, L, ny, nx], got {maps.shape}")
    if np.shape(errs) != maps.shape:
        raise ValueError(f"errs must have the shape of maps {maps.shape}, got {np.shape(errs)}")
    check_errors(errs)
    lines = _lines.validate(lines)
    B, L, ny, nx = maps.shape
    if L != len(lines):
        raise ValueError(f"maps have {L} line maps but {len(lines)} line names were given")
    dtype = jnp.result_type(maps, float)
    fw = _batch_vec(psf_fwhm, B, "psf_fwhm", dtype, trailing=(L,))
    # nothing to homogenise when every map of a galaxy has the same PSF: skip the step
    # (it is exact then, and compiling it costs time)
    homogenise = bool(homogenise and np.any(np.ptp(np.asarray(fw), axis=-1) > 0))
    spec, _ = make_chain_spec(
        lines, pixel_scale, ny, nx, calibration=calibration, diagnostics=diagnostics,
        n_annuli=n_annuli, bright_line=bright_line, min_width_pix=min_width_pix,
        fit_geometry=geometry is None,
        geometry_psf_deconvolve=geometry_psf_deconvolve, homogenise=homogenise,
        snr_min=snr_min, default_scatter=default_scatter, dust_correct=dust_correct,
        dust_law=dust_law, n_grid=n_grid, min_bins_method2=min_bins_method2, warn=warn)
    zb = _batch_vec(z, B, "z", dtype)
    qb = _batch_vec(psf_axis_ratio, B, "psf_axis_ratio", dtype)
    opts = _options_batch(max_radius_kpc, outer_snr, radius_mode, B, dtype)
    g, _ = _geom_batch(geometry, B, dtype)
    out = batched_maps_fn(spec, chunk_size)(maps.astype(dtype), jnp.asarray(errs, dtype), zb,
                                           fw, qb, g, opts)
    return _summary(out, spec)


def linefit_spec_for(lines, centres_um, **kw):
    """A :class:`~jaxgrad.pipeline.linefit.LineFitSpec` sized for the given channels."""
    c = np.asarray(centres_um, float)
    kms = np.min(np.diff(c) / (0.5 * (c[1:] + c[:-1]))) * C_KM_S
    return _lf.make_linefit_spec(lines, float(kms), n_channels=len(c), channel_centres_um=c, **kw)


def check_wavelengths(centres_um, n_chan: int):
    """ValueError unless the centres are ``[C]`` finite, positive and increasing."""
    c = np.asarray(centres_um, float)
    if c.shape != (n_chan,):
        raise ValueError(f"wavelengths_um must have shape [{n_chan}] (one per channel), got {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c <= 0) or np.any(np.diff(c) <= 0):
        raise ValueError("wavelengths_um must be finite, positive and strictly increasing (µm)")
    return c


def batched_gradient_from_cubes(cubes, errs, wavelengths_um, lines, pixel_scale: float, z,
                                psf_fwhm, *, calibration="sanders24", diagnostics=None,
                                n_annuli: int = 12, psf_axis_ratio=1.0, geometry=None,
                                max_radius_kpc=None, bright_line=None, outer_snr: float = 3.0,
                                min_width_pix: float = 1.0, snr_min: float = 2.5,
                                default_scatter: float = 0.1, dust_correct: bool = True,
                                dust_law: str = "calzetti", n_grid: int = 512,
                                homogenise: bool = True, sigma_init_kms: float = 150.0,
                                broad=(), rms_window: int = 160, line_mask_kms: float = 800.0,
                                min_bins_method2: int = 3, radius_mode: str = "midpoint",
                                chunk_size: int | None = None,
                                linefit_options: dict | None = None,
                                warn: bool = True) -> BatchedGradients:
    """Measure gradients of a batch of galaxies from spectral cubes (jitted, vmapped).

    As :func:`batched_gradient_from_maps`, with per-annulus summed spectra fitted by
    :func:`~jaxgrad.pipeline.linefit.fit_spectrum` (shared redshift ±2 channels and
    width ±5 channels, tied doublets, linear baselines).

    Args:
        cubes: ``[B, C, ny, nx]`` flux per channel per pixel; NaN/inf masked (a channel
            that is mostly non-finite is masked as a channel).
        errs: ``[B, C, ny, nx]`` ERR cubes (> 0 where finite), or None to estimate the
            error spectrum from the RMS in a moving window of ``rms_window`` channels
            with the lines masked (Paper A).
        wavelengths_um: ``[C]`` channel centres (observed µm), shared by the batch.
        lines, pixel_scale, z: as for maps (every line must lie inside the cube).
        psf_fwhm: arcsec, scalar, ``[B]`` or ``[B, C]`` (per channel; homogenised to the
            channel of the reddest line).
        sigma_init_kms: initial line σ (intrinsic ⊕ LSF), km/s.
        broad: lines with a broad component (subset of Hα, Hβ, [OIII]5008).
        rms_window, line_mask_kms: moving-RMS window (channels) and line-mask half-width.
        linefit_options: extra :func:`~jaxgrad.pipeline.linefit.make_linefit_spec`
            arguments (grid sizes, ``pad_kms``, ...).
        Other arguments: see :func:`batched_gradient_from_maps`.

    Returns:
        :class:`BatchedGradients` (``output.linefit`` holds the per-annulus line fits).
    """
    cubes = jnp.asarray(cubes)
    if cubes.ndim != 4:
        raise ValueError(f"cubes must have shape [B, C, ny, nx], got {cubes.shape}")
    B, C, ny, nx = cubes.shape
    lines = _lines.validate(lines)
    centres = check_wavelengths(wavelengths_um, C)
    has_err = errs is not None
    if has_err:
        if np.shape(errs) != cubes.shape:
            raise ValueError(f"errs must have the shape of cubes {cubes.shape}, got {np.shape(errs)}")
        check_errors(errs)
    zs = np.broadcast_to(np.asarray(z, float), (B,))
    for n in lines:
        for lam in _core._component_lams([n]):
            obs = lam / 1e4 * (1 + zs)
            if np.any(obs < centres[0]) or np.any(obs > centres[-1]):
                raise ValueError(f"line {n} at z={zs.min():.3f}-{zs.max():.3f} falls outside the "
                                 f"cube ({centres[0]:.4f}-{centres[-1]:.4f} µm); drop it from lines")
    dtype = jnp.result_type(cubes, float)
    lf = linefit_spec_for(lines, centres, sigma_init_kms=sigma_init_kms, broad=broad,
                          **(linefit_options or {}))
    fw = _batch_vec(psf_fwhm, B, "psf_fwhm", dtype, trailing=(C,))
    homogenise = bool(homogenise and np.any(np.ptp(np.asarray(fw), axis=-1) > 0))
    spec, _ = make_chain_spec(
        lines, pixel_scale, ny, nx, calibration=calibration, diagnostics=diagnostics,
        n_annuli=n_annuli, bright_line=bright_line, min_width_pix=min_width_pix,
        fit_geometry=geometry is None, homogenise=homogenise,
        snr_min=snr_min, default_scatter=default_scatter, dust_correct=dust_correct,
        dust_law=dust_law, n_grid=n_grid, min_bins_method2=min_bins_method2, linefit=lf,
        n_chan=C, has_err_cube=has_err, rms_window=rms_window, line_mask_kms=line_mask_kms,
        warn=warn)
    zb = _batch_vec(z, B, "z", dtype)
    qb = _batch_vec(psf_axis_ratio, B, "psf_axis_ratio", dtype)
    opts = _options_batch(max_radius_kpc, outer_snr, radius_mode, B, dtype)
    g, _ = _geom_batch(geometry, B, dtype)
    e = jnp.asarray(errs, dtype) if has_err else jnp.zeros((B, 1, 1, 1), dtype)  # ignored
    out = batched_cubes_fn(spec, chunk_size)(cubes.astype(dtype), e, jnp.asarray(centres, dtype),
                                            zb, fw, qb, g, opts)
    return _summary(out, spec)
