"""Strong-line metallicity calibrations.

Coefficients are shipped as package data (``calibrations.json``, a copy of the team's
reference file with every coefficient's source and verification status). Only
diagnostics with published coefficients are exposed; those marked unverified carry
``verified=False`` and emit :class:`UnverifiedCalibrationWarning` when used. Missing
coefficients (e.g. Sanders+2025 N2, Ne3O2, S2) are listed in ``Calibration.missing``
and never guessed.

Example::

    import jaxgrad as jg
    cal = jg.calibrations.get("sanders24")
    cal.predict("R3", 7.6)                    # log10([OIII]5008/Hβ)
    cal.invert("R3", 0.79, branch="lower")    # -> 7.599
    cal.valid_range("R3"), cal.scatter("R3")

``predict`` is a pure jax.numpy function (jit/vmap/grad friendly); ``invert``,
``valid_range`` and ``scatter`` are NumPy-side edge helpers.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import jax.numpy as jnp
import numpy as np

from jaxgrad import lines as _lines
from jaxgrad.calibrations import ionisation
from jaxgrad.calibrations.ionisation import check_logu

__all__ = [
    "Calibration",
    "Diagnostic",
    "UnverifiedCalibrationWarning",
    "available",
    "get",
    "ionisation",
    "check_logu",
]


class UnverifiedCalibrationWarning(UserWarning):
    """A coefficient set that was not verified against an independent source was used."""


# Bian+2018's R3 (and O32) use [OIII]4960+5008 (see calibrations.md); jaxgrad's R3 and
# O32 are 5008-only, so those predictions are shifted by -log10(1 + 1/2.98).
_OIII_SUM_TO_5008 = -math.log10(1.0 + 1.0 / _lines.OIII_RATIO)


@dataclass(frozen=True)
class Diagnostic:
    """One calibrated diagnostic of one calibration.

    Attributes:
        name: diagnostic name (``"R3"``, ``"O32"``, ...).
        ratio: the line ratio in words.
        form: ``"poly_x"`` (log R = Σ c_i x^i, x = Z - x_offset), ``"poly_Z"``
            (log R = Σ c_i Z^i) or ``"Z_linear"`` (Z = c0 + c1 log R).
        coeffs: coefficients, increasing power.
        x_offset: offset of x.
        valid_range: (lo, hi) in 12+log(O/H), or None where none is published.
        scatter: intrinsic scatter in dex of log R, or None where not published.
        scatter_unverified: a candidate scatter from an unverified source (or None).
        verified: whether the coefficients were verified against a named source.
        source: where the coefficients come from.
        log_offset: constant added to log R (ratio-definition conversions).
        note: caveats.
    """

    name: str
    ratio: str
    form: str
    coeffs: tuple[float, ...]
    x_offset: float
    valid_range: tuple[float, float] | None
    scatter: float | None
    scatter_unverified: float | None
    verified: bool
    source: str
    log_offset: float = 0.0
    note: str = ""

    def _poly(self, logoh):
        z = jnp.asarray(logoh)
        if self.form == "Z_linear":
            a, b = self.coeffs
            return (z - a) / b + self.log_offset
        x = z - self.x_offset
        acc = jnp.zeros_like(x) + self.coeffs[-1]
        for c in self.coeffs[-2::-1]:
            acc = acc * x + c
        return acc + self.log_offset

    def _np_poly(self) -> np.polynomial.Polynomial:
        """log R as a NumPy polynomial in Z (float64)."""
        if self.form == "Z_linear":
            a, b = self.coeffs
            p = np.polynomial.Polynomial([-a / b, 1.0 / b])
        else:
            p = np.polynomial.Polynomial(self.coeffs)
            if self.x_offset:
                p = p(np.polynomial.Polynomial([-self.x_offset, 1.0]))
        return p + self.log_offset


_FORMS = {"logratio_poly_in_x": "poly_x", "logratio_poly_in_Z": "poly_Z",
          "Z_linear_in_logratio": "Z_linear"}


@dataclass(frozen=True, eq=False)
class Calibration:
    """A published strong-line calibration: a set of diagnostics.

    Use :func:`get` to obtain one. Diagnostic names follow the paper (``O2`` and ``R2``
    are the same ratio, [OII]3727,30/Hβ).
    """

    name: str
    reference: str
    _diags: dict = field(repr=False)
    missing: tuple[str, ...] = ()
    notes: str = ""

    # -- metadata ---------------------------------------------------------------
    @property
    def diagnostics(self) -> tuple[str, ...]:
        """Names of the diagnostics with coefficients."""
        return tuple(self._diags)

    def diagnostic(self, name: str) -> Diagnostic:
        """The :class:`Diagnostic` called ``name`` (raises ValueError if absent)."""
        try:
            return self._diags[name]
        except KeyError:
            extra = ""
            if name in self.missing:
                extra = f" ({name} coefficients of {self.name} were not found in any verified source and are left out)"
            raise ValueError(
                f"calibration {self.name!r} has no diagnostic {name!r}{extra}; "
                f"available: {', '.join(self.diagnostics)}"
            ) from None

    def valid_range(self, diagnostic: str) -> tuple[float, float] | None:
        """Published 12+log(O/H) range of validity (None where none is published)."""
        return self.diagnostic(diagnostic).valid_range

    def scatter(self, diagnostic: str) -> float | None:
        """Intrinsic scatter of log R at fixed Z, dex.

        Returns the published value; if only an unverified candidate exists it is
        returned with an :class:`UnverifiedCalibrationWarning`; None if neither exists.
        """
        d = self.diagnostic(diagnostic)
        if d.scatter is not None:
            return d.scatter
        if d.scatter_unverified is not None:
            warnings.warn(
                f"{self.name} {diagnostic}: scatter {d.scatter_unverified} is an unverified candidate",
                UnverifiedCalibrationWarning,
                stacklevel=2,
            )
            return d.scatter_unverified
        return None

    def verified(self, diagnostic: str) -> bool:
        """Whether the coefficients were verified against an independent source."""
        return self.diagnostic(diagnostic).verified

    def in_range(self, diagnostic: str, logoh):
        """Boolean mask: logoh inside the diagnostic's valid range (all True if none)."""
        rng = self.valid_range(diagnostic)
        z = jnp.asarray(logoh)
        if rng is None:
            return jnp.ones(jnp.shape(z), bool)
        return (z >= rng[0]) & (z <= rng[1])

    def search_range(self, diagnostic: str) -> tuple[float, float]:
        """The range used for inversion: the valid range, or the hull of this
        calibration's other published ranges where the diagnostic has none."""
        rng = self.valid_range(diagnostic)
        if rng is not None:
            return rng
        rngs = [d.valid_range for d in self._diags.values() if d.valid_range is not None]
        return (min(r[0] for r in rngs), max(r[1] for r in rngs))

    def _warn_unverified(self, diagnostic: str) -> Diagnostic:
        d = self.diagnostic(diagnostic)
        if not d.verified:
            warnings.warn(
                f"{self.name} {diagnostic} coefficients are NOT verified against an "
                f"independent source ({d.source}); check against the paper before use",
                UnverifiedCalibrationWarning,
                stacklevel=3,
            )
        return d

    # -- forward ---------------------------------------------------------------
    def predict(self, diagnostic: str, logoh, logu=None):
        """Predicted log10 ratio at 12+log(O/H) = ``logoh``.

        Args:
            diagnostic: diagnostic name, e.g. ``"R3"``.
            logoh: 12+log(O/H), array of any shape.
            logu: optional log10 ionisation parameter (broadcastable); when given the
                NebulaBayes differential term (:mod:`jaxgrad.calibrations.ionisation`)
                is added, zero at log U = -2.5.

        Returns:
            log10 of the (dust-corrected) line ratio, same dtype as ``logoh``.
            Values outside :meth:`valid_range` are extrapolations (use :meth:`in_range`).
        """
        d = self._warn_unverified(diagnostic)
        out = d._poly(logoh)
        if logu is not None:
            out = out + ionisation.diagnostic_delta(diagnostic, logoh, logu)
        return out

    def turnover(self, diagnostic: str) -> float | None:
        """12+log(O/H) of the curve's extremum inside the search range, or None."""
        d = self.diagnostic(diagnostic)
        lo, hi = self.search_range(diagnostic)
        crit = d._np_poly().deriv().roots()
        crit = [float(c.real) for c in np.atleast_1d(crit) if abs(c.imag) < 1e-12 and lo < c.real < hi]
        return min(crit) if crit else None

    # -- inverse ---------------------------------------------------------------
    def invert(self, diagnostic: str, log_ratio, branch: str | None = None):
        """12+log(O/H) whose predicted ratio equals ``log_ratio`` (no ionisation term).

        Args:
            diagnostic: diagnostic name.
            log_ratio: observed log10 ratio, scalar or array.
            branch: None for every root inside the valid range; ``"lower"`` or
                ``"upper"`` for the root below / above the turnover of a double-valued
                curve (for a monotonic curve both give its single root).

        Returns:
            With ``branch`` given: a float (scalar input) or array, NaN where no root
            lies on that branch inside the range. Without ``branch``: for scalar input a
            sorted 1-D array of all roots in range; for array input an object array of
            such arrays.
        """
        if branch not in (None, "lower", "upper"):
            raise ValueError(f"branch must be None, 'lower' or 'upper', got {branch!r}")
        d = self._warn_unverified(diagnostic)
        lo, hi = self.search_range(diagnostic)
        poly = d._np_poly()
        turn = self.turnover(diagnostic)
        y = np.asarray(log_ratio, dtype=float)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"log_ratio must be finite, got {log_ratio!r}")

        def roots_of(v):
            r = (poly - v).roots()
            r = np.array([c.real for c in np.atleast_1d(r) if abs(c.imag) < 1e-6], float)
            # Newton polish in float64
            dp = poly.deriv()
            for _ in range(3):
                step = (poly(r) - v) / np.where(dp(r) == 0, 1.0, dp(r))
                r = r - step
            tol = 1e-9
            return np.sort(r[(r >= lo - tol) & (r <= hi + tol)])

        def pick(rs):
            if branch is None:
                return rs
            if turn is not None:
                rs = rs[rs <= turn] if branch == "lower" else rs[rs >= turn]
            if len(rs) == 0:
                return np.nan
            return float(rs[0] if branch == "lower" else rs[-1])

        if y.ndim == 0:
            return pick(roots_of(float(y)))
        flat = [pick(roots_of(v)) for v in y.ravel()]
        if branch is None:
            out = np.empty(len(flat), dtype=object)
            out[:] = flat
            return out.reshape(y.shape)
        return np.array(flat, float).reshape(y.shape)

    # -- lines -------------------------------------------------------------------
    def line_recipe(self, line: str) -> tuple[tuple[str, int], ...] | None:
        """How a line's flux relative to Hβ follows from this calibration.

        Returns a tuple of (diagnostic, sign) pairs whose signed sum is
        log(F_line / F_ref), where F_ref is Hβ (or Hα for [NII], [SII]; the constant
        Hα/Hβ is added by :meth:`line_log_ratios`), or None if the line cannot be
        predicted by this calibration.
        """
        have = set(self.diagnostics)
        r3 = "R3" if "R3" in have else None
        o2 = next((n for n in ("O2", "R2") if n in have), None)
        if line in ("OIII_5008", "OIII_4960"):
            return ((r3, 1),) if r3 else None
        if line == "OII_3727_30":
            if o2:
                return ((o2, 1),)
            if r3 and "O32" in have:
                return ((r3, 1), ("O32", -1))
            return None
        if line == "NeIII_3870":
            base = self.line_recipe("OII_3727_30")
            return base + (("Ne3O2", 1),) if base and "Ne3O2" in have else None
        if line in ("NII_6585", "NII_6550"):
            if "N2" in have:
                return (("N2", 1),)
            if r3 and "O3N2" in have:
                return ((r3, 1), ("O3N2", -1))
            return None
        if line == "SII_6718_33":
            if "S2" in have:
                return (("S2", 1),)
            if r3 and "O3S2" in have:
                return ((r3, 1), ("O3S2", -1))
            return None
        return None

    def supports(self, line: str) -> bool:
        """Whether this calibration can predict ``line``'s flux relative to Hβ."""
        _lines.get(line)
        return line in _lines.CASE_B or self.line_recipe(line) is not None

    def check_lines(self, lines) -> tuple[str, ...]:
        """Validate line names against this calibration (ValueError naming the problem)."""
        lines = _lines.validate(lines)
        bad = [n for n in lines if not self.supports(n)]
        if bad:
            raise ValueError(
                f"calibration {self.name!r} cannot predict line(s) {bad}: it has the "
                f"diagnostics {self.diagnostics} (missing: {self.missing or 'none'}). "
                "Choose another calibration or drop these lines."
            )
        return lines

    def line_log_ratios(self, lines, logoh, logu=None):
        """log10(F_line / F_Hβ) for each line, stacked on a new leading axis.

        Args:
            lines: line names (validated with :meth:`check_lines`).
            logoh: 12+log(O/H), any shape.
            logu: optional log10 U (broadcastable with ``logoh``).

        Returns:
            Array ``[n_lines, *shape]``, dex (dust-free, before attenuation).
        """
        lines = self.check_lines(lines)
        z = jnp.asarray(logoh)
        shape = jnp.broadcast_shapes(jnp.shape(z), jnp.shape(logu) if logu is not None else ())
        zero = jnp.zeros(shape, z.dtype)
        cache_: dict[str, object] = {}

        def diag(n):
            if n not in cache_:
                cache_[n] = self.predict(n, z, logu)
            return cache_[n]

        out = []
        for ln in lines:
            if ln in _lines.CASE_B:
                out.append(zero + math.log10(_lines.CASE_B[ln]))
                continue
            val = zero
            for n, sign in self.line_recipe(ln):
                val = val + sign * diag(n)
            if ln in ("NII_6585", "NII_6550", "SII_6718_33"):
                val = val + math.log10(_lines.CASE_B["Ha"])
            if ln == "OIII_4960":
                val = val - math.log10(_lines.OIII_RATIO)
            if ln == "NII_6550":
                val = val - math.log10(_lines.NII_RATIO)
            out.append(val)
        return jnp.stack(out)

    def diagnostics_for_lines(self, lines) -> tuple[str, ...]:
        """Diagnostics used to predict ``lines`` (for warnings and range checks)."""
        used: list[str] = []
        for ln in self.check_lines(lines):
            for n, _ in self.line_recipe(ln) or ():
                if n not in used:
                    used.append(n)
        return tuple(used)


@cache
def _raw() -> dict:
    text = resources.files("jaxgrad.calibrations").joinpath("calibrations.json").read_text()
    return json.loads(text)


def _build(name: str, raw: dict) -> Calibration:
    diags = {}
    missing = []
    for dname, d in raw["diagnostics"].items():
        if not d.get("coeffs"):
            missing.append(dname)
            continue
        rng = d.get("valid_range") or raw.get("valid_range")
        log_offset = 0.0
        note = d.get("note", "") or ""
        if name == "bian18" and dname in ("R3", "O32"):
            # calibrations.md: Bian's [OIII] is probably 4960+5008; convert to 5008 only
            log_offset = _OIII_SUM_TO_5008
            note = ("Bian+2018 [OIII] taken as 4960+5008 (probable, see calibrations.md); "
                    "converted to 5008-only by -log10(1+1/2.98). " + note)
        diags[dname] = Diagnostic(
            name=dname,
            ratio=d.get("ratio", ""),
            form=_FORMS[d["form"]],
            coeffs=tuple(float(c) for c in d["coeffs"]),
            x_offset=float(raw.get("x_offset") or 0.0),
            valid_range=tuple(float(v) for v in rng) if rng else None,
            scatter=d.get("scatter_dex"),
            scatter_unverified=d.get("scatter_candidate_unverified"),
            verified=bool(d.get("verified")),
            source=d.get("source", ""),
            log_offset=log_offset,
            note=note,
        )
    return Calibration(name=name, reference=raw.get("reference", ""), _diags=diags,
                       missing=tuple(missing), notes=raw.get("notes", ""))


@cache
def _registry() -> dict[str, Calibration]:
    return {name: _build(name, raw) for name, raw in _raw()["calibrations"].items()}


def available() -> tuple[str, ...]:
    """Names of the shipped calibrations."""
    return tuple(_registry())


def get(name: str | Calibration) -> Calibration:
    """Return the calibration called ``name`` (e.g. ``"sanders24"``)."""
    if isinstance(name, Calibration):
        return name
    try:
        return _registry()[name]
    except KeyError:
        raise ValueError(
            f"unknown calibration {name!r}; available: {', '.join(available())}"
        ) from None
