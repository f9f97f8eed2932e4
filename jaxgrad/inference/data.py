"""Observed data of one galaxy for the NumPyro models: maps (or a cube), errors, masks.

:class:`GalaxyData` validates its inputs once, at the edge (shapes against the
:class:`~jaxgrad.forward.ModelSpec`, non-finite values, non-positive errors), and turns
them into the fixed-shape arrays the traced likelihood needs (:class:`Obs`). Non-finite
data or error pixels and non-positive errors are masked, their number is reported
(``n_bad_masked``, plus a :class:`DataWarning`); a galaxy with nothing left raises a
ValueError naming it.

Units: fluxes in 1e-18 erg/s/cm² per pixel (maps) or per channel and pixel (cubes),
the convention of :mod:`jaxgrad.forward`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines
from jaxgrad.forward import GalaxyParams, ModelSpec, make_params, radius_map
from jaxgrad.instrument import psf as _psf
from jaxgrad.physics import cosmology as _cosmo

__all__ = ["DataWarning", "GalaxyData", "Obs", "data_scales", "pad_to", "stack_known", "stack_obs"]

KINDS = ("maps", "cube")


class DataWarning(UserWarning):
    """Input data were altered (e.g. non-finite pixels masked)."""


class Obs(NamedTuple):
    """Fixed-shape arrays of one galaxy's data, as the traced likelihood uses them.

    Attributes:
        data: observed fluxes ``[K, ny, nx]`` (K lines or channels), 0 where masked.
        err: 1σ errors, same shape, 1 where masked (never 0 or NaN).
        weight: 1.0 where the pixel is used, 0.0 where masked, same shape.
        psf_image: PSF image for ``psf_model='image'`` (else a dummy ``[1, 1]``).
    """

    data: jax.Array
    err: jax.Array
    weight: jax.Array
    psf_image: jax.Array


# plausible median 1σ per pixel in 1e-18 erg/s/cm² (1e-27 to 1e-9 erg/s/cm²): outside it
# the data are almost surely in another unit, and float32 squares of them under- or overflow
ERR_PLAUSIBLE = (1e-9, 1e9)


@dataclass(frozen=True, eq=False)
class GalaxyData:
    """Line-flux maps (or a spectral cube) of one galaxy, with errors and a mask.

    Args:
        maps: observed fluxes, ``[n_lines, ny, nx]`` in the order of ``spec.lines``
            (``kind="maps"``) or ``[n_chan, ny, nx]`` (``kind="cube"``), 1e-18 erg/s/cm²
            per pixel (per channel and pixel for cubes).
        errs: 1σ errors, same shape and unit.
        mask: optional boolean, True where a pixel is used; same shape as ``maps`` or
            ``[ny, nx]`` (all lines). Default: all pixels. Non-finite data/errors and
            errors ≤ 0 are masked in addition (counted in ``n_bad_masked``).
        spec: the :class:`~jaxgrad.forward.ModelSpec` that models these data (its
            ``ny``, ``nx`` and lines/channels fix the expected shape).
        psf_image: PSF image at the data pixel scale (odd sizes) for
            ``spec.psf_model == "image"``.
        known: values of :class:`~jaxgrad.forward.GalaxyParams` fields known from
            elsewhere (redshift, PSF width, centre, PA, inclination, ...); used for every
            parameter that is not sampled. Missing fields take the
            :func:`~jaxgrad.forward.make_params` defaults.
        kind: ``"maps"`` or ``"cube"``.
        name: a label used in error messages and outputs.
    """

    maps: np.ndarray
    errs: np.ndarray
    mask: np.ndarray | None = None
    spec: ModelSpec = field(default_factory=ModelSpec)
    psf_image: np.ndarray | None = None
    known: Mapping[str, float] = field(default_factory=dict)
    kind: str = "maps"
    name: str = "galaxy"
    n_bad_masked: int = field(init=False, default=0)

    def __post_init__(self):
        who = f"GalaxyData {self.name!r}"
        if not isinstance(self.spec, ModelSpec):
            raise TypeError(f"{who}: spec must be a ModelSpec, got {type(self.spec).__name__}")
        if self.kind not in KINDS:
            raise ValueError(f"{who}: kind must be one of {KINDS}, got {self.kind!r}")
        k = self.spec.n_lines if self.kind == "maps" else self.spec.n_chan
        expected = (k, self.spec.ny, self.spec.nx)
        maps = np.asarray(self.maps, dtype=float)
        errs = np.asarray(self.errs, dtype=float)
        what = "n_lines" if self.kind == "maps" else "n_chan"
        if maps.shape != expected:
            raise ValueError(
                f"{who}: maps must have shape [{what}, ny, nx] = {expected} from its spec, "
                f"got {maps.shape}"
            )
        if errs.shape != expected:
            raise ValueError(f"{who}: errs must have the shape of maps {expected}, got {errs.shape}")
        if self.mask is None:
            mask = np.ones(expected, bool)
        else:
            m = np.asarray(self.mask)
            if m.dtype != bool:
                raise ValueError(f"{who}: mask must be boolean (True = use), got dtype {m.dtype}")
            try:
                mask = np.broadcast_to(m, expected).copy()
            except ValueError:
                raise ValueError(
                    f"{who}: mask must have shape {expected} or {expected[1:]}, got {m.shape}"
                ) from None
        bad = ~np.isfinite(maps) | ~np.isfinite(errs) | ~(errs > 0)
        n_bad = int(np.sum(bad & mask))
        mask = mask & ~bad
        if not mask.any():
            raise ValueError(
                f"{who}: every pixel is masked (mask, non-finite data or errors <= 0); "
                "nothing is left to fit"
            )
        typical = float(np.median(errs[mask]))
        if not (ERR_PLAUSIBLE[0] <= typical <= ERR_PLAUSIBLE[1]):
            hint = (" — they look like erg/s/cm²: multiply by 1e18 (or set BUNIT in the FITS header)"
                    if typical < ERR_PLAUSIBLE[0] else "")
            raise ValueError(
                f"{who}: the errors' median is {typical:.3g} in jaxgrad's flux unit (1e-18 erg/s/cm² per "
                f"pixel{' and channel' if self.kind == 'cube' else ''}), outside the plausible "
                f"[{ERR_PLAUSIBLE[0]:g}, {ERR_PLAUSIBLE[1]:g}]{hint}. The float32 likelihood loses its "
                "precision on such numbers; convert the data to 1e-18 erg/s/cm²")
        if n_bad:
            warnings.warn(
                f"{who}: masked {n_bad} pixel(s) with non-finite data/errors or errors <= 0",
                DataWarning,
                stacklevel=3,
            )
        known = dict(self.known)
        unknown = set(known) - set(GalaxyParams._fields)
        if unknown:
            raise ValueError(f"{who}: unknown keys in known: {sorted(unknown)}; valid: {GalaxyParams._fields}")
        if self.kind == "cube" and "z" in known:
            # every line at the known redshift must fall inside the cube, or the fit would
            # return its prior for that line's parameters as if it were a measurement
            z = float(known["z"])
            edges = np.concatenate([np.asarray(e, float) for _, e in self.spec.windows])
            lo, hi = float(edges.min()), float(edges.max())
            out = [n for n in self.spec.lines
                   if any(not (lo <= c * (1 + z) / 1e4 <= hi) for c in _lines.get(n).components)]
            if out:
                raise ValueError(f"{who}: at z = {z:g} the line(s) {out} fall outside the cube "
                                 f"({lo:.4f}-{hi:.4f} µm): check the redshift, or drop them from the spec")
        psf = self.psf_image
        if self.spec.psf_model == "image":
            if psf is None:
                raise ValueError(f"{who}: spec.psf_model='image' needs psf_image")
            psf = _psf.check_image(psf)
        elif psf is not None:
            raise ValueError(f"{who}: psf_image given but spec.psf_model={self.spec.psf_model!r}")
        object.__setattr__(self, "maps", np.where(mask, maps, 0.0))
        object.__setattr__(self, "errs", np.where(mask, errs, 1.0))
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "known", known)
        object.__setattr__(self, "psf_image", psf)
        object.__setattr__(self, "n_bad_masked", n_bad)

    # ------------------------------------------------------------------ helpers
    @classmethod
    def from_cube(cls, cube, err_cube, spec: ModelSpec, mask=None, **kw) -> GalaxyData:
        """Data from a spectral cube ``[n_chan, ny, nx]`` and its error cube (ERR)."""
        return cls(cube, err_cube, mask, spec, kind="cube", **kw)

    def base_params(self, dtype=None) -> GalaxyParams:
        """:class:`GalaxyParams` of the known values (defaults for the rest)."""
        return make_params(dtype=dtype, **self.known)

    def obs(self, dtype=None) -> Obs:
        """The data as :class:`Obs` arrays (JAX default float unless ``dtype``)."""
        dtype = dtype or jnp.result_type(float)
        psf = self.psf_image if self.psf_image is not None else np.ones((1, 1))
        return Obs(
            jnp.asarray(self.maps, dtype),
            jnp.asarray(self.errs, dtype),
            jnp.asarray(self.mask, dtype),
            jnp.asarray(psf, dtype),
        )

    def line_totals(self) -> np.ndarray:
        """Sum of unmasked flux per line ``[n_lines]`` (cubes: channels assigned to lines)."""
        if self.kind == "maps":
            return np.sum(self.maps, axis=(1, 2))
        chan_line = channel_lines(self.spec, float(self.base_params().z))
        return np.array([self.maps[chan_line == i].sum() for i in range(self.spec.n_lines)])

    def flux_scale(self) -> float:
        """Rough total dust-free Hβ flux (1e-18 erg/s/cm²) implied by the data.

        See :func:`data_scales` (used to centre the default flux prior).
        """
        return float(data_scales([self])[0][0])

    def radius_stats(self) -> tuple[float, float]:
        """(R_e guess, flux-weighted mean radius), kpc; see :func:`data_scales`."""
        _, r_e, r_mean = data_scales([self])
        return float(r_e[0]), float(r_mean[0])


def stack_known(galaxies) -> GalaxyParams:
    """Batched :class:`GalaxyParams` ``[n]`` of the galaxies' known values (one call)."""
    fields = sorted({k for g in galaxies for k in g.known})
    defaults = make_params()
    vals = {}
    for f in fields:
        default = float(np.asarray(getattr(defaults, f)))
        vals[f] = np.array([float(g.known.get(f, default)) for g in galaxies])
    if not fields:
        vals["z"] = np.full(len(galaxies), float(make_params().z))
    return make_params(**vals)


def data_scales(galaxies) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data-derived scales of galaxies sharing one spec (vectorised): ``[n]`` arrays of

    * the total dust-free Hβ flux implied by the data (1e-18 erg/s/cm²): the line with
      the largest unmasked total divided by its predicted ratio to Hβ at the middle of
      the calibration range (log U at its known value) — centres the default flux prior;
      a factor of a few off is harmless;
    * an R_e guess (kpc) from the brightest line's moments: sqrt(<r²> − 2σ_PSF²)/1.46
      (the exponential disk's sqrt<r²> = 1.46 R_e), the PSF variance removed in the disk
      plane, floored at one pixel;
    * the flux-weighted mean radius (kpc).
    """
    g0 = galaxies[0]
    spec = g0.spec
    base = stack_known(galaxies)
    totals = np.stack([g.line_totals() for g in galaxies])  # [n, L]
    lo, hi = logoh_range(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        logu = jnp.asarray(base.logu) if spec.use_logu else None
        ratios = np.asarray(_log_ratios(spec.calibration, spec.lines,
                                        jnp.full(len(galaxies), 0.5 * (lo + hi)), logu)).T  # [n, L]
    i = np.argmax(totals, axis=1)
    rows = np.arange(len(galaxies))
    flux = np.maximum(totals[rows, i], 1e-30) / 10.0 ** ratios[rows, i]
    r = np.asarray(_radius_maps(base, spec.replace(oversample=1)), float)  # [n, ny, nx]
    if g0.kind == "maps":
        img = np.stack([g.maps[k] for g, k in zip(galaxies, i, strict=True)])
    else:
        img = np.stack([g.maps.sum(axis=0) for g in galaxies])
    w = np.clip(img, 0.0, None)
    empty = w.sum(axis=(1, 2)) <= 0
    w[empty] = 1.0
    kpc = np.asarray(_cosmo.kpc_per_arcsec(jnp.asarray(base.z), *spec.cosmology), float)
    sig_psf = np.asarray(base.psf_fwhm, float) * _psf.FWHM_TO_SIGMA * kpc
    wsum = w.sum(axis=(1, 2))
    r2 = np.sum(w * r**2, axis=(1, 2)) / wsum
    r_e = np.maximum(np.sqrt(np.maximum(r2 - 2 * sig_psf**2, 0.0)) / 1.46, spec.pixel_scale * kpc)
    r_mean = np.sum(w * r, axis=(1, 2)) / wsum
    return flux, r_e, r_mean


_radius_maps = jax.jit(jax.vmap(radius_map, in_axes=(0, None)), static_argnums=1)


@partial(jax.jit, static_argnums=(0, 1))
def _log_ratios(calibration: str, lines: tuple, logoh, logu):
    return _cal.get(calibration).line_log_ratios(lines, logoh, logu)


def stack_obs(galaxies, dtype=None) -> Obs:
    """:class:`Obs` of several galaxies on one grid, stacked on a leading axis (one transfer)."""
    dtype = dtype or jnp.result_type(float)
    psf = [g.psf_image if g.psf_image is not None else np.ones((1, 1)) for g in galaxies]
    return Obs(jnp.asarray(np.stack([g.maps for g in galaxies]), dtype),
               jnp.asarray(np.stack([g.errs for g in galaxies]), dtype),
               jnp.asarray(np.stack([g.mask for g in galaxies]), dtype),
               jnp.asarray(np.stack(psf), dtype))


def logoh_range(spec: ModelSpec) -> tuple[float, float]:
    """12+log(O/H) range where every diagnostic the spec's lines use is valid.

    The intersection of :meth:`Calibration.search_range` over
    :meth:`Calibration.diagnostics_for_lines` (the hull of published ranges where a
    diagnostic has none). With only Balmer lines, the calibration's widest range.
    """
    cal = _cal.get(spec.calibration)
    diags = cal.diagnostics_for_lines(spec.lines)
    if not diags:
        rngs = [cal.search_range(d) for d in cal.diagnostics]
        return min(r[0] for r in rngs), max(r[1] for r in rngs)
    rngs = [cal.search_range(d) for d in diags]
    lo, hi = max(r[0] for r in rngs), min(r[1] for r in rngs)
    if lo >= hi:
        raise ValueError(f"the diagnostics {diags} of {spec.calibration} share no valid range")
    return lo, hi


def channel_lines(spec: ModelSpec, z: float) -> np.ndarray:
    """Index of the spec line nearest (in observed wavelength at z) to each channel ``[n_chan]``."""
    centers = spec.channel_centers()
    lam = np.array([_lines.get(n).wavelength * (1 + z) / 1e4 for n in spec.lines])
    return np.argmin(np.abs(np.log(centers[:, None] / lam[None, :])), axis=1)


def pad_to(data: GalaxyData, ny: int, nx: int) -> GalaxyData:
    """Zero-pad a galaxy's data (masked) to ``[.., ny, nx]``, keeping its sky position.

    Padding is split as evenly as possible; the known centre (x0, y0) is shifted by half
    the left/right (bottom/top) difference so the galaxy stays where it was. Sampled
    centres would need their priors shifted the same way; padding is meant for known
    geometry. The model of the padded field also contains light the PSF scatters in
    from outside the original field (which a model of the small field omits), so
    padding changes edge pixels' predictions by a fraction of the PSF wings — the
    padded model is the more physical one.
    """
    k, oy, ox = data.maps.shape
    if ny < oy or nx < ox:
        raise ValueError(f"cannot pad {data.name!r} from {(oy, ox)} down to {(ny, nx)}")
    if (ny, nx) == (oy, ox):
        return data
    py0, px0 = (ny - oy) // 2, (nx - ox) // 2
    py1, px1 = ny - oy - py0, nx - ox - px0
    pad = ((0, 0), (py0, py1), (px0, px1))
    s = data.spec.pixel_scale
    known = dict(data.known)
    base = data.base_params()
    known["x0"] = float(base.x0) + 0.5 * (px0 - px1) * s
    known["y0"] = float(base.y0) + 0.5 * (py0 - py1) * s
    return GalaxyData(
        np.pad(data.maps, pad),
        np.pad(data.errs, pad, constant_values=1.0),
        np.pad(data.mask, pad, constant_values=False),
        data.spec.replace(ny=ny, nx=nx),
        data.psf_image,
        known,
        data.kind,
        data.name,
    )
