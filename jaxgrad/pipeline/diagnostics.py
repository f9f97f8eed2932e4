"""Observed strong-line diagnostics: which lines each needs and its log ratio from fluxes.

The calibrations (:mod:`jaxgrad.calibrations`) map 12+log(O/H) to a predicted log ratio;
this module goes the other way round for data: from measured line fluxes to the observed
log ratio of every diagnostic and its 1σ error (linear propagation, dex).

Definitions (docs/science.md §2; jaxgrad's R3 and O32 use [OIII]5008 alone):

=========  =====================================================  ==========================
name       ratio                                                  lines needed
=========  =====================================================  ==========================
R3         [OIII]5008 / Hβ                                        OIII_5008, Hb
O2, R2     [OII]3727,30 / Hβ                                      OII_3727_30, Hb
O32        [OIII]5008 / [OII]3727,30                              OIII_5008, OII_3727_30
Ne3O2      [NeIII]3870 / [OII]3727,30                             NeIII_3870, OII_3727_30
N2         [NII]6585 / Hα                                         NII_6585, Ha
S2         [SII]6718,33 / Hα                                      SII_6718_33, Ha
R23        ([OII] + [OIII]4960 + [OIII]5008) / Hβ                 OII_3727_30, OIII_5008, Hb
O3N2       R3 / N2                                                OIII_5008, Hb, NII_6585, Ha
O3S2       R3 / S2                                                OIII_5008, Hb, SII_6718_33, Ha
RS32       [OIII]5008/Hβ + [SII]6718,33/Hα                        OIII_5008, Hb, SII_6718_33, Ha
=========  =====================================================  ==========================

In R23, [OIII]4960 is the measured flux when ``OIII_4960`` is among the lines, otherwise
[OIII]5008 / 2.98 (the fixed ratio, :data:`jaxgrad.lines.OIII_RATIO`).
Variants such as Nakajima+22's ``R3_largeEW`` use R3's ratio but are never selected
automatically (pass them explicitly in ``diagnostics=``).
"""

from __future__ import annotations

import math
from functools import cache

import jax
import jax.numpy as jnp

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines

__all__ = ["REQUIRED_LINES", "VARIANTS", "required_lines", "usable_diagnostics",
           "log_ratio_fn", "log_ratios_and_errors"]

REQUIRED_LINES: dict[str, tuple[str, ...]] = {
    "R3": ("OIII_5008", "Hb"),
    "R3_largeEW": ("OIII_5008", "Hb"),
    "R3_smallEW": ("OIII_5008", "Hb"),
    "O2": ("OII_3727_30", "Hb"),
    "R2": ("OII_3727_30", "Hb"),
    "O32": ("OIII_5008", "OII_3727_30"),
    "Ne3O2": ("NeIII_3870", "OII_3727_30"),
    "N2": ("NII_6585", "Ha"),
    "S2": ("SII_6718_33", "Ha"),
    "R23": ("OII_3727_30", "OIII_5008", "Hb"),
    "O3N2": ("OIII_5008", "Hb", "NII_6585", "Ha"),
    "O3S2": ("OIII_5008", "Hb", "SII_6718_33", "Ha"),
    "RS32": ("OIII_5008", "Hb", "SII_6718_33", "Ha"),
}
VARIANTS = ("R3_largeEW", "R3_smallEW")


def required_lines(diagnostic: str) -> tuple[str, ...]:
    """Lines a diagnostic needs (ValueError for an unknown diagnostic)."""
    try:
        return REQUIRED_LINES[diagnostic]
    except KeyError:
        raise ValueError(
            f"no observed-ratio definition for diagnostic {diagnostic!r}; "
            f"known: {', '.join(REQUIRED_LINES)}"
        ) from None


def usable_diagnostics(calibration, lines, diagnostics=None) -> tuple[tuple[str, ...], dict]:
    """The calibration's diagnostics that ``lines`` can measure, and those dropped.

    Args:
        calibration: name or :class:`~jaxgrad.calibrations.Calibration`.
        lines: names of the measured lines.
        diagnostics: optional explicit selection (default: every diagnostic of the
            calibration except :data:`VARIANTS`; ``O2`` and ``R2`` are one ratio, so only
            the first is kept).

    Returns:
        (usable, dropped): a tuple of diagnostic names, and a dict
        ``{diagnostic: missing lines}`` for the calibration's diagnostics that cannot be
        measured.
    """
    cal = _cal.get(calibration)
    lines = _lines.validate(lines)
    if diagnostics is None:
        cands = [d for d in cal.diagnostics if d not in VARIANTS and d in REQUIRED_LINES]
        if "O2" in cands and "R2" in cands:
            cands.remove("R2")
    else:
        cands = list(diagnostics)
        for d in cands:
            cal.diagnostic(d)  # raises for diagnostics the calibration lacks
            required_lines(d)
    usable, dropped = [], {}
    for d in cands:
        miss = tuple(n for n in required_lines(d) if n not in lines)
        if miss:
            dropped[d] = miss
        else:
            usable.append(d)
    return tuple(usable), dropped


@cache
def log_ratio_fn(diagnostic: str, lines: tuple[str, ...]):
    """A traceable function ``f(flux[L]) -> log10 ratio`` for fluxes ordered as ``lines``."""
    req = required_lines(diagnostic)
    idx = {n: lines.index(n) for n in req}
    has_4960 = "OIII_4960" in lines
    i4960 = lines.index("OIII_4960") if has_4960 else None
    base = "R3" if diagnostic.startswith("R3") else diagnostic

    def f(flux):
        g = {n: flux[i] for n, i in idx.items()}
        if base == "R3":
            return jnp.log10(g["OIII_5008"] / g["Hb"])
        if base in ("O2", "R2"):
            return jnp.log10(g["OII_3727_30"] / g["Hb"])
        if base == "O32":
            return jnp.log10(g["OIII_5008"] / g["OII_3727_30"])
        if base == "Ne3O2":
            return jnp.log10(g["NeIII_3870"] / g["OII_3727_30"])
        if base == "N2":
            return jnp.log10(g["NII_6585"] / g["Ha"])
        if base == "S2":
            return jnp.log10(g["SII_6718_33"] / g["Ha"])
        if base == "R23":
            o3 = g["OIII_5008"] * (1.0 + 1.0 / _lines.OIII_RATIO)
            if has_4960:
                o3 = g["OIII_5008"] + flux[i4960]
            return jnp.log10((g["OII_3727_30"] + o3) / g["Hb"])
        if base == "O3N2":
            return jnp.log10(g["OIII_5008"] * g["Ha"] / (g["Hb"] * g["NII_6585"]))
        if base == "O3S2":
            return jnp.log10(g["OIII_5008"] * g["Ha"] / (g["Hb"] * g["SII_6718_33"]))
        if base == "RS32":
            return jnp.log10(g["OIII_5008"] / g["Hb"] + g["SII_6718_33"] / g["Ha"])
        raise AssertionError(diagnostic)  # pragma: no cover

    return f


def log_ratios_and_errors(flux, flux_err, lines: tuple[str, ...], diagnostics: tuple[str, ...]):
    """Observed log ratios and their 1σ errors for one set of line fluxes (traceable).

    Errors are first-order propagations, σ² = Σ_l (∂ log R / ∂F_l)² σ_l² (independent
    line errors). Non-positive fluxes give NaN ratios; mask them downstream.

    Args:
        flux: line fluxes ``[L]`` ordered as ``lines`` (any flux unit).
        flux_err: their 1σ errors ``[L]`` (same unit).
        lines: static line names.
        diagnostics: static diagnostic names (see :data:`REQUIRED_LINES`).

    Returns:
        (log_ratio ``[D]``, log_ratio_err ``[D]``), dex.
    """
    ys, es = [], []
    safe = jnp.where(flux > 0, flux, 1.0)
    for d in diagnostics:
        f = log_ratio_fn(d, tuple(lines))
        y, grad = jax.value_and_grad(f)(safe)
        ys.append(jnp.where(_needs_positive(flux, d, lines), y, jnp.nan))
        es.append(jnp.sqrt(jnp.sum((grad * flux_err) ** 2)))
    if not diagnostics:
        z = jnp.zeros((0,), jnp.result_type(flux))
        return z, z
    return jnp.stack(ys), jnp.stack(es)


def _needs_positive(flux, d, lines):
    ok = True
    for n in required_lines(d):
        ok = ok & (flux[lines.index(n)] > 0)
    return ok


LN10 = math.log(10.0)
