"""Declarative description of a beam-smearing mock suite (Paper A, SCIENCE.md §7).

A :class:`SuiteSpec` fixes everything but the random draws; mock ``i`` of a suite is fully
determined by ``(spec, seed, i)`` (see :mod:`jaxgrad.mocks.generate`). Specs round-trip
through TOML (``SuiteSpec.from_toml`` / ``to_toml``), so a suite on disk carries its spec.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines


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
        psf_fwhm: (min, max) of the circular Gaussian PSF FWHM (arcsec), drawn uniformly.
        lsf_sigma (km/s), channel_kms, n_chan_per_line: spectral set-up (cube mode).
        snr: (min, max) of the mean per-pixel S/N within R_e in the brightest [OIII]
            channel (cube) or in the [OIII] map (maps), drawn uniformly.
        grad_values: intrinsic gradients (dex/kpc) drawn with equal probability; an
            empty tuple means uniform in ``grad_range``.
        grad_range: (min, max) for uniform gradients.
        logoh_center: 12+log(O/H) at the middle of the measured radii; Z0 is set so the
            profile over [0, ``profile_radius_re`` R_e] is centred there. None: the centre
            of the intersection of the valid ranges of the diagnostics used.
        profile_radius_re: see above.
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
    psf_fwhm: tuple[float, float] = (0.1, 1.0)
    lsf_sigma: float = 125.0
    channel_kms: float = 106.0
    n_chan_per_line: int = 12
    snr: tuple[float, float] = (20.0, 100.0)
    grad_values: tuple[float, ...] = (-0.2, -0.1, -0.05, 0.05, 0.1, 0.2)
    grad_range: tuple[float, float] = (-0.2, 0.2)
    logoh_center: float | None = None
    profile_radius_re: float = 2.0
    lines: tuple[str, ...] = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")
    calibration: str = "sanders24"
    av: float = 0.0
    logu: float = -2.5
    oversample: int = 1
    flux_hb: float = 100.0
    notes: str = field(default="Paper A (Lee et al.) beam-smearing suite, SCIENCE.md §7", compare=False)

    def __post_init__(self):
        if self.mode not in ("cube", "maps"):
            raise ValueError(f"mode must be 'cube' or 'maps', got {self.mode!r}")
        for name in ("psf_fwhm", "snr", "grad_range", "grad_values", "lines"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _lines.validate(self.lines)
        _cal.get(self.calibration).check_lines(self.lines)
        if "OIII_5008" not in self.lines:
            raise ValueError("the suite needs OIII_5008 (S/N is defined on it)")
        lo, hi = self.psf_fwhm
        if not (0 < lo <= hi):
            raise ValueError(f"psf_fwhm must be (min, max) with 0 < min <= max, got {self.psf_fwhm}")
        if not (0 < self.snr[0] <= self.snr[1]):
            raise ValueError(f"snr must be (min, max) with 0 < min <= max, got {self.snr}")

    # ------------------------------------------------------------------ derived
    def valid_interval(self) -> tuple[float, float]:
        """Intersection of the valid ranges of the diagnostics the lines use."""
        cal = _cal.get(self.calibration)
        rngs = [cal.search_range(d) for d in cal.diagnostics_for_lines(self.lines)]
        return max(r[0] for r in rngs), min(r[1] for r in rngs)

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


PAPER_A = SuiteSpec()


def resolve(spec: str | Path | SuiteSpec | None) -> SuiteSpec:
    """A SuiteSpec from a spec, a TOML path, ``"paper_a"``/None (the default), or ``"maps"``."""
    if spec is None or spec == "paper_a" or spec == "default":
        return PAPER_A
    if isinstance(spec, SuiteSpec):
        return spec
    if spec == "maps":
        return SuiteSpec(mode="maps")
    return SuiteSpec.from_toml(spec)
