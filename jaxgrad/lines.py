"""Emission-line catalogue: stable names, vacuum rest wavelengths and fixed ratios.

Wavelengths are vacuum, in Angstrom (the SDSS values quoted in docs/science.md §2).
A line is referred to by a stable name such as ``"OIII_5008"``, ``"Hb"`` or
``"OII_3727_30"`` (the [OII] doublet, modelled as two components).

Fixed ratios:
  * [OIII]5008/4960 = 2.98 and [NII]6585/6550 = 3.071 (atomic physics; docs/science.md §2).
  * Case-B Balmer decrement Hα/Hβ = 2.86 (T = 10^4 K; docs/science.md §2); Hγ/Hβ = 0.468 and
    Hδ/Hβ = 0.259 (case B, T = 10^4 K, n_e = 10^2 cm^-3; Osterbrock & Ferland 2006, Table 4.2).
  * Doublet splits inside a blended line (used only to place the two components of
    a blend in a cube): [OII]3730/3727 = 1.5 and [SII]6718/6733 = 1.45, the low-density
    limits (Osterbrock & Ferland 2006, Fig. 5.8). Line-flux maps always use the blend's
    total, so these splits never change a metallicity.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Line",
    "LINES",
    "OIII_RATIO",
    "NII_RATIO",
    "CASE_B",
    "get",
    "names",
    "validate",
]

OIII_RATIO = 2.98  # [OIII]5008 / [OIII]4960
NII_RATIO = 3.071  # [NII]6585 / [NII]6550
CASE_B = {"Ha": 2.86, "Hb": 1.0, "Hg": 0.468, "Hd": 0.259}  # relative to Hβ


@dataclass(frozen=True)
class Line:
    """One emission line (or a blended doublet treated as one line).

    Attributes:
        name: stable identifier, e.g. ``"OIII_5008"``.
        label: LaTeX-ish label for plots.
        components: vacuum rest wavelengths of the components, Angstrom.
        weights: fraction of the line flux carried by each component (sums to 1).
    """

    name: str
    label: str
    components: tuple[float, ...]
    weights: tuple[float, ...] = (1.0,)

    @property
    def wavelength(self) -> float:
        """Flux-weighted mean vacuum rest wavelength, Angstrom."""
        return sum(w * l for w, l in zip(self.weights, self.components, strict=True))


def _doublet(name, label, lam_a, lam_b, ratio_b_over_a):
    wa = 1.0 / (1.0 + ratio_b_over_a)
    return Line(name, label, (lam_a, lam_b), (wa, 1.0 - wa))


LINES: dict[str, Line] = {
    line.name: line
    for line in [
        _doublet("OII_3727_30", "[OII]3727,30", 3727.09, 3729.88, 1.5),
        Line("NeIII_3870", "[NeIII]3870", (3869.86,)),
        Line("Hd", "Hδ", (4102.89,)),
        Line("Hg", "Hγ", (4341.69,)),
        Line("OIII_4364", "[OIII]4364", (4364.44,)),
        Line("Hb", "Hβ", (4862.68,)),
        Line("OIII_4960", "[OIII]4960", (4960.30,)),
        Line("OIII_5008", "[OIII]5008", (5008.24,)),
        Line("NII_6550", "[NII]6550", (6549.86,)),
        Line("Ha", "Hα", (6564.61,)),
        Line("NII_6585", "[NII]6585", (6585.27,)),
        _doublet("SII_6718_33", "[SII]6718,33", 6718.29, 6732.67, 1.0 / 1.45),
    ]
}


def names() -> tuple[str, ...]:
    """All line names, blue to red."""
    return tuple(sorted(LINES, key=lambda n: LINES[n].wavelength))


def get(name: str) -> Line:
    """Return the :class:`Line` called ``name`` or raise a ValueError listing valid names."""
    try:
        return LINES[name]
    except KeyError:
        raise ValueError(
            f"unknown line {name!r}; known lines are: {', '.join(names())}"
        ) from None


def validate(lines) -> tuple[str, ...]:
    """Check a sequence of line names and return it as a tuple (raises on unknown names)."""
    if isinstance(lines, str):
        lines = (lines,)
    lines = tuple(lines)
    if not lines:
        raise ValueError("at least one line is required")
    for n in lines:
        get(n)
    if len(set(lines)) != len(lines):
        raise ValueError(f"duplicate line names in {lines}")
    return lines
