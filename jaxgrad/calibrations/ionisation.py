"""Ionisation-parameter term of the line-ratio predictions.

The empirical calibrations give log R(Z) for galaxies with the typical ionisation
parameter of their calibration samples. jaxgrad adds the *differential* response of
each ratio to log U taken from the NebulaBayes 0.9.9 MAPPINGS 5.1 HII-region grid at
log P/k = 6.6 (n_e of a few hundred cm^-3), as recommended in the reference notes
(``calibrations.md``, "Recommendation"):

    log R(Z, U) = log R_cal(Z) + Delta_R(Z, U),   Delta_R(Z, U_ref) = 0,  U_ref = -2.5

Delta for a ratio is the difference of the per-species responses (species: OIII =
[OIII]5008/Hβ, OII = [OII]3727,30/Hβ, NeIII = [NeIII]3870/Hβ, NII = [NII]6585/Hα,
SII = [SII]6718,33/Hα), each a smooth polynomial surface fitted to the grid (see
``_derive_ionisation.py``; the fit's rms and maximum residual per species are in
``ionisation_surfaces.json``, 0.01-0.04 dex rms).

Range of validity: log U in [-4, -2] (the grid), 12+log(O/H) in [7.06, 8.87]. Outside
it the polynomial is an extrapolation; :func:`check_logu` raises on values beyond
[-4.5, -1.5] and the docs flag [-2, -1.5] as an extrapolation.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import jax.numpy as jnp
import numpy as np

SPECIES = ("OIII", "OII", "NeIII", "NII", "SII")
LOGU_LIMITS = (-4.5, -1.5)  # hard limits accepted by check_logu

# species composition (numerator, denominator) of each diagnostic that is a ratio of
# single species; sums such as R23 and RS32 have no entry.
DIAGNOSTIC_SPECIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "R3": (("OIII",), ()),
    "R3_largeEW": (("OIII",), ()),
    "R3_smallEW": (("OIII",), ()),
    "O2": (("OII",), ()),
    "R2": (("OII",), ()),
    "O32": (("OIII",), ("OII",)),
    "Ne3O2": (("NeIII",), ("OII",)),
    "N2": (("NII",), ()),
    "S2": (("SII",), ()),
    "O3N2": (("OIII",), ("NII",)),
    "O3S2": (("OIII",), ("SII",)),
    "N2O2": (("NII",), ("OII",)),
    "N2S2": (("NII",), ("SII",)),
}


@cache
def surfaces() -> dict:
    """The fitted surfaces (parsed ``ionisation_surfaces.json``)."""
    text = resources.files("jaxgrad.calibrations").joinpath("ionisation_surfaces.json")
    return json.loads(text.read_text())


@cache
def grid_slices() -> np.ndarray:
    """NebulaBayes grid slices shipped for tests: columns logPk, logU, logOH, 5 species."""
    path = resources.files("jaxgrad.calibrations").joinpath("nebulabayes_hii_slices.csv")
    with resources.as_file(path) as p:
        return np.loadtxt(p, delimiter=",", skiprows=1)


def species_delta(species: str, logoh, logu):
    """Delta log(species ratio) between log U and U_ref at 12+log(O/H) = logoh.

    Args:
        species: one of :data:`SPECIES`.
        logoh: 12+log(O/H), any shape.
        logu: log10 U, broadcastable with ``logoh``.

    Returns:
        Array (dex), zero at log U = U_ref. jit/vmap/grad friendly.
    """
    s = surfaces()
    x = jnp.asarray(logoh) - s["x_offset"]
    u = jnp.asarray(logu) - s["logu_ref"]
    # Horner in u of polynomials in x (powers by multiplication: cheap and exact grads)
    poly_x: dict[int, list[float]] = {}
    for c, (pu, px) in zip(s["species"][species]["coeffs"], s["terms_pu_px"], strict=True):
        poly_x.setdefault(pu, [0.0] * 4)
        poly_x[pu][px] += c
    out = 0.0
    for pu in sorted(poly_x, reverse=True):
        cx = poly_x[pu]
        px_val = ((cx[3] * x + cx[2]) * x + cx[1]) * x + cx[0]
        out = (out + px_val) * u
    return out + jnp.zeros(jnp.broadcast_shapes(jnp.shape(x), jnp.shape(u)), jnp.result_type(x, u))


def diagnostic_delta(diagnostic: str, logoh, logu):
    """Delta log R for a diagnostic (numerator species minus denominator species)."""
    if diagnostic not in DIAGNOSTIC_SPECIES:
        raise ValueError(
            f"the ionisation term is defined for ratios of single species "
            f"({', '.join(DIAGNOSTIC_SPECIES)}); {diagnostic!r} is a sum of lines. "
            "Call predict without logu for it."
        )
    num, den = DIAGNOSTIC_SPECIES[diagnostic]
    total = 0.0
    for sp in num:
        total = total + species_delta(sp, logoh, logu)
    for sp in den:
        total = total - species_delta(sp, logoh, logu)
    return total


def check_logu(logu, what: str = "logu") -> None:
    """Raise a ValueError if a concrete log U lies outside the accepted limits."""
    arr = np.asarray(logu, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be finite, got {logu!r}")
    lo, hi = LOGU_LIMITS
    if np.any(arr < lo) or np.any(arr > hi):
        raise ValueError(
            f"{what}={logu!r} is outside [{lo}, {hi}], the range where jaxgrad's "
            "ionisation term (NebulaBayes grid, log U in [-4, -2]) can be used"
        )
