"""Forward-model parameters (a pytree) and the static model specification.

Internal units: kpc (disk radii), arcsec (sky offsets, PSF), km/s (velocities), degrees
(angles), magnitudes (A_V), dex (abundances, log U), µm (observed wavelengths), and
fluxes in units of 1e-18 erg/s/cm² (``flux_hb`` is the total, dust-free Hβ flux; map
pixels carry flux per pixel, cube voxels flux per channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines
from jaxgrad import units as _units
from jaxgrad.instrument import grid as _grid
from jaxgrad.instrument import psf as _psf
from jaxgrad.physics import dust as _dust

FLUX_UNIT = 1e-18  # erg/s/cm² per internal flux unit

__all__ = [
    "GalaxyParams",
    "ModelSpec",
    "make_params",
    "stack_params",
    "validate_params",
    "FLUX_UNIT",
]


class GalaxyParams(NamedTuple):
    """Parameters of one galaxy observation (scalar leaves; a batch adds axis 0).

    Chemistry: ``logoh0`` 12+log(O/H) at r = 0; ``grad_z`` dex/kpc.
    Dust: ``av`` A_V at r = 0 (mag); ``av_grad`` mag/kpc (A_V(r) floored at 0).
    Ionisation: ``logu`` log10 U at r = 0; ``logu_grad`` dex/kpc.
    Disk: ``flux_hb`` total dust-free Hβ flux (1e-18 erg/s/cm²); ``r_e`` effective radius
    (kpc); ``sersic_n``; ``x0``, ``y0`` centre offset from the field centre (arcsec, x
    right, y up); ``pa`` major-axis position angle (deg E of N); ``inc`` inclination (deg,
    0 = face-on).
    Kinematics: ``vmax`` (km/s) and ``r_t`` (kpc) of the arctan rotation curve;
    ``sigma0`` intrinsic dispersion (km/s); ``z`` redshift.
    Instrument: ``psf_fwhm`` (arcsec; major axis for elliptical), ``psf_axis_ratio``,
    ``psf_pa`` (deg), ``psf_beta`` (Moffat β), ``lsf_sigma`` (km/s, Gaussian LSF).
    """

    logoh0: jax.Array
    grad_z: jax.Array
    av: jax.Array
    av_grad: jax.Array
    logu: jax.Array
    logu_grad: jax.Array
    flux_hb: jax.Array
    r_e: jax.Array
    sersic_n: jax.Array
    x0: jax.Array
    y0: jax.Array
    pa: jax.Array
    inc: jax.Array
    vmax: jax.Array
    r_t: jax.Array
    sigma0: jax.Array
    z: jax.Array
    psf_fwhm: jax.Array
    psf_axis_ratio: jax.Array
    psf_pa: jax.Array
    psf_beta: jax.Array
    lsf_sigma: jax.Array


# Paper A's mock-suite galaxy (docs/science.md §7), a sensible default.
DEFAULTS = dict(
    logoh0=8.0, grad_z=0.0, av=0.0, av_grad=0.0, logu=-2.5, logu_grad=0.0,
    flux_hb=100.0, r_e=2.0, sersic_n=1.0, x0=0.0, y0=0.0, pa=0.0, inc=20.0,
    vmax=150.0, r_t=1.0, sigma0=80.0, z=5.0,
    psf_fwhm=0.2, psf_axis_ratio=1.0, psf_pa=0.0, psf_beta=2.5, lsf_sigma=125.0,
)


def make_params(dtype=None, **kwargs) -> GalaxyParams:
    """Build :class:`GalaxyParams` from keyword values, defaults for the rest.

    Values may be scalars or 1-D arrays of one common length (a batch), plain numbers in the
    internal units or astropy Quantities of any unit of the right dimension
    (:mod:`jaxgrad.units`; the wrong dimension is a ValueError naming the parameter).
    Unknown keys raise a ValueError listing the valid ones. ``dtype`` defaults to JAX's
    default float.
    """
    unknown = set(kwargs) - set(GalaxyParams._fields)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; valid: {GalaxyParams._fields}")
    kwargs = _units.to_internal_params(kwargs)  # astropy Quantities -> internal units
    dtype = dtype or jnp.result_type(float)
    vals = {k: kwargs.get(k, DEFAULTS[k]) for k in GalaxyParams._fields}
    shapes = {np.shape(v) for v in vals.values()} - {()}
    if len(shapes) > 1:
        raise ValueError(f"batched parameters must share one shape, got {shapes}")
    shape = shapes.pop() if shapes else ()
    return GalaxyParams(**{k: jnp.broadcast_to(jnp.asarray(v, dtype), shape) for k, v in vals.items()})


def stack_params(items) -> GalaxyParams:
    """Stack single-galaxy parameter sets into a batch (leading axis)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *items)


@dataclass(frozen=True)
class ModelSpec:
    """Static configuration of the forward model (hashable; fixes shapes and code paths).

    Attributes:
        lines: line names (see :mod:`jaxgrad.lines`), any order.
        calibration: calibration name (see :func:`jaxgrad.calibrations.available`).
        ny, nx: field size in pixels.
        pixel_scale: arcsec per pixel (or an astropy angle Quantity).
        oversample: sub-pixels per pixel and axis for evaluating the model.
        psf_model: ``"gaussian"`` | ``"elliptical"`` | ``"moffat"`` | ``"image"``.
        dust_law: ``"calzetti"`` (Calzetti+2000) | ``"smc"`` (Gordon+2003).
        use_logu: include the ionisation-parameter term.
        channel_edges: observed-frame channel edges in µm for cubes (None: maps only).
            Every line is evaluated on every channel.
        channel_windows: alternative to ``channel_edges``: a tuple of
            ``(line_names, edges_um)`` windows (e.g. one per line, as NIRSpec cut-outs);
            the cube's channels are the windows' channels concatenated in order, and each
            line is evaluated only on its own window (much cheaper for many lines). Lines
            must appear in exactly one window. See :func:`jaxgrad.forward.line_windows`.
        cosmology: (H0 km/s/Mpc, Ωm) of the flat ΛCDM used for kpc/arcsec, or an astropy
            flat ΛCDM cosmology (e.g. ``astropy.cosmology.Planck18``).
        range_check: ``"raise"`` | ``"warn"`` | ``"off"``: what
            :func:`validate_params` does when 12+log(O/H) within ``range_radius_re``
            effective radii leaves the valid range of a diagnostic the model uses.
        range_radius_re: radius (in R_e) out to which the range is checked.
    """

    lines: tuple[str, ...] = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")
    calibration: str = "sanders24"
    ny: int = 32
    nx: int = 32
    pixel_scale: float = 0.05
    oversample: int = 1
    psf_model: str = "gaussian"
    dust_law: str = "calzetti"
    use_logu: bool = True
    channel_edges: tuple[float, ...] | None = field(default=None, repr=False)
    channel_windows: tuple | None = field(default=None, repr=False)
    cosmology: tuple[float, float] = (70.0, 0.3)
    range_check: str = "raise"
    range_radius_re: float = 2.0

    def __post_init__(self):
        pix = _units.to_internal(self.pixel_scale, "arcsec", "pixel_scale")
        if np.ndim(pix) != 0:
            raise ValueError(f"pixel_scale must be a scalar (arcsec per pixel), got {self.pixel_scale!r}")
        object.__setattr__(self, "pixel_scale", float(pix))
        object.__setattr__(self, "cosmology", _units.cosmology_tuple(self.cosmology))
        object.__setattr__(self, "lines", _lines.validate(self.lines))
        cal = _cal.get(self.calibration)
        cal.check_lines(self.lines)
        for name in ("ny", "nx", "oversample"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (np.isfinite(self.pixel_scale) and self.pixel_scale > 0):
            raise ValueError(f"pixel_scale must be a finite number > 0 arcsec, got {self.pixel_scale!r}")
        if self.psf_model not in _psf.MODELS:
            raise ValueError(f"psf_model must be one of {_psf.MODELS}, got {self.psf_model!r}")
        if self.dust_law not in _dust.LAWS:
            raise ValueError(f"dust_law must be one of {_dust.LAWS}, got {self.dust_law!r}")
        if self.range_check not in ("raise", "warn", "off"):
            raise ValueError(f"range_check must be 'raise', 'warn' or 'off', got {self.range_check!r}")
        if self.channel_edges is not None:
            object.__setattr__(self, "channel_edges", _grid.check_edges(self.channel_edges))
        if self.channel_windows is not None:
            if self.channel_edges is not None:
                raise ValueError("give channel_edges or channel_windows, not both")
            wins = []
            for item in self.channel_windows:
                try:
                    names, edges = item
                except (TypeError, ValueError):
                    raise ValueError("channel_windows entries must be (line_names, edges_um) pairs") from None
                names = (names,) if isinstance(names, str) else tuple(names)
                wins.append((names, _grid.check_edges(edges)))
            listed = [n for names, _ in wins for n in names]
            if sorted(listed) != sorted(self.lines):
                raise ValueError(
                    f"channel_windows must list every line of the spec exactly once: spec lines "
                    f"{self.lines}, windows list {tuple(listed)}"
                )
            object.__setattr__(self, "channel_windows", tuple(wins))

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    @property
    def windows(self) -> tuple:
        """((line names, edges), ...) of the cube: one window of all lines for channel_edges."""
        if self.channel_windows is not None:
            return self.channel_windows
        if self.channel_edges is None:
            raise ValueError(
                "this ModelSpec has no channel_edges or channel_windows; set one to build cubes "
                "(e.g. jaxgrad.default_channels(spec, z) or jaxgrad.forward.line_windows(spec, z))"
            )
        return ((self.lines, self.channel_edges),)

    @property
    def n_chan(self) -> int:
        return sum(len(e) - 1 for _, e in self.windows)

    def channel_centers(self) -> np.ndarray:
        """Observed wavelength (µm) at the centre of each cube channel, ``[n_chan]``."""
        return np.concatenate([0.5 * (np.asarray(e[1:]) + np.asarray(e[:-1])) for _, e in self.windows])

    def channel_widths(self) -> np.ndarray:
        """Width (µm) of each cube channel, ``[n_chan]``."""
        return np.concatenate([np.diff(np.asarray(e)) for _, e in self.windows])

    def replace(self, **kw) -> ModelSpec:
        """A copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **kw)


_RANGES = {
    "r_e": (0.0, None, False),
    "sersic_n": (0.36, 10.0, True),
    "inc": (0.0, 85.0, True),  # a thin disk beyond 85° (b/a < 0.09) is not a model of anything observed
    "psf_fwhm": (0.0, None, False),
    "psf_axis_ratio": (0.0, 1.0, None),
    "psf_beta": (1.0, None, False),
    "lsf_sigma": (0.0, None, True),
    "sigma0": (0.0, None, True),
    "r_t": (0.0, None, False),
    "flux_hb": (0.0, None, True),
    "z": (0.0, 20.0, False),  # z = 0: zero angular scale, nothing to observe
}


def validate_params(params: GalaxyParams, spec: ModelSpec) -> None:
    """Check concrete parameter values before tracing; raise ValueError naming the problem.

    Checks finiteness of every leaf, physical ranges (R_e > 0, inclination in [0°, 85°],
    PSF FWHM > 0, ...), log U limits of the ionisation term, and (per ``spec.range_check``)
    that 12+log(O/H) stays inside the valid range of every diagnostic the model uses out to
    ``spec.range_radius_re`` R_e.
    """
    if not isinstance(params, GalaxyParams):
        raise TypeError(f"params must be GalaxyParams, got {type(params).__name__}")
    vals = {k: np.asarray(v, dtype=float) for k, v in params._asdict().items()}
    for k, v in vals.items():
        if not np.all(np.isfinite(v)):
            raise ValueError(f"parameter {k} must be finite, got {v}")
    for k, (lo, hi, closed) in _RANGES.items():
        v = vals[k]
        low_bad = np.any(v < lo) if closed in (True, None) else np.any(v <= lo)
        high_bad = hi is not None and (np.any(v > hi) if closed in (True, None) else np.any(v >= hi))
        if k == "psf_axis_ratio":
            low_bad = np.any(v <= 0)
        if low_bad or high_bad:
            rng = f"[{lo}, {hi if hi is not None else 'inf'}]"
            raise ValueError(f"parameter {k} outside its allowed range {rng} (exclusive where physical): got {v}")
    if spec.use_logu:
        r_max = spec.range_radius_re * vals["r_e"]
        _cal.check_logu(vals["logu"], "logu")
        _cal.check_logu(vals["logu"] + vals["logu_grad"] * r_max, "logu at range_radius_re*R_e")
    if spec.range_check != "off":
        cal = _cal.get(spec.calibration)
        r_max = spec.range_radius_re * vals["r_e"]
        z_lo = np.minimum(vals["logoh0"], vals["logoh0"] + vals["grad_z"] * r_max)
        z_hi = np.maximum(vals["logoh0"], vals["logoh0"] + vals["grad_z"] * r_max)
        for d in cal.diagnostics_for_lines(spec.lines):
            lo, hi = cal.search_range(d)
            if np.any(z_lo < lo) or np.any(z_hi > hi):
                msg = (
                    f"12+log(O/H) spans [{z_lo.min():.3f}, {z_hi.max():.3f}] within "
                    f"{spec.range_radius_re} R_e, outside the valid range [{lo}, {hi}] of "
                    f"{spec.calibration} {d}; change logoh0/grad_z, or set "
                    "ModelSpec(range_check='warn' or 'off') to extrapolate"
                )
                if spec.range_check == "raise":
                    raise ValueError(msg)
                import warnings

                warnings.warn(msg, stacklevel=2)
