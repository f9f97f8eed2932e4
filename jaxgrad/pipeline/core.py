"""The per-galaxy observer chain as pure, fixed-shape JAX functions (vmappable).

``maps_chain`` and ``cube_chain`` run Paper A's measurement on one galaxy: PSF
homogenisation → geometry → elliptical annuli (a fixed maximum ``n_annuli`` with a
validity mask) → summed fluxes, or summed spectra + line fits → Method I (gridded
posterior) and Method II per annulus → weighted least-squares gradients. Nothing in them
branches on data values, so :mod:`jaxgrad.pipeline.batched` vmaps them over thousands of
mocks. The user-facing, validated entry points are in :mod:`jaxgrad.pipeline.measure`.

The static configuration is a :class:`ChainSpec` (hashable, built by the edge functions);
the traced inputs are arrays. Units: arcsec on the sky, kpc for radii, µm for
wavelengths, fluxes in any consistent unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import lines as _lines
from jaxgrad.physics import cosmology as _cosmo
from jaxgrad.pipeline import annuli as _ann
from jaxgrad.pipeline import geometry as _geom
from jaxgrad.pipeline import gradient as _grad
from jaxgrad.pipeline import linefit as _lf
from jaxgrad.pipeline import metallicity as _met
from jaxgrad.pipeline import psf_match as _pm

__all__ = ["ChainSpec", "ChainOptions", "make_options", "RADIUS_MODES", "BinMeasurement", "ChainOutput", "Prepared", "maps_chain",
           "cube_chain", "prepare_maps", "prepare_cube", "fit_spectra", "bins_to_gradients",
           "bright_line_map"]

C_KM_S = 299792.458


@dataclass(frozen=True)
class ChainSpec:
    """Static configuration of the per-galaxy chain (hashable; fixes shapes and paths).

    Attributes:
        met: :class:`~jaxgrad.pipeline.metallicity.MetallicitySpec` (lines, calibration,
            diagnostics, S/N rules, dust).
        ny, nx: field size (pixels); pixel_scale: arcsec per pixel.
        n_annuli: maximum number of annuli (the output size; unused ones are masked).
        bright: index (into ``met.lines``) of the brightest line, used for the geometry
            fit and the outer radius.
        min_width_pix: floor of the annulus width, pixels.
        fit_geometry: fit the geometry (else it is an input).
        geometry_psf_deconvolve: remove the PSF in quadrature before forming b/a.
        homogenise: convolve to the PSF of the reddest line first.
        elliptical_psf: PSFs are elliptical (slow FFT path) instead of circular.
        min_bins_method2: Method II uses diagnostics with at least this many bins (3).
        cosmology: (H0, Ωm) for kpc/arcsec.
        linefit: :class:`~jaxgrad.pipeline.linefit.LineFitSpec` (cubes only).
        n_chan: channels (cubes only).
        has_err_cube: an ERR cube is given (else error spectra from the moving RMS).
        rms_window: moving-RMS window in channels (Paper A: 160).
        line_mask_kms: ± half-width (km/s) of the channels masked around lines for the
            RMS and integrated for the brightest-line map.
        continuum_kms: width (km/s) of the side bands used for the map's continuum.
        bad_channel_frac: a channel with more than this fraction of non-finite spaxels is
            masked (instead of masking those spaxels).

    Options that only change values, not shapes (outer-radius S/N, radius cap, radius
    definition), are traced: see :class:`ChainOptions`.
    """

    met: _met.MetallicitySpec
    ny: int
    nx: int
    pixel_scale: float
    n_annuli: int = 12
    bright: int = 0
    min_width_pix: float = 1.0
    fit_geometry: bool = True
    geometry_psf_deconvolve: bool = False
    homogenise: bool = True
    elliptical_psf: bool = False
    min_bins_method2: int = 3
    cosmology: tuple[float, float] = (70.0, 0.3)
    linefit: _lf.LineFitSpec | None = None
    n_chan: int = 0
    has_err_cube: bool = True
    rms_window: int = 160
    line_mask_kms: float = 800.0
    continuum_kms: float = 2000.0
    bad_channel_frac: float = 0.5

    @property
    def lines(self) -> tuple[str, ...]:
        return self.met.lines

    @property
    def reddest(self) -> int:
        lam = [_lines.get(n).wavelength for n in self.lines]
        return int(np.argmax(lam))


RADIUS_MODES = ("midpoint", "mean", "flux_weighted")


class ChainOptions(NamedTuple):
    """Traced options of the chain (change them without recompiling; batch adds axis 0).

    Fields:
        max_radius_kpc: annuli beyond this radius are dropped (inf: no cap).
        outer_snr: an annulus is kept while the brightest line's S/N in it is ≥ this (and
            all inner ones are kept) — the outer radius.
        radius_code: index into :data:`RADIUS_MODES`: 0 ``"midpoint"`` (Paper A:
            (a_in + a_out)/2), 1 ``"mean"`` (mean de-projected radius of the annulus'
            pixels), 2 ``"flux_weighted"`` (weighted by the brightest line's flux: the
            radius at which the summed ratio is effectively measured, less biased than
            the midpoint when annuli are only a pixel or two wide).
    """

    max_radius_kpc: jax.Array
    outer_snr: jax.Array
    radius_code: jax.Array


def make_options(max_radius_kpc=None, outer_snr=3.0, radius_mode="midpoint", dtype=None) -> ChainOptions:
    """Validated :class:`ChainOptions` (scalars; broadcast them for a batch)."""
    if radius_mode not in RADIUS_MODES:
        raise ValueError(f"radius_mode must be one of {RADIUS_MODES}, got {radius_mode!r}")
    rmax = np.inf if max_radius_kpc is None else float(max_radius_kpc)
    if not (rmax > 0):
        raise ValueError(f"max_radius_kpc must be > 0 kpc (or None), got {max_radius_kpc!r}")
    if not (np.isfinite(outer_snr) and outer_snr >= 0):
        raise ValueError(f"outer_snr must be a finite value >= 0, got {outer_snr!r}")
    dtype = dtype or jnp.result_type(float)
    return ChainOptions(jnp.asarray(rmax, dtype), jnp.asarray(outer_snr, dtype),
                        jnp.asarray(RADIUS_MODES.index(radius_mode), jnp.int32))


class BinMeasurement(NamedTuple):
    """Per-bin measurements (leading axis K bins).

    Fields:
        radius: ``[K]`` kpc; valid: ``[K]`` bin usable (inside the outer radius, has
        pixels); npix: ``[K]``; flux, flux_err: ``[K, L]``;
        m1: :class:`~jaxgrad.pipeline.metallicity.Method1Result` per bin;
        m2: :class:`~jaxgrad.pipeline.metallicity.Method2Result` per bin;
        av_global: galaxy-wide A_V (mag) used where a bin has no Balmer decrement.
    """

    radius: jax.Array
    valid: jax.Array
    npix: jax.Array
    flux: jax.Array
    flux_err: jax.Array
    m1: _met.Method1Result
    m2: _met.Method2Result
    av_global: jax.Array


class ChainOutput(NamedTuple):
    """Everything the chain measures for one galaxy (a batch adds axis 0 everywhere).

    Fields:
        geometry: :class:`~jaxgrad.pipeline.geometry.Geometry` used.
        width: annulus width, arcsec; psf_fwhm: PSF FWHM after homogenisation, arcsec.
        kpc_per_arcsec: angular scale at z.
        bins: :class:`BinMeasurement` (``K = n_annuli``).
        method1: :class:`~jaxgrad.pipeline.gradient.GradientFit` (WLS through Method I).
        method2: :class:`~jaxgrad.pipeline.gradient.Method2Gradient`.
        measurable: at least two bins with a metallicity.
        bright_snr: ``[K]`` S/N of the brightest line per annulus.
        linefit: per-annulus :class:`~jaxgrad.pipeline.linefit.LineFitResult` (cubes),
            else None.
    """

    geometry: _geom.Geometry
    width: jax.Array
    psf_fwhm: jax.Array
    kpc_per_arcsec: jax.Array
    bins: BinMeasurement
    method1: _grad.GradientFit
    method2: _grad.Method2Gradient
    measurable: jax.Array
    bright_snr: jax.Array
    linefit: _lf.LineFitResult | None


# --------------------------------------------------------------------------- pieces
def bins_to_gradients(flux, flux_err, radius, valid, met: _met.MetallicitySpec,
                      min_bins_method2: int = 3, av_global=None):
    """Per-bin Method I/II metallicities and the two gradients (traceable).

    Args:
        flux, flux_err: ``[K, L]`` line fluxes and 1σ per bin.
        radius: ``[K]`` kpc.
        valid: ``[K]`` bins to use.
        met: metallicity spec.
        min_bins_method2: Method II's minimum bins per diagnostic.
        av_global: A_V fallback (mag) for bins without a Balmer decrement; None → from
            the summed fluxes of the valid bins.

    Returns:
        (BinMeasurement fields m1, m2, av_global, method1 fit, method2 fit).
    """
    if av_global is None:
        vf = valid[:, None]
        ftot = jnp.sum(jnp.where(vf, flux, 0.0), axis=0)
        etot = jnp.sqrt(jnp.sum(jnp.where(vf & jnp.isfinite(flux_err), flux_err, 0.0) ** 2, axis=0))
        etot = jnp.where(jnp.all(jnp.isfinite(flux_err) | ~vf, axis=0), etot, jnp.inf)
        av_global, _ = _met.balmer_av(ftot, etot, met, 0.0)
    m1 = jax.vmap(lambda f, e: _met.method1_grid(f, e, met, av_global))(flux, flux_err)
    m2 = jax.vmap(lambda f, e: _met.method2_inversion(f, e, met, av_global))(flux, flux_err)
    use1 = valid & m1.measurable
    fit1 = _grad.wls_gradient(radius, m1.median, m1.err, use1)
    fit2 = _grad.method2_gradient(radius, m2.logoh, m2.err, m2.valid & valid[:, None],
                                  min_bins_method2)
    return m1, m2, av_global, fit1, fit2


def _pixel_good(stack, err):
    """Per-pixel usability over lines/channels: ``good [ny, nx]`` and ``present [N]``."""
    ok = jnp.isfinite(stack) & jnp.isfinite(err) & (err > 0)
    present = jnp.any(ok, axis=(1, 2))
    good = jnp.all(ok | ~present[:, None, None], axis=0)
    return good, present


def _geometry(spec: ChainSpec, bright_map, geom_in, psf_fwhm):
    if not spec.fit_geometry:
        return geom_in
    return _geom.fit_gaussian_2d(
        bright_map, spec.pixel_scale,
        psf_fwhm=psf_fwhm if spec.geometry_psf_deconvolve else None)


def _annuli(spec: ChainSpec, geom, psf_fwhm, psf_q, good, z, bright_map, radius_code):
    w = _ann.annulus_width(psf_fwhm, spec.pixel_scale, psf_q, spec.min_width_pix)
    idx, a, _ = _ann.annulus_index(geom, spec.ny, spec.nx, spec.pixel_scale, w, spec.n_annuli)
    weights = _ann.annulus_weights(idx, spec.n_annuli, good)
    scale = _cosmo.kpc_per_arcsec(z, *spec.cosmology)
    mid = _ann.kpc_radius(w, spec.n_annuli, scale)
    fw = jnp.where(good & jnp.isfinite(bright_map), jnp.maximum(bright_map, 0.0), 0.0)
    # the annuli's pixel count, Σa, flux and Σ flux·a in one product with the one-hot
    # weights (was: the weights times the flux map materialised, two sums, two products)
    a = a.astype(weights.dtype)
    fw = fw.astype(weights.dtype)
    sums = weights @ jnp.stack([jnp.ones_like(a), a, fw, fw * a], axis=-1).reshape(-1, 4)
    radii = [mid]
    for tot, sum_a in ((sums[:, 0], sums[:, 1]), (sums[:, 2], sums[:, 3])):
        mean_a = sum_a / jnp.where(tot > 0, tot, 1.0)
        radii.append(jnp.where(tot > 0, mean_a * scale, mid))
    radius = jnp.stack(radii)[radius_code]
    return w, weights, radius, scale


def _finish(spec, geom, w, psf_eff, scale, radius, npix, flux, ferr, bright_snr,
            opts: ChainOptions, linefit):
    ok = (npix > 0) & (bright_snr >= opts.outer_snr) & (radius <= opts.max_radius_kpc)
    valid = _ann.contiguous_valid(ok)
    m1, m2, avg, fit1, fit2 = bins_to_gradients(flux, ferr, radius, valid, spec.met,
                                                spec.min_bins_method2)
    bins = BinMeasurement(radius=radius, valid=valid, npix=npix, flux=flux, flux_err=ferr,
                          m1=m1, m2=m2, av_global=avg)
    return ChainOutput(geometry=geom, width=w, psf_fwhm=psf_eff, kpc_per_arcsec=scale,
                       bins=bins, method1=fit1, method2=fit2, measurable=fit1.valid,
                       bright_snr=bright_snr, linefit=linefit)


# --------------------------------------------------------------------------- maps
class Prepared(NamedTuple):
    """Data after masking, PSF homogenisation and the geometry fit (one galaxy).

    Fields:
        stack: ``[L, ny, nx]`` line maps (maps) or ``[C, ny, nx]`` cube, masked values 0.
        err: matching 1σ (None for a cube without ERR).
        good: ``[ny, nx]`` usable pixels; present: ``[L]`` lines with data (maps) or
            ``[C]`` usable channels (cubes).
        bright, bright_err: ``[ny, nx]`` brightest-line map and its 1σ.
        geometry: :class:`~jaxgrad.pipeline.geometry.Geometry`.
        psf_fwhm: FWHM after homogenisation (arcsec); kpc_per_arcsec: scale at z.
        a, angle: ``[ny, nx]`` de-projected radius (arcsec) and angle from the major axis.
    """

    stack: jax.Array
    err: jax.Array | None
    good: jax.Array
    present: jax.Array
    bright: jax.Array
    bright_err: jax.Array
    geometry: _geom.Geometry
    psf_fwhm: jax.Array
    kpc_per_arcsec: jax.Array
    a: jax.Array
    angle: jax.Array


def prepare_maps(spec: ChainSpec, maps, errs, z, psf_fwhm, psf_q, geom_in) -> Prepared:
    """Mask, homogenise and fit the geometry of a stack of line maps (traceable)."""
    dtype = jnp.result_type(maps, float)
    maps = jnp.asarray(maps, dtype)
    errs = jnp.asarray(errs, dtype)
    good, present = _pixel_good(maps, errs)
    psf_fwhm = jnp.broadcast_to(jnp.asarray(psf_fwhm, dtype), (len(spec.lines),))
    var = errs**2
    if spec.homogenise:
        tgt = psf_fwhm[spec.reddest]
        src_q = jnp.broadcast_to(psf_q, psf_fwhm.shape) if spec.elliptical_psf else None
        maps, var = _pm.homogenise_stack(maps, var, spec.pixel_scale, psf_fwhm, tgt,
                                         src_q=src_q, tgt_q=psf_q)
        psf_eff = tgt
    else:
        psf_eff = jnp.max(psf_fwhm)
    errs = jnp.sqrt(var)
    maps = jnp.where(good, maps, 0.0)
    errs = jnp.where(good, errs, 0.0)
    bright = jnp.where(good, maps[spec.bright], jnp.nan)
    geom = _geometry(spec, bright, geom_in, psf_eff)
    scale = _cosmo.kpc_per_arcsec(z, *spec.cosmology)
    a, ang = _geom.disk_radius_angle(geom, spec.ny, spec.nx, spec.pixel_scale, dtype)
    return Prepared(maps, errs, good, present, maps[spec.bright], errs[spec.bright], geom,
                    psf_eff, scale, a, ang)


def maps_chain(spec: ChainSpec, maps, errs, z, psf_fwhm, psf_q, geom_in: _geom.Geometry,
               opts: ChainOptions) -> ChainOutput:
    """Paper A's chain on a stack of line maps of one galaxy (traceable, fixed shapes).

    Args:
        spec: :class:`ChainSpec` (static).
        maps: ``[L, ny, nx]`` line fluxes per pixel (ordered as ``spec.lines``);
            non-finite pixels are masked (for every line); a line whose map has no finite
            pixel is missing (its diagnostics are dropped).
        errs: ``[L, ny, nx]`` 1σ per pixel (> 0; non-finite = masked).
        z: redshift.
        psf_fwhm: ``[L]`` PSF FWHM per line map, arcsec (major axis).
        psf_q: PSF axis ratio (scalar; the same for all maps).
        geom_in: geometry to use when ``spec.fit_geometry`` is False.
        opts: :class:`ChainOptions` (radius cap, outer-radius S/N, radius definition).

    Returns:
        :class:`ChainOutput`.
    """
    p = prepare_maps(spec, maps, errs, z, psf_fwhm, psf_q, geom_in)
    w, weights, radius, scale = _annuli(spec, p.geometry, p.psf_fwhm, psf_q, p.good, z, p.bright,
                                        opts.radius_code)
    flux, ferr, npix = _ann.sum_maps(p.stack, p.err, weights)
    ferr = jnp.where(p.present[None, :], ferr, jnp.inf)
    bsnr = flux[:, spec.bright] / jnp.where(ferr[:, spec.bright] > 0, ferr[:, spec.bright], jnp.inf)
    return _finish(spec, p.geometry, w, p.psf_fwhm, scale, radius, npix, flux, ferr, bsnr,
                   opts, None)


# --------------------------------------------------------------------------- cubes
def _component_lams(names):
    return _ann.component_wavelengths(names)


def bright_line_map(cube, err, centres_um, z, line: str, all_lines, half_width_kms: float,
                    continuum_kms: float, chan_ok=None):
    """Continuum-subtracted integrated map of one line and its 1σ map (traceable).

    Sums channels within ±``half_width_kms`` of the line's components and subtracts the
    mean of side-band channels (between ``half_width_kms`` and ``half_width_kms +
    continuum_kms`` of the line, away from every line) times the number of summed
    channels. The error map is sqrt(Σ ERR²) over the summed channels, or (``err`` None)
    the side-band standard deviation × √n.

    Args:
        cube: ``[C, ny, nx]``; err: ``[C, ny, nx]`` or None; centres_um: ``[C]``;
        z: redshift; line: the line's name; all_lines: every line (kept out of the side
        bands); half_width_kms, continuum_kms: widths; chan_ok: ``[C]`` usable channels.

    Returns:
        (map ``[ny, nx]``, err_map ``[ny, nx]``).
    """
    dtype = cube.dtype
    lam = jnp.asarray(_component_lams([line]), dtype) / 1e4 * (1.0 + z)
    dv = (centres_um[:, None] / lam[None] - 1.0) * C_KM_S
    adv = jnp.min(jnp.abs(dv), axis=1)
    on = adv <= half_width_kms
    other = _ann.line_channel_mask(centres_um, z, all_lines, half_width_kms)
    side = (adv > half_width_kms) & (adv <= half_width_kms + continuum_kms) & ~other
    if chan_ok is not None:
        on = on & chan_ok
        side = side & chan_ok
    x = jnp.where(jnp.isfinite(cube), cube, 0.0)
    n_on = jnp.sum(on)
    n_side = jnp.maximum(jnp.sum(side), 1)
    s_on = jnp.tensordot(on.astype(dtype), x, axes=1)
    mean_side = jnp.tensordot(side.astype(dtype), x, axes=1) / n_side
    m = s_on - n_on * mean_side
    if err is not None:
        e = jnp.where(jnp.isfinite(err), err, 0.0)
        em = jnp.sqrt(jnp.tensordot(on.astype(dtype), e**2, axes=1))
    else:
        var_side = jnp.tensordot(side.astype(dtype), (x - mean_side[None]) ** 2, axes=1) / jnp.maximum(n_side - 1, 1)
        em = jnp.sqrt(var_side * n_on)
    return m, em


def _cube_masks(spec, cube, err):
    """Bad channels (mostly non-finite) and bad spaxels (non-finite elsewhere)."""
    bad = ~jnp.isfinite(cube)
    if err is not None:
        bad = bad | ~jnp.isfinite(err) | (err <= 0)
    # float reductions: XLA's CPU backend reduces a float cube ~1.5-2x faster than a bool
    # one (mean / any), and these two passes run on every cube the pipeline sees
    badf = bad.astype(cube.dtype)
    chan_ok = jnp.mean(badf, axis=(1, 2)) <= spec.bad_channel_frac
    spax_bad = jnp.max(jnp.where(chan_ok[:, None, None], badf, 0.0), axis=0) > 0
    return chan_ok, ~spax_bad


def prepare_cube(spec: ChainSpec, cube, err, centres_um, z, psf_fwhm, psf_q, geom_in) -> Prepared:
    """Mask, homogenise, build the brightest-line map and fit the geometry (traceable)."""
    dtype = jnp.result_type(cube, float)
    cube = jnp.asarray(cube, dtype)
    centres_um = jnp.asarray(centres_um, dtype)
    err = jnp.asarray(err, dtype) if spec.has_err_cube else None
    # an error the same in every spaxel may come as [C, 1, 1] (mocks: one σ per mock); it
    # stays that shape (masked spaxels have no weight in the annuli, bad channels are
    # left out of the line fits), except where homogenisation needs a variance cube
    uniform_err = err is not None and err.shape[-2:] == (1, 1)
    if uniform_err and spec.homogenise:
        err, uniform_err = jnp.broadcast_to(err, cube.shape), False
    chan_ok, spax_ok = _cube_masks(spec, cube, err)
    C = spec.n_chan
    psf_fwhm = jnp.broadcast_to(jnp.asarray(psf_fwhm, dtype), (C,))
    red_lam = _lines.get(spec.lines[spec.reddest]).wavelength / 1e4 * (1.0 + z)
    tgt = psf_fwhm[jnp.clip(jnp.searchsorted(centres_um, red_lam), 0, C - 1)]
    if spec.homogenise:
        src_q = jnp.broadcast_to(psf_q, (C,)) if spec.elliptical_psf else None
        var = None if err is None else err**2
        x = jnp.where(chan_ok[:, None, None] & spax_ok[None], cube, jnp.nan)
        cube, var = _pm.homogenise_stack(x, var, spec.pixel_scale, psf_fwhm, tgt,
                                         src_q=src_q, tgt_q=psf_q)
        err = None if var is None else jnp.sqrt(var)
    keep = spax_ok[None] & chan_ok[:, None, None]
    cube = jnp.where(keep, cube, 0.0)
    if err is not None and not uniform_err:
        err = jnp.where(keep, err, 0.0)
    bmap, bmap_err = bright_line_map(cube, err, centres_um, z, spec.lines[spec.bright],
                                     spec.lines, spec.line_mask_kms, spec.continuum_kms, chan_ok)
    geom = _geometry(spec, jnp.where(spax_ok, bmap, jnp.nan), geom_in, tgt)
    scale = _cosmo.kpc_per_arcsec(z, *spec.cosmology)
    a, ang = _geom.disk_radius_angle(geom, spec.ny, spec.nx, spec.pixel_scale, dtype)
    return Prepared(cube, err, spax_ok, chan_ok, jnp.where(spax_ok, bmap, 0.0),
                    jnp.where(spax_ok, bmap_err, 0.0), geom, tgt, scale, a, ang)


def fit_spectra(spec: ChainSpec, spectra, espec, centres_um, z, chan_ok):
    """Line fits of ``[K, C]`` spectra (error spectra ``espec`` or None: moving RMS)."""
    if espec is None:
        lmask = _ann.line_channel_mask(centres_um, z, spec.lines, spec.line_mask_kms)
        espec = _ann.moving_rms(spectra, lmask | ~chan_ok, spec.rms_window)
    edges = _ann.channel_edges_from_centres(centres_um)
    return jax.vmap(lambda f, e: _lf.fit_spectrum(spec.linefit, f, e, edges, z, chan_ok))(spectra, espec)


def cube_chain(spec: ChainSpec, cube, err, centres_um, z, psf_fwhm, psf_q,
               geom_in: _geom.Geometry, opts: ChainOptions) -> ChainOutput:
    """Paper A's chain on a spectral cube of one galaxy (traceable, fixed shapes).

    Args:
        spec: :class:`ChainSpec` with ``linefit`` set (static).
        cube: ``[C, ny, nx]`` flux per channel per pixel.
        err: ``[C, ny, nx]`` 1σ, or ``[C, 1, 1]`` when it is the same in every spaxel
            (ignored when ``spec.has_err_cube`` is False).
        centres_um: ``[C]`` channel centre wavelengths, µm (observed frame).
        z: redshift (initial value of the line fits).
        psf_fwhm: ``[C]`` PSF FWHM per channel, arcsec.
        psf_q: PSF axis ratio.
        geom_in: geometry used when ``spec.fit_geometry`` is False.
        opts: :class:`ChainOptions`.

    Returns:
        :class:`ChainOutput` (with per-annulus line fits in ``linefit``).
    """
    centres_um = jnp.asarray(centres_um, jnp.result_type(cube, float))
    p = prepare_cube(spec, cube, err, centres_um, z, psf_fwhm, psf_q, geom_in)
    w, weights, radius, scale = _annuli(spec, p.geometry, p.psf_fwhm, psf_q, p.good, z, p.bright,
                                        opts.radius_code)
    spectra, espec = _ann.sum_spectra(p.stack, p.err, weights)
    fits = fit_spectra(spec, spectra, espec, centres_um, z, p.present)
    npix = jnp.sum(weights, axis=1)
    bflux = weights @ p.bright.ravel()
    berr = jnp.sqrt(weights @ p.bright_err.ravel() ** 2)
    bsnr = bflux / jnp.where(berr > 0, berr, jnp.inf)
    return _finish(spec, p.geometry, w, p.psf_fwhm, scale, radius, npix, fits.flux,
                   fits.flux_err, bsnr, opts, fits)
