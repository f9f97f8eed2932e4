"""FITS input and output with WCS and units (astropy); results out as FITS tables and NetCDF.

This is the edge where astropy Quantities stop: functions accept a pixel scale as a float
(arcsec) or an angle Quantity, wavelengths as floats (µm) or length/frequency Quantities
(:func:`as_arcsec`, :func:`as_um`), and return plain NumPy arrays in jaxgrad's internal
units.

Internal flux unit (:data:`INTERNAL_FLUX_UNIT`): 1e-18 erg/s/cm², per pixel for line-flux
maps and per channel per pixel for cubes (as :mod:`jaxgrad.forward`).

**Unit conversion** (:func:`flux_conversion`). ``BUNIT`` is parsed with astropy and one
of four cases applies, tried in this order:

1. a flux (erg/s/cm², W/m², ...): per pixel (maps) or per channel per pixel (cubes);
   only rescaled;
2. a surface brightness of a flux (flux/sr, flux/arcsec²): × pixel solid angle Ω_pix;
3. (cubes only) a spectral flux density per pixel (Jy, MJy, erg/s/cm²/Å, ...): converted
   to f_λ at the channel centre λ_c (``astropy.units.spectral_density``) and × the
   channel width Δλ (midpoint rule, exact for a flux density constant across the
   channel);
4. (cubes only) a surface brightness of a flux density, e.g. NIRSpec ``s3d`` cubes in
   MJy/sr: × Ω_pix, then as 3. Written out, for f_ν in MJy/sr:
   F_chan [1e-18 erg/s/cm²] = f_ν · 1e-17 [erg/s/cm²/Hz per MJy] · Ω_pix [sr] ·
   c Δλ / λ_c² / 1e-18.

A file without ``BUNIT`` is taken to be in the internal unit already (with a
UserWarning).

**Cube files** (:func:`write_cube`, :func:`read_cube`) follow the NIRSpec ``s3d`` layout:
an empty PRIMARY HDU, then ``SCI`` (flux), ``ERR`` (1σ), ``DQ`` (uint32, 0 = good, bit 0
= DO_NOT_USE), arrays ``[n_chan, ny, nx]``. The celestial WCS is a TAN projection centred
on the field centre with ``CDELT1 = −pixel_scale`` (East to the left, i.e. towards −x, the
sky convention of :mod:`jaxgrad.physics.disk`: PA East of North, counter-clockwise from
+y), ``CDELT2 = +pixel_scale`` (deg). The spectral axis is ``CTYPE3 = 'WAVE'``,
``CUNIT3 = 'um'`` (vacuum). Channels that are not uniform in wavelength (constant-velocity
channels, per-line windows) cannot be written as a linear WCS; they are stored exactly in
an extra ``WAVELENGTH`` BinTable extension (columns ``WAVELENGTH`` = channel centre and
``WIDTH`` = channel width, µm), which :func:`read_cube` prefers when present, while the
``SCI`` header carries an *approximate* linear axis (first centre, mean spacing) for
viewers and the keyword ``WAVETAB = 'WAVELENGTH'``. This replaces the FITS ``-TAB``
algorithm, which astropy can read but not write conveniently.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from jaxgrad import lines as _lines
from jaxgrad.instrument import psf as _psf

__all__ = [
    "INTERNAL_FLUX_UNIT",
    "BUNIT_INTERNAL",
    "CubeData",
    "MapsData",
    "FitsFileNotFoundError",
    "as_arcsec",
    "as_um",
    "flux_conversion",
    "read_cube",
    "read_maps",
    "read_psf",
    "write_cube",
    "write_maps",
    "write_table",
    "save_idata",
]

INTERNAL_FLUX_UNIT = u.Unit(1e-18 * u.erg / u.s / u.cm**2)
BUNIT_INTERNAL = "1e-18 erg / (s cm2)"
_FLUX = u.erg / u.s / u.cm**2
_FLAM = u.erg / u.s / u.cm**2 / u.um
DQ_DO_NOT_USE = 1


class FitsFileNotFoundError(FileNotFoundError, ValueError):
    """A FITS file that does not exist (both a FileNotFoundError and a ValueError)."""


class CubeData(NamedTuple):
    """A spectral cube read by :func:`read_cube`.

    Fields:
        flux: ``[n_chan, ny, nx]`` flux per channel per pixel, in ``flux_unit``.
        err: ``[n_chan, ny, nx]`` 1σ errors, same unit.
        mask: ``[n_chan, ny, nx]`` bool, True = good (DQ == 0, finite flux, finite
            error > 0).
        wavelength_um: ``[n_chan]`` vacuum channel-centre wavelengths, µm, increasing.
        channel_width_um: ``[n_chan]`` channel widths, µm.
        pixel_scale_arcsec: pixel side, arcsec.
        header: the SCI extension header.
        primary_header: the PRIMARY header (``REDSHIFT``, ``LINES`` for jaxgrad files).
        flux_unit: astropy unit of ``flux``/``err`` (the internal unit unless
            ``units='native'``).
        native_unit: the unit parsed from ``BUNIT`` (None if absent).
    """

    flux: np.ndarray
    err: np.ndarray
    mask: np.ndarray
    wavelength_um: np.ndarray
    channel_width_um: np.ndarray
    pixel_scale_arcsec: float
    header: fits.Header
    primary_header: fits.Header
    flux_unit: Any
    native_unit: Any


class MapsData(NamedTuple):
    """Line-flux maps read by :func:`read_maps`.

    Fields:
        flux: ``[n_lines, ny, nx]`` flux per pixel, in ``flux_unit``.
        err: ``[n_lines, ny, nx]`` 1σ errors.
        mask: ``[n_lines, ny, nx]`` bool, True = good (finite flux, finite error > 0).
        lines: line names, in the order of the first axis.
        pixel_scale_arcsec: pixel side, arcsec.
        headers: one header per line (the flux map's).
        flux_unit: astropy unit of ``flux``/``err``.
    """

    flux: np.ndarray
    err: np.ndarray
    mask: np.ndarray
    lines: tuple[str, ...]
    pixel_scale_arcsec: float
    headers: tuple
    flux_unit: Any


# ----------------------------------------------------------------------------- units
def as_arcsec(value) -> float | np.ndarray:
    """A float (arcsec) or an angle Quantity → float(s) in arcsec.

    Raises:
        ValueError: for a Quantity that is not an angle.
    """
    if isinstance(value, u.Quantity):
        if not value.unit.is_equivalent(u.arcsec):
            raise ValueError(f"expected an angle (e.g. 0.1 * u.arcsec), got a Quantity in {value.unit}")
        v = value.to_value(u.arcsec)
    else:
        v = value
    v = np.asarray(v, dtype=float)
    return float(v) if v.ndim == 0 else v


def as_um(value) -> float | np.ndarray:
    """A float (µm) or a length / frequency / energy Quantity → float(s) in µm (vacuum)."""
    if isinstance(value, u.Quantity):
        try:
            v = value.to_value(u.um, equivalencies=u.spectral())
        except u.UnitConversionError:
            raise ValueError(
                f"expected a wavelength or frequency (e.g. 2.9 * u.um), got a Quantity in {value.unit}"
            ) from None
    else:
        v = value
    v = np.asarray(v, dtype=float)
    return float(v) if v.ndim == 0 else v


def _parse_unit(bunit: str | None, where: str):
    if bunit is None or str(bunit).strip() == "":
        return None
    for fmt in (None, "fits"):
        try:
            return u.Unit(str(bunit), format=fmt, parse_strict="raise")
        except ValueError:
            continue
    raise ValueError(f"{where}: BUNIT {bunit!r} is not a unit astropy can parse")


def flux_conversion(unit, pixel_scale_arcsec, wavelength_um=None, channel_width_um=None) -> np.ndarray:
    """Factor(s) converting data in ``unit`` to the internal unit (see module docstring).

    Args:
        unit: astropy unit (or string) of the data; None = already internal (factor 1).
        pixel_scale_arcsec: pixel side (arcsec or angle Quantity).
        wavelength_um: ``[n_chan]`` channel centres (µm), needed for flux densities.
        channel_width_um: ``[n_chan]`` channel widths (µm), needed for flux densities.

    Returns:
        A float (flux or flux surface-brightness units) or an ``[n_chan]`` array.

    Raises:
        ValueError: if the unit is neither a flux, a flux density nor a surface
            brightness of one (or is a density and no wavelengths are given).
    """
    if unit is None:
        return np.float64(1.0)
    unit = u.Unit(unit)
    omega = (as_arcsec(pixel_scale_arcsec) * u.arcsec) ** 2
    if unit.is_equivalent(_FLUX):
        return np.float64(unit.to(INTERNAL_FLUX_UNIT))
    if (unit * u.sr).is_equivalent(_FLUX):
        return np.float64((1.0 * unit * omega).to_value(INTERNAL_FLUX_UNIT))
    if wavelength_um is not None:
        lam = np.asarray(wavelength_um, float) * u.um
        width = np.asarray(channel_width_um, float) * u.um
        eq = u.spectral_density(lam)
        for area in (1.0, omega):
            q = 1.0 * unit * area
            if q.unit.is_equivalent(_FLAM, equivalencies=eq):
                return (q.to(_FLAM, equivalencies=eq) * width).to_value(INTERNAL_FLUX_UNIT)
        raise ValueError(
            f"BUNIT {unit} is not a flux, a spectral flux density (e.g. MJy, erg/s/cm2/Angstrom) "
            "or a surface brightness of one (e.g. MJy/sr); cannot convert to 1e-18 erg/s/cm2"
        )
    raise ValueError(
        f"BUNIT {unit} of a line-flux map must be a flux (e.g. 1e-18 erg/s/cm2) per pixel or a "
        "flux per solid angle (e.g. erg/s/cm2/arcsec2); flux densities need a spectral axis"
    )


# ----------------------------------------------------------------------------- helpers
def _open(path) -> fits.HDUList:
    p = Path(os.fspath(path))
    if p.is_dir():
        raise ValueError(f"{str(p)!r} is a folder, not a FITS file")
    if not p.is_file():
        raise FitsFileNotFoundError(2, f"FITS file not found: {str(p)!r}", str(p))
    try:
        # CHECKSUM/DATASUM are verified where present (jaxgrad writes them): a damaged file
        # is an error naming it, not a silently different cube
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdul = fits.open(p, memmap=False, checksum=True)
            for h in hdul:
                h.data  # noqa: B018  (read now, so the data sums are checked)
    except (OSError, TypeError, ValueError) as e:
        raise ValueError(f"{str(p)!r} is not a readable FITS file (damaged or truncated?): {e}") from None
    bad = [str(w.message) for w in caught if "verification failed" in str(w.message).lower()]
    if bad:
        hdul.close()
        raise ValueError(f"{str(p)!r} fails its FITS checksum ({bad[0]}): the file is damaged")
    for w in caught:  # pass every other warning on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return hdul


def _ext_list(hdul) -> str:
    out = []
    for i, h in enumerate(hdul):
        shape = None if h.data is None else tuple(np.shape(h.data))
        out.append(f"[{i}] {h.name or '(no name)'} {shape or ''}".rstrip())
    return ", ".join(out)


def _hdu(hdul, ext, path, role: str, hint: str = ""):
    try:
        return hdul[ext]
    except (KeyError, IndexError):
        raise ValueError(
            f"{str(path)!r} has no {role} extension {ext!r}; extensions present: {_ext_list(hdul)}{hint}"
        ) from None


def _float_array(data, where: str) -> np.ndarray:
    if data is None:
        raise ValueError(f"{where} has no data")
    a = np.asarray(data)
    if a.dtype.kind == "f":
        return a.astype(a.dtype.newbyteorder("="), copy=False)
    if a.dtype.kind in "iu":
        return a.astype(np.float64)
    raise ValueError(f"{where} must hold numbers, got dtype {a.dtype}")


def _wcs(header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


def _pixel_scale_from_wcs(header, where: str) -> float:
    w = _wcs(header)
    if not w.has_celestial:
        raise ValueError(
            f"{where} has no celestial WCS (CTYPE1/2 RA---/DEC--); pass pixel_scale= explicitly"
        )
    cel = w.celestial
    scales = proj_plane_pixel_scales(cel) * u.Unit(cel.wcs.cunit[0] or "deg")
    sx, sy = scales.to_value(u.arcsec)
    if not np.isclose(sx, sy, rtol=1e-6, atol=0.0):
        raise ValueError(
            f"{where} has non-square pixels ({sx:.6g}″ × {sy:.6g}″); jaxgrad models square pixels"
        )
    return float(sx)


def _check_err(flux, err, good, where: str, on_bad_err: str):
    bad = good & ~(err > 0)
    if np.any(bad):
        if on_bad_err == "mask":
            return good & ~bad
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise ValueError(
            f"{where}: {int(bad.sum())} good pixel(s) (finite flux, DQ = 0) have error <= 0, "
            f"first at index {idx} (err = {err[idx]!r}); errors must be > 0, or pass "
            "on_bad_err='mask' to mask them"
        )
    return good


def _spectral_axis_raw(hdul, sci_hdu, n_chan: int, path):
    """(wavelength_um, width_um): the WAVELENGTH table if present, else the spectral WCS."""
    if "WAVELENGTH" in hdul:
        tab = hdul["WAVELENGTH"]
        cols = {c.upper(): c for c in tab.columns.names} if tab.columns is not None else {}
        if "WAVELENGTH" not in cols:
            raise ValueError(f"{str(path)!r}: WAVELENGTH extension has no WAVELENGTH column")
        tu = tab.columns[cols["WAVELENGTH"]].unit or "um"
        lam = (np.asarray(tab.data[cols["WAVELENGTH"]], float) * u.Unit(tu)).to_value(u.um, u.spectral())
        if lam.shape != (n_chan,):
            raise ValueError(
                f"{str(path)!r}: WAVELENGTH table has {lam.size} rows but SCI has {n_chan} channels"
            )
        if "WIDTH" in cols:
            wu = tab.columns[cols["WIDTH"]].unit or "um"
            width = (np.asarray(tab.data[cols["WIDTH"]], float) * u.Unit(wu)).to_value(u.um)
        else:
            edges = np.concatenate([[lam[0] - 0.5 * (lam[1] - lam[0])], 0.5 * (lam[1:] + lam[:-1]),
                                    [lam[-1] + 0.5 * (lam[-1] - lam[-2])]]) if n_chan > 1 else None
            if edges is None:
                raise ValueError(f"{str(path)!r}: a one-channel WAVELENGTH table needs a WIDTH column")
            width = np.diff(edges)
        return lam, width
    hdr = sci_hdu.header
    ctype = str(hdr.get("CTYPE3", "")).strip().upper()
    if ctype.startswith("AWAV"):
        raise ValueError(
            f"{str(path)!r}: CTYPE3 = {ctype!r} is an air-wavelength axis; jaxgrad uses vacuum "
            "wavelengths (WAVE) or frequencies (FREQ)"
        )
    if not (ctype.startswith("WAVE") or ctype.startswith("FREQ")):
        raise ValueError(
            f"{str(path)!r}: no spectral WCS in {sci_hdu.name}: CTYPE3 = {ctype or '(missing)'!r}, "
            "expected a type starting with 'WAVE' or 'FREQ' (or a WAVELENGTH table extension)"
        )
    w = _wcs(hdr)
    spec = w.spectral
    p = np.arange(n_chan, dtype=float)
    lam = spec.pixel_to_world(p).to_value(u.um)
    lo = spec.pixel_to_world(p - 0.5).to_value(u.um)
    hi = spec.pixel_to_world(p + 0.5).to_value(u.um)
    return np.asarray(lam, float), np.abs(np.asarray(hi, float) - np.asarray(lo, float))


def _spectral_axis(hdul, sci_hdu, n_chan: int, path):
    """:func:`_spectral_axis_raw`, checked: finite positive wavelengths, strictly monotonic
    (no duplicate channel), finite positive widths — ValueError naming the file."""
    lam, width = _spectral_axis_raw(hdul, sci_hdu, n_chan, path)
    lam, width = np.asarray(lam, float), np.asarray(width, float)
    if not (np.all(np.isfinite(lam)) and np.all(lam > 0)):
        raise ValueError(f"{str(path)!r}: the channel wavelengths must be finite and > 0 "
                         f"({int(np.sum(~np.isfinite(lam) | ~(lam > 0)))} are not)")
    d = np.diff(lam)
    if lam.size > 1 and not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError(f"{str(path)!r}: the channel wavelengths must be strictly increasing or decreasing "
                         f"(duplicates or disorder at channel(s) {np.flatnonzero(d * np.sign(np.median(d)) <= 0)[:5].tolist()})")
    if not (np.all(np.isfinite(width)) and np.all(width > 0)):
        raise ValueError(f"{str(path)!r}: the channel widths must be finite and > 0 "
                         f"({int(np.sum(~np.isfinite(width) | ~(width > 0)))} are not)")
    return lam, width


# ----------------------------------------------------------------------------- readers
def read_cube(path, sci="SCI", err="ERR", dq="DQ", *, units: str = "internal",
              pixel_scale=None, on_bad_err: str = "raise") -> CubeData:
    """Read a spectral cube (NIRSpec ``s3d`` layout) with its WCS, errors and DQ.

    Args:
        path: FITS file.
        sci, err: extension names (or indices) of flux and 1σ error.
        dq: data-quality extension (name or index; 0 = good), or None to ignore DQ.
        units: ``"internal"`` (convert to 1e-18 erg/s/cm² per channel per pixel, see
            the module docstring) or ``"native"`` (as stored, unit in ``flux_unit``).
        pixel_scale: override the WCS pixel scale (arcsec or angle Quantity).
        on_bad_err: ``"raise"`` (default) or ``"mask"`` for error ≤ 0 on pixels that
            are otherwise good.

    Returns:
        :class:`CubeData`. Channels are returned in increasing wavelength (a FREQ axis,
        or any decreasing axis, is flipped).

    Raises:
        FitsFileNotFoundError (a ValueError): missing file.
        ValueError: missing extension (lists those present); SCI not 3-D; no spectral
            WCS (CTYPE3 not WAVE*/FREQ* and no WAVELENGTH table); ERR or DQ shape
            different from SCI; error ≤ 0 on good pixels; unparseable or inconvertible
            BUNIT; non-square pixels or no celestial WCS (without ``pixel_scale``).
    """
    if units not in ("internal", "native"):
        raise ValueError(f"units must be 'internal' or 'native', got {units!r}")
    if on_bad_err not in ("raise", "mask"):
        raise ValueError(f"on_bad_err must be 'raise' or 'mask', got {on_bad_err!r}")
    with _open(path) as hdul:
        h_sci = _hdu(hdul, sci, path, "SCI (flux)")
        h_err = _hdu(hdul, err, path, "ERR (error)")
        h_dq = (_hdu(hdul, dq, path, "DQ (data quality)", " (pass dq=None to read without DQ)")
                if dq is not None else None)
        where = f"{str(path)!r}"
        flux = _float_array(h_sci.data, f"{where} extension {h_sci.name}")
        if flux.ndim != 3:
            raise ValueError(f"{where}: {h_sci.name} must be a 3-D cube [n_chan, ny, nx], got shape {flux.shape}")
        e = _float_array(h_err.data, f"{where} extension {h_err.name}")
        if e.shape != flux.shape:
            raise ValueError(
                f"{where}: shape mismatch: {h_sci.name} is {flux.shape} but {h_err.name} is {e.shape}"
            )
        if h_dq is not None:
            dqa = np.asarray(h_dq.data) if h_dq.data is not None else None
            if dqa is None or dqa.shape != flux.shape:
                raise ValueError(
                    f"{where}: shape mismatch: {h_sci.name} is {flux.shape} but {h_dq.name} is "
                    f"{None if dqa is None else dqa.shape}"
                )
            dq_ok = dqa == 0
        else:
            dq_ok = np.ones(flux.shape, bool)
        lam, width = _spectral_axis(hdul, h_sci, flux.shape[0], path)
        if pixel_scale is not None:
            scale = as_arcsec(pixel_scale)
            if not scale > 0:
                raise ValueError(f"pixel_scale must be > 0 arcsec, got {pixel_scale!r}")
        else:
            scale = _pixel_scale_from_wcs(h_sci.header, f"{where} extension {h_sci.name}")
        header = h_sci.header.copy()
        err_bunit = h_err.header.get("BUNIT")
        primary = hdul[0].header.copy()
    native = _parse_unit(header.get("BUNIT"), f"{where} {header.get('EXTNAME', 'SCI')}")
    # an ERR extension with its own BUNIT is converted with that unit, not SCI's
    e_native = _parse_unit(err_bunit, f"{where} ERR") if err_bunit else native
    if units != "internal" and e_native != native:
        raise ValueError(f"{where}: ERR's BUNIT {e_native} differs from SCI's {native}; use units='internal'")
    good = dq_ok & np.isfinite(flux) & np.isfinite(e)
    good = _check_err(flux, e, good, f"{where} {header.get('EXTNAME', 'SCI')}/ERR", on_bad_err)
    if np.any(np.diff(lam) < 0):
        order = np.argsort(lam)
        lam, width = lam[order], width[order]
        flux, e, good = flux[order], e[order], good[order]
    out_unit = native
    if units == "internal":
        if native is None:
            warnings.warn(f"{where}: no BUNIT; assuming the data are already in {BUNIT_INTERNAL} "
                          "per channel per pixel", UserWarning, stacklevel=2)
        fac = flux_conversion(native, scale, lam, width)
        efac = fac if e_native == native else flux_conversion(e_native, scale, lam, width)
        if np.any(np.asarray(fac) != 1.0):
            f3 = np.asarray(fac, float).reshape(-1, 1, 1) if np.ndim(fac) else float(fac)
            flux = (flux * f3).astype(flux.dtype, copy=False)
        if np.any(np.asarray(efac) != 1.0):
            e3 = np.asarray(efac, float).reshape(-1, 1, 1) if np.ndim(efac) else float(efac)
            e = (e * e3).astype(e.dtype, copy=False)
        out_unit = INTERNAL_FLUX_UNIT
    return CubeData(flux=flux, err=e, mask=good, wavelength_um=lam, channel_width_um=width,
                    pixel_scale_arcsec=scale, header=header, primary_header=primary,
                    flux_unit=out_unit, native_unit=native)


def _first_image(hdul, path):
    for h in hdul:
        if h.data is not None and getattr(h, "is_image", False):
            return h
    raise ValueError(f"{str(path)!r} has no image extension; extensions present: {_ext_list(hdul)}")


def read_maps(path_or_paths, lines, err_suffix: str = "_ERR", *, units: str = "internal",
              pixel_scale=None, on_bad_err: str = "raise") -> MapsData:
    """Read line-flux maps and their error maps.

    Two layouts:

    * one FITS file with one image extension per line named after the jaxgrad line
      (``OIII_5008``) and one for its error (``OIII_5008`` + ``err_suffix``);
    * a dict ``{line: (flux_path, err_path)}``: each file's first image HDU is used.

    Args:
        path_or_paths: a path, or the dict above.
        lines: jaxgrad line names to read (see :func:`jaxgrad.lines.names`).
        err_suffix: suffix of the error extensions (single-file layout).
        units: ``"internal"`` (1e-18 erg/s/cm² per pixel) or ``"native"``.
        pixel_scale: override the WCS pixel scale (arcsec or angle Quantity).
        on_bad_err: ``"raise"`` or ``"mask"`` for error ≤ 0 where flux and error are finite.

    Returns:
        :class:`MapsData` with arrays ``[n_lines, ny, nx]``.

    Raises:
        ValueError: unknown line names (lists the valid ones), missing file or
            extension, maps of different shapes or pixel scales, error ≤ 0 on finite
            pixels, no celestial WCS without ``pixel_scale``, bad BUNIT.
    """
    if units not in ("internal", "native"):
        raise ValueError(f"units must be 'internal' or 'native', got {units!r}")
    if on_bad_err not in ("raise", "mask"):
        raise ValueError(f"on_bad_err must be 'raise' or 'mask', got {on_bad_err!r}")
    lines = _lines.validate(lines)
    items = []  # (line, flux array, header, err array, where)
    if isinstance(path_or_paths, dict):
        unknown = [k for k in path_or_paths if k not in _lines.LINES]
        if unknown:
            _lines.get(unknown[0])  # raises listing the valid names
        missing = [n for n in lines if n not in path_or_paths]
        if missing:
            raise ValueError(f"no files given for line(s) {missing}; the dict has {sorted(path_or_paths)}")
        for n in lines:
            try:
                fp, ep = path_or_paths[n]
            except (TypeError, ValueError):
                raise ValueError(f"maps dict entry for {n} must be (flux_path, err_path)") from None
            with _open(fp) as h1:
                hf = _first_image(h1, fp)
                f = _float_array(hf.data, f"{str(fp)!r}")
                hdr = hf.header.copy()
            with _open(ep) as h2:
                he = _first_image(h2, ep)
                e = _float_array(he.data, f"{str(ep)!r}")
                ehdr = he.header.copy()
            items.append((n, f, hdr, e, f"{str(fp)!r}", ehdr))
    else:
        path = path_or_paths
        with _open(path) as hdul:
            for n in lines:
                hf = _hdu(hdul, n, path, f"{n} flux map")
                he = _hdu(hdul, n + err_suffix, path, f"{n} error map")
                f = _float_array(hf.data, f"{str(path)!r} extension {n}")
                e = _float_array(he.data, f"{str(path)!r} extension {n + err_suffix}")
                items.append((n, f, hf.header.copy(), e, f"{str(path)!r} extension {n}", he.header.copy()))
    shape = items[0][1].shape
    scales = []
    for _n, f, hdr, e, where, _eh in items:
        if f.ndim != 2:
            raise ValueError(f"{where}: a line map must be 2-D [ny, nx], got shape {f.shape}")
        if f.shape != shape:
            raise ValueError(f"{where}: shape {f.shape} differs from {items[0][0]}'s {shape}")
        if e.shape != f.shape:
            raise ValueError(f"{where}: shape mismatch: flux map {f.shape} but error map {e.shape}")
        if pixel_scale is None:
            scales.append(_pixel_scale_from_wcs(hdr, where))
    if pixel_scale is not None:
        scale = as_arcsec(pixel_scale)
        if not scale > 0:
            raise ValueError(f"pixel_scale must be > 0 arcsec, got {pixel_scale!r}")
    else:
        scale = scales[0]
        if not np.allclose(scales, scale, rtol=1e-6, atol=0.0):
            raise ValueError(f"line maps have different pixel scales (arcsec): "
                             f"{dict(zip(lines, scales, strict=True))}")
    fl, er, mk, hdrs = [], [], [], []
    for _n, f, hdr, e, where, ehdr in items:
        native = _parse_unit(hdr.get("BUNIT"), where)
        # an error map with its own BUNIT is converted with that unit, not the flux map's
        e_native = _parse_unit(ehdr.get("BUNIT"), where + " error map") if ehdr.get("BUNIT") else native
        if units == "internal":
            if native is None:
                warnings.warn(f"{where}: no BUNIT; assuming {BUNIT_INTERNAL} per pixel",
                              UserWarning, stacklevel=2)
            fac = float(flux_conversion(native, scale))
            efac = fac if e_native == native else float(flux_conversion(e_native, scale))
            if fac != 1.0:
                f = (f * fac).astype(f.dtype, copy=False)
            if efac != 1.0:
                e = (e * efac).astype(e.dtype, copy=False)
        elif e_native != native:
            raise ValueError(f"{where}: the error map's BUNIT {e_native} differs from the flux map's {native}; "
                             "use units='internal'")
        elif fl and native != _parse_unit(hdrs[0].get("BUNIT"), where):
            raise ValueError(f"{where}: BUNIT {native} differs from the first map's; use units='internal'")
        good = np.isfinite(f) & np.isfinite(e)
        good = _check_err(f, e, good, where, on_bad_err)
        fl.append(f)
        er.append(e)
        mk.append(good)
        hdrs.append(hdr)
    dtype = np.result_type(*[a.dtype for a in fl + er])
    unit = INTERNAL_FLUX_UNIT if units == "internal" else _parse_unit(hdrs[0].get("BUNIT"), "maps")
    return MapsData(flux=np.stack(fl).astype(dtype, copy=False), err=np.stack(er).astype(dtype, copy=False),
                    mask=np.stack(mk), lines=lines, pixel_scale_arcsec=scale, headers=tuple(hdrs),
                    flux_unit=unit)


def read_psf(path, ext=0) -> np.ndarray:
    """Read a PSF image, check it (2-D, odd sizes, finite, ≥ 0) and normalise it to unit sum.

    The image must be sampled at the data's pixel scale (no resampling is done).

    Raises:
        ValueError: missing file or extension, no data, or a failed
            :func:`jaxgrad.instrument.psf.check_image` check.
    """
    with _open(path) as hdul:
        h = _hdu(hdul, ext, path, "PSF")
        if h.data is None:
            raise ValueError(f"{str(path)!r} extension {ext!r} has no data; extensions present: {_ext_list(hdul)}")
        a = _float_array(h.data, f"{str(path)!r} extension {ext!r}")
    try:
        return _psf.check_image(a)
    except ValueError as e:
        raise ValueError(f"{str(path)!r} extension {ext!r}: {e}") from None


# ----------------------------------------------------------------------------- writers
def _celestial_cards(hdr, ny: int, nx: int, scale_arcsec: float, ra: float, dec: float):
    hdr["CTYPE1"] = ("RA---TAN", "gnomonic projection")
    hdr["CTYPE2"] = ("DEC--TAN", "gnomonic projection")
    hdr["CUNIT1"] = "deg"
    hdr["CUNIT2"] = "deg"
    hdr["CRPIX1"] = ((nx + 1) / 2.0, "field centre (FITS 1-based)")
    hdr["CRPIX2"] = ((ny + 1) / 2.0, "field centre (FITS 1-based)")
    hdr["CRVAL1"] = float(ra)
    hdr["CRVAL2"] = float(dec)
    hdr["CDELT1"] = (-scale_arcsec / 3600.0, "deg; East to the left (-x)")
    hdr["CDELT2"] = (scale_arcsec / 3600.0, "deg")
    hdr["RADESYS"] = "ICRS"


def _uniform(lam, width, rtol=1e-9) -> bool:
    if lam.size == 1:
        return True
    step = (lam[-1] - lam[0]) / (lam.size - 1)
    lin = lam[0] + step * np.arange(lam.size)
    return bool(np.allclose(width, step, rtol=rtol, atol=0.0)
                and np.allclose(lam, lin, rtol=0.0, atol=rtol * abs(step)))


def write_cube(path, cube, spec, z, err=None, wavelength_um=None, *, channel_width_um=None,
               mask=None, ra: float = 150.1, dec: float = 2.2, overwrite: bool = False) -> Path:
    """Write a cube in the NIRSpec ``s3d`` layout (see the module docstring).

    Args:
        path: output file.
        cube: ``[n_chan, ny, nx]`` flux per channel per pixel, 1e-18 erg/s/cm² (e.g.
            :func:`jaxgrad.cube`); its float dtype is kept, so round trips are exact.
        spec: the :class:`jaxgrad.ModelSpec` (pixel scale, lines, default channels).
        z: redshift (header keyword ``REDSHIFT``).
        err: ``[n_chan, ny, nx]`` 1σ errors (> 0 where the flux is finite), or None:
            ERR is then written as NaN (unknown), so every pixel reads back as masked.
        wavelength_um: ``[n_chan]`` channel centres (µm or Quantity); default
            ``spec.channel_centers()``.
        channel_width_um: ``[n_chan]`` widths (µm or Quantity); default
            ``spec.channel_widths()`` when the centres are the spec's, else from the
            spacing of the centres.
        mask: optional ``[n_chan, ny, nx]`` bool, True = good; DQ = 1 (DO_NOT_USE) where
            False or where the flux is not finite.
        ra, dec: field-centre coordinates (deg, ICRS).
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    cube = np.asarray(cube)
    if cube.dtype.kind != "f":
        cube = cube.astype(np.float64)
    if cube.ndim != 3 or cube.shape[1:] != (spec.ny, spec.nx):
        raise ValueError(f"cube must have shape [n_chan, {spec.ny}, {spec.nx}] (spec.ny, spec.nx), got {cube.shape}")
    n_chan = cube.shape[0]
    if wavelength_um is None:
        lam = np.asarray(spec.channel_centers(), float)
        width = np.asarray(spec.channel_widths(), float) if channel_width_um is None else None
    else:
        lam = np.atleast_1d(np.asarray(as_um(wavelength_um), float))
        width = None
    if channel_width_um is not None:
        width = np.atleast_1d(np.asarray(as_um(channel_width_um), float))
    if lam.shape != (n_chan,):
        raise ValueError(f"wavelength_um must have one value per channel ({n_chan}), got shape {lam.shape}")
    if width is None:
        if n_chan < 2:
            raise ValueError("a one-channel cube needs channel_width_um")
        edges = np.concatenate([[lam[0] - 0.5 * (lam[1] - lam[0])], 0.5 * (lam[1:] + lam[:-1]),
                                [lam[-1] + 0.5 * (lam[-1] - lam[-2])]])
        width = np.diff(edges)
    if width.shape != (n_chan,) or not np.all(width > 0) or not np.all(np.diff(lam) > 0) or not np.all(lam > 0):
        raise ValueError("channel wavelengths must be positive and increasing, widths positive, one per channel")
    finite = np.isfinite(cube)
    if err is None:
        err_arr = np.full(cube.shape, np.nan, cube.dtype)
    else:
        err_arr = np.asarray(err)
        if err_arr.shape != cube.shape:
            raise ValueError(f"shape mismatch: cube {cube.shape} but err {err_arr.shape}")
        err_arr = err_arr.astype(cube.dtype, copy=False)
        bad = finite & ~(err_arr > 0)
        if np.any(bad):
            raise ValueError(f"err must be > 0 wherever the flux is finite ({int(bad.sum())} pixel(s) are not)")
    dq = np.where(finite, 0, DQ_DO_NOT_USE).astype(np.uint32)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != cube.shape:
            raise ValueError(f"shape mismatch: cube {cube.shape} but mask {mask.shape}")
        dq[~mask] |= DQ_DO_NOT_USE
    scale = as_arcsec(spec.pixel_scale)
    z = float(z)

    primary = fits.PrimaryHDU()
    ph = primary.header
    ph["ORIGIN"] = ("jaxgrad", "simulated or processed by jaxgrad")
    ph["FILETYPE"] = ("s3d-like", "NIRSpec IFU s3d layout: SCI, ERR, DQ")
    ph["REDSHIFT"] = (z, "redshift of the model")
    ph["LINES"] = (",".join(spec.lines), "jaxgrad line names")
    ph["CALIB"] = (spec.calibration, "jaxgrad calibration")
    ph["PIXSCALE"] = (scale, "arcsec per pixel")

    uniform = _uniform(lam, width)

    def cube_header(name, bunit):
        h = fits.Header()
        h["EXTNAME"] = name
        if bunit is not None:
            h["BUNIT"] = (bunit, "per channel per pixel")
        _celestial_cards(h, spec.ny, spec.nx, scale, ra, dec)
        h["CTYPE3"] = ("WAVE", "vacuum wavelength")
        h["CUNIT3"] = "um"
        h["CRPIX3"] = 1.0
        h["CRVAL3"] = float(lam[0])
        step = float((lam[-1] - lam[0]) / (n_chan - 1)) if n_chan > 1 else float(width[0])
        h["CDELT3"] = step
        h["SPECSYS"] = "BARYCENT"
        if not uniform:
            h["WAVETAB"] = ("WAVELENGTH", "exact channels; this axis approximate")
        return h

    hdus = [primary,
            fits.ImageHDU(cube, header=cube_header("SCI", BUNIT_INTERNAL)),
            fits.ImageHDU(err_arr, header=cube_header("ERR", BUNIT_INTERNAL)),
            fits.ImageHDU(dq, header=cube_header("DQ", None))]
    if not uniform:
        cols = [fits.Column(name="WAVELENGTH", format="D", unit="um", array=lam),
                fits.Column(name="WIDTH", format="D", unit="um", array=width)]
        tab = fits.BinTableHDU.from_columns(cols, name="WAVELENGTH")
        hdus.append(tab)
    path = Path(os.fspath(path))
    fits.HDUList(hdus).writeto(path, overwrite=overwrite, checksum=True)
    return path


def write_maps(path, maps, errs, lines, pixel_scale, *, ra: float = 150.1, dec: float = 2.2,
               overwrite: bool = False) -> Path:
    """Write line-flux maps and errors, one extension per line (``NAME``, ``NAME_ERR``).

    Args:
        path: output file.
        maps: ``[n_lines, ny, nx]`` flux per pixel, 1e-18 erg/s/cm².
        errs: ``[n_lines, ny, nx]`` 1σ errors.
        lines: jaxgrad line names (extension names).
        pixel_scale: arcsec (float or Quantity).
        ra, dec: field-centre coordinates (deg).
        overwrite: replace an existing file.

    Returns:
        The path written (readable with :func:`read_maps`).
    """
    lines = _lines.validate(lines)
    maps = np.asarray(maps)
    errs = np.asarray(errs)
    if maps.ndim != 3 or maps.shape[0] != len(lines):
        raise ValueError(f"maps must have shape [n_lines={len(lines)}, ny, nx], got {maps.shape}")
    if errs.shape != maps.shape:
        raise ValueError(f"shape mismatch: maps {maps.shape} but errs {errs.shape}")
    scale = as_arcsec(pixel_scale)
    if not scale > 0:
        raise ValueError(f"pixel_scale must be > 0 arcsec, got {pixel_scale!r}")
    ny, nx = maps.shape[1:]
    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = "jaxgrad"
    primary.header["LINES"] = ",".join(lines)
    primary.header["PIXSCALE"] = (scale, "arcsec per pixel")
    hdus = [primary]
    for i, n in enumerate(lines):
        for name, arr in ((n, maps[i]), (n + "_ERR", errs[i])):
            h = fits.Header()
            h["EXTNAME"] = name
            h["BUNIT"] = (BUNIT_INTERNAL, "per pixel")
            _celestial_cards(h, ny, nx, scale, ra, dec)
            hdus.append(fits.ImageHDU(arr, header=h))
    path = Path(os.fspath(path))
    fits.HDUList(hdus).writeto(path, overwrite=overwrite, checksum=True)
    return path


def write_table(path, rows: dict, *, meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write per-bin (or per-galaxy) results as a FITS BinTable.

    Args:
        path: output file.
        rows: ``{column: values}``; values are 1-D arrays of one common length (Quantity
            columns keep their unit in ``TUNITn``).
        meta: optional header keywords (short names, scalar values).
        overwrite: replace an existing file.
    """
    if not isinstance(rows, dict) or not rows:
        raise ValueError("rows must be a non-empty dict of {column name: 1-D values}")
    lengths = {k: len(np.atleast_1d(v)) for k, v in rows.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"all columns must have the same length, got {lengths}")
    t = Table({k: (v if isinstance(v, u.Quantity) else np.atleast_1d(np.asarray(v))) for k, v in rows.items()},
              meta=dict(meta or {}))
    path = Path(os.fspath(path))
    t.write(path, format="fits", overwrite=overwrite)
    return path


def save_idata(idata, path) -> Path:
    """Save an ArviZ ``InferenceData`` to NetCDF (``idata.to_netcdf``); returns the path."""
    if not hasattr(idata, "to_netcdf"):
        raise ValueError(f"idata must be an arviz.InferenceData, got {type(idata).__name__}")
    path = Path(os.fspath(path))
    idata.to_netcdf(str(path))
    return path
