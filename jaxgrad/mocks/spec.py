"""Declarative description of a beam-smearing mock suite (Paper A, docs/science.md §7).

A :class:`SuiteSpec` fixes everything but the random draws; mock ``i`` of a suite is fully
determined by ``(spec, seed, i)`` (see :mod:`jaxgrad.mocks.generate`). Specs round-trip
through TOML (``SuiteSpec.from_toml`` / ``to_toml``), so a suite on disk carries its spec.

Design decisions (issue 20; ``docs/mock_suite.md`` has the reasoning and the numbers):

* **Beams per galaxy.** 2R_e/beam is drawn log-uniformly over ``two_re_over_beam`` (every
  factor of 2R_e/beam gets the same number of mocks). A uniform FWHM (``psf_fwhm``) puts a
  density ∝ 1/x² on x = 2R_e/beam, i.e. very few mocks at large x; it stays available.
* **The profile stays where the calibration is valid.** For each gradient the measured
  extent is r_ext(∇Z) = min(``max_radius_re`` R_e, W / |∇Z|) with W the width of the
  intersection of the used diagnostics' valid ranges less ``range_margin`` dex at each
  end; Z0 centres the profile over [0, r_ext] in that interval, so the intrinsic profile
  is inside every diagnostic's range over the whole measured extent (as Paper A states for
  its mocks). ``range_policy="cut"`` (default) drops annuli beyond r_ext;
  ``"refuse"`` raises unless every gradient fits inside over ``max_radius_re`` R_e.
* **The per-annulus summary** is ``estimator`` (posterior mode by default: the median of a
  posterior that is truncated by a range edge, or bimodal on a double-valued calibration,
  is pulled towards the middle of the range).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path

import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines

ESTIMATORS = ("mode", "median", "mean")
PAPER_A_X = (0.6, 6.4)  # Paper A's 2R_e/beam range (Table 4)


@dataclass(frozen=True)
class SuiteSpec:
    """Parameter distributions of a mock suite. Defaults: Paper A's suite.

    Attributes:
        mode: ``"cube"`` (spectral cubes, one window of ``n_chan_per_line`` channels per
            line, measured by line fitting) or ``"maps"`` (line-flux maps with per-pixel
            noise, grism-like).
        z, r_e (kpc), sersic_n, sigma0 (km/s), inc (deg), pa (deg), vmax (km/s), r_t (kpc):
            fixed galaxy properties.
        ny, nx, pixel_scale (arcsec): the field.
        two_re_over_beam: (min, max) of 2 R_e / PSF FWHM, drawn log-uniformly (the
            default when neither this nor ``psf_fwhm`` is given: Paper A's 0.6–6.4).
        psf_fwhm: (min, max) of the circular Gaussian PSF FWHM (arcsec), drawn uniformly
            instead (then x = 2R_e/beam has density ∝ 1/x²); give one of the two.
        lsf_sigma (km/s), channel_kms, n_chan_per_line: spectral set-up (cube mode).
        snr: (min, max) of the mean per-pixel S/N within R_e in the brightest [OIII]
            channel (cube) or in the [OIII] map (maps), drawn uniformly.
        grad_values: intrinsic gradients (dex/kpc) drawn with equal probability; an
            empty tuple means uniform in ``grad_range``.
        grad_range: (min, max) for uniform gradients.
        logoh_center: 12+log(O/H) at the middle of the measured extent; Z0 is set so the
            profile over [0, r_ext] is centred there. None: the centre of the
            intersection of the valid ranges of the diagnostics used.
        max_radius_re: the largest measured radius, in R_e (annuli beyond are not used).
        range_margin: dex kept free at each end of the valid interval.
        range_policy: ``"cut"`` (annuli beyond r_ext(∇Z) are not used) or ``"refuse"``
            (ValueError unless every gradient's profile stays inside over
            ``max_radius_re`` R_e).
        estimator: per-annulus summary of Method I's posterior used for the gradient:
            ``"mode"``, ``"median"`` or ``"mean"`` (all three are stored).
        lines, calibration: the lines (set relative to each other by the calibration).
        av, logu: dust (mag) and log U (fixed; the Paper A suite is dust-free).
        oversample: model sub-pixels per pixel.
    """

    mode: str = "cube"
    z: float = 5.0
    r_e: float = 2.0
    sersic_n: float = 1.0
    sigma0: float = 80.0
    inc: float = 20.0
    pa: float = 0.0
    vmax: float = 150.0
    r_t: float = 1.0
    ny: int = 64
    nx: int = 64
    pixel_scale: float = 0.05
    two_re_over_beam: tuple[float, float] | None = None
    psf_fwhm: tuple[float, float] | None = None
    lsf_sigma: float = 125.0
    channel_kms: float = 106.0
    n_chan_per_line: int = 12
    snr: tuple[float, float] = (20.0, 100.0)
    grad_values: tuple[float, ...] = (-0.2, -0.1, -0.05, 0.05, 0.1, 0.2)
    grad_range: tuple[float, float] = (-0.2, 0.2)
    logoh_center: float | None = None
    max_radius_re: float = 5.0
    range_margin: float = 0.05
    range_policy: str = "cut"
    estimator: str = "mode"
    lines: tuple[str, ...] = ("OII_3727_30", "Hb", "OIII_5008")
    calibration: str = "sanders25"
    av: float = 0.0
    logu: float = -2.5
    oversample: int = 1
    flux_hb: float = 100.0
    notes: str = field(default="Paper A (Lee et al.) beam-smearing suite, docs/science.md §7", compare=False)

    def __post_init__(self):
        if self.mode not in ("cube", "maps"):
            raise ValueError(f"mode must be 'cube' or 'maps', got {self.mode!r}")
        for name in ("psf_fwhm", "two_re_over_beam", "snr", "grad_range", "grad_values", "lines"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        _lines.validate(self.lines)
        _cal.get(self.calibration).check_lines(self.lines)
        if "OIII_5008" not in self.lines:
            raise ValueError("the suite needs OIII_5008 (S/N is defined on it)")
        if self.psf_fwhm is not None and self.two_re_over_beam is not None:
            raise ValueError("give either two_re_over_beam (log-uniform) or psf_fwhm (uniform FWHM), not both")
        for name in ("psf_fwhm", "two_re_over_beam", "snr"):
            v = getattr(self, name)
            if v is not None and not (len(v) == 2 and 0 < v[0] <= v[1] < np.inf):
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {v}")
        # what only the suite needs; the galaxy and the field are checked by the forward
        # model's own validation (ModelSpec, validate_params) in _validate_physics
        for name in ("flux_hb", "max_radius_re", "channel_kms"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        v = self.n_chan_per_line
        if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1):
            raise ValueError(f"n_chan_per_line must be an integer >= 1, got {v!r}")
        if not (np.isfinite(self.av) and 0.0 <= self.av <= 10.0):
            raise ValueError(f"av must be in [0, 10] mag, got {self.av!r}")
        self._validate_physics()
        if self.range_policy not in ("cut", "refuse"):
            raise ValueError(f"range_policy must be 'cut' or 'refuse', got {self.range_policy!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        lo, hi = self.valid_interval()
        if not (0 <= self.range_margin and hi - lo - 2 * self.range_margin > 0):
            raise ValueError(f"range_margin {self.range_margin!r} dex leaves nothing of the valid interval "
                             f"[{lo}, {hi}]")
        zc = self.z_center()
        if not (lo + self.range_margin <= zc <= hi - self.range_margin):
            raise ValueError(f"logoh_center {zc!r} lies outside the valid interval [{lo}, {hi}] "
                             f"(less range_margin {self.range_margin})")
        if self.range_policy == "refuse":
            g = self.max_abs_grad()
            r = self.max_radius_re * self.r_e
            room = self.room_dex()
            if g * r > room:
                raise ValueError(
                    f"with |grad_z| = {g} dex/kpc the profile spans {g * r:.3f} dex over the measured "
                    f"extent [0, {r:g}] kpc (max_radius_re = {self.max_radius_re} R_e) but the valid "
                    f"interval of {self.calibration} {self.diagnostics()} leaves {room:.3f} dex: it would leave "
                    f"the range at {room / g:.2f} kpc. Lower max_radius_re to <= {room / g / self.r_e:.2f}, "
                    "the gradients, or use range_policy='cut'")

    def _validate_physics(self) -> None:
        """The forward model's own parameter checks on the suite's fixed values (one
        validation path for the API, ``jaxgrad fit`` and ``jaxgrad mocks run``)."""
        from jaxgrad.forward import (
            ModelSpec,
            check_sampling,
            make_params,
            validate_params,
        )

        # (the drawn PSFs are > 0 by construction: the validated x / FWHM ranges)
        p = make_params(logoh0=self.z_center(), grad_z=0.0, av=self.av, logu=self.logu, flux_hb=self.flux_hb,
                        r_e=self.r_e, sersic_n=self.sersic_n, pa=self.pa, inc=self.inc, vmax=self.vmax,
                        r_t=self.r_t, sigma0=self.sigma0, z=self.z, lsf_sigma=self.lsf_sigma)
        try:
            spec = ModelSpec(lines=self.lines, calibration=self.calibration, ny=self.ny, nx=self.nx,
                             pixel_scale=self.pixel_scale, oversample=self.oversample, range_check="off")
            validate_params(p, spec)
        except ValueError as e:
            raise ValueError(f"suite spec: {e}") from None
        check_sampling(p, spec, stacklevel=4)

    # ------------------------------------------------------------------ derived
    def diagnostics(self) -> tuple[str, ...]:
        """The diagnostics the forward model sets the lines with (and the suite measures)."""
        return tuple(_cal.get(self.calibration).diagnostics_for_lines(self.lines))

    def valid_interval(self) -> tuple[float, float]:
        """Intersection of the valid ranges of the diagnostics the lines use."""
        cal = _cal.get(self.calibration)
        rngs = [cal.search_range(d) for d in self.diagnostics()]
        return max(r[0] for r in rngs), min(r[1] for r in rngs)

    def max_abs_grad(self) -> float:
        g = self.grad_values if self.grad_values else self.grad_range
        return float(max(abs(v) for v in g))

    def x_range(self) -> tuple[float, float]:
        """(min, max) of 2R_e/beam the suite covers."""
        if self.psf_fwhm is not None:
            k = self.kpc_per_arcsec()
            return 2 * self.r_e / (self.psf_fwhm[1] * k), 2 * self.r_e / (self.psf_fwhm[0] * k)
        return tuple(self.two_re_over_beam or PAPER_A_X)

    def room_dex(self) -> float:
        """Span of 12+log(O/H) a profile centred on :meth:`z_center` may cover, dex."""
        lo, hi = self.valid_interval()
        zc = self.z_center()
        return 2 * min(zc - lo, hi - zc) - 2 * self.range_margin

    def extent_kpc(self, grad):
        """Measured extent r_ext(∇Z), kpc (JAX array; see the module docstring)."""
        import jax.numpy as jnp

        rmax = self.max_radius_re * self.r_e
        g = jnp.abs(jnp.asarray(grad, float))
        if self.range_policy == "refuse":
            return jnp.full(g.shape, rmax, g.dtype)
        room = self.room_dex()
        return jnp.where(g * rmax > room, room / jnp.maximum(g, 1e-30), rmax).astype(g.dtype)

    def z0_for(self, grad):
        """Z0 that centres the profile over [0, r_ext(∇Z)] on :meth:`z_center`."""
        return self.z_center() - grad * self.extent_kpc(grad) / 2.0

    def z_center(self) -> float:
        if self.logoh_center is not None:
            return float(self.logoh_center)
        lo, hi = self.valid_interval()
        return 0.5 * (lo + hi)

    def kpc_per_arcsec(self) -> float:
        import jax

        from jaxgrad.physics.cosmology import kpc_per_arcsec

        with jax.ensure_compile_time_eval():  # a constant, also when called while tracing
            return float(kpc_per_arcsec(np.float32(self.z)))

    def hash(self) -> str:
        """Stable short hash of the spec (guards resumed runs against a changed spec)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ----------------------------------------------------------------- TOML I/O
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("notes")
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v is not None}

    def to_toml(self) -> str:
        out = []
        for k, v in self.to_dict().items():
            if isinstance(v, str):
                out.append(f'{k} = "{v}"')
            elif isinstance(v, bool):
                out.append(f"{k} = {str(v).lower()}")
            elif isinstance(v, list):
                out.append(f"{k} = [" + ", ".join(f'"{x}"' if isinstance(x, str) else repr(x) for x in v) + "]")
            else:
                out.append(f"{k} = {v!r}")
        return "\n".join(out) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> SuiteSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown suite-spec key(s) {sorted(unknown)}; valid keys: {sorted(known - {'notes'})}")
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path) -> SuiteSpec:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"suite spec {str(p)!r} does not exist")
        with p.open("rb") as f:
            return cls.from_dict(tomllib.load(f))


@cache
def paper_a() -> SuiteSpec:
    """Paper A's suite (the defaults), made on first use: validating a spec compiles the
    forward model's checks, which ``import jaxgrad.mocks`` need not pay for."""
    return SuiteSpec()


def __getattr__(name):  # PAPER_A, made on first use
    if name == "PAPER_A":
        return paper_a()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve(spec: str | Path | SuiteSpec | None) -> SuiteSpec:
    """A SuiteSpec from a spec, a TOML path, ``"paper_a"``/None (the default), or ``"maps"``."""
    if spec is None or spec == "paper_a" or spec == "default":
        return paper_a()
    if isinstance(spec, SuiteSpec):
        return spec
    if spec == "maps":
        return SuiteSpec(mode="maps")
    return SuiteSpec.from_toml(spec)
