"""Beam-smearing correction curves: measured/intrinsic gradient vs 2 R_e / beam.

Per |∇Z| class (default 0.05, 0.10, 0.20 dex/kpc): a polynomial fit of the ratio
against 2R_e/beam, running medians with their 16–84 % spread, the same per sign of the
gradient, and the inversion to a correction factor (Paper A, Sect. 6 / Fig. 8).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GRID = np.round(np.arange(0.6, 6.4 + 1e-9, 0.1), 2)
CLASSES = (0.05, 0.10, 0.20)


@dataclass
class Curve:
    """One |∇Z| class: polynomial coefficients (highest power first) and binned medians."""

    abs_grad: float
    coeffs: np.ndarray
    x_range: tuple[float, float]
    bin_centers: np.ndarray
    median: np.ndarray
    p16: np.ndarray
    p84: np.ndarray
    n: int
    per_sign: dict = field(default_factory=dict)

    def ratio(self, x):
        """Fitted ratio at 2R_e/beam = x (clamped to the fitted range)."""
        xx = np.clip(np.asarray(x, float), *self.x_range)
        return np.polyval(self.coeffs, xx)

    def running_median(self, x):
        ok = np.isfinite(self.median)
        return np.interp(np.asarray(x, float), self.bin_centers[ok], self.median[ok])


def _binned(x, y, edges):
    c = 0.5 * (edges[1:] + edges[:-1])
    med, lo, hi = (np.full(len(c), np.nan) for _ in range(3))
    for i in range(len(c)):
        sel = (x >= edges[i]) & (x < edges[i + 1]) & np.isfinite(y)
        if sel.sum() >= 3:
            med[i], lo[i], hi[i] = np.percentile(y[sel], [50, 16, 84])
    return c, med, lo, hi


def ratio_column(results: dict, measured: str = "grad_meas") -> np.ndarray:
    """measured / intrinsic gradient (NaN where the intrinsic gradient is 0)."""
    g = np.asarray(results["grad_true"], float)
    m = np.asarray(results[measured], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(g) > 1e-9, m / g, np.nan)


def fit_curves(results: dict, measured: str = "grad_meas", classes=CLASSES, deg: int = 3,
               n_bins: int = 12) -> dict[float, Curve]:
    """Fit one :class:`Curve` per |∇Z| class.

    Args:
        results: columns of a suite (``load_results``): grad_true, two_re_over_beam, ``measured``.
        measured: which measured-gradient column to use.
        classes: |∇Z| values; mocks are assigned to the nearest class within 10 %.
        deg: polynomial degree.
        n_bins: bins in 2R_e/beam for running medians.
    """
    x = np.asarray(results["two_re_over_beam"], float)
    g = np.asarray(results["grad_true"], float)
    ratio = ratio_column(results, measured)
    edges = np.linspace(np.nanmin(x), np.nanmax(x) + 1e-9, n_bins + 1)
    curves = {}
    for a in classes:
        sel = (np.abs(np.abs(g) - a) <= 0.1 * a) & np.isfinite(ratio)
        if sel.sum() < deg + 2:
            continue
        coeffs = np.polyfit(x[sel], ratio[sel], deg)
        c, med, lo, hi = _binned(x[sel], ratio[sel], edges)
        per_sign = {}
        for name, s in (("positive", g > 0), ("negative", g < 0)):
            ss = sel & s
            if ss.sum() >= deg + 2:
                _, m2, l2, h2 = _binned(x[ss], ratio[ss], edges)
                per_sign[name] = {"coeffs": np.polyfit(x[ss], ratio[ss], deg), "median": m2, "p16": l2,
                                  "p84": h2, "n": int(ss.sum())}
        curves[a] = Curve(a, coeffs, (float(x[sel].min()), float(x[sel].max())), c, med, lo, hi,
                          int(sel.sum()), per_sign)
    if not curves:
        raise ValueError(f"no |∇Z| class of {classes} has enough mocks with a measured gradient")
    return curves


def correct(observed_gradient, two_re_over_beam, assumed_intrinsic=None, curves=None, n_iter: int = 20):
    """Beam-smearing-corrected gradient: observed / ratio(2R_e/beam, |∇Z| class).

    Args:
        observed_gradient: measured gradients (dex/kpc), scalar or array.
        two_re_over_beam: 2 R_e / beam FWHM of each galaxy.
        assumed_intrinsic: |∇Z| class to use for every galaxy; None iterates: start from
            the observed value, pick the curve by interpolating in |∇Z| between classes,
            and repeat until the corrected value is stable.
        curves: output of :func:`fit_curves`.

    Returns:
        (corrected gradient, correction factor) arrays.
    """
    if curves is None:
        raise ValueError("pass curves=fit_curves(load_results(DIR)) (or the shipped mock_curves.csv via load_curves_csv)")
    obs = np.asarray(observed_gradient, float)
    x = np.broadcast_to(np.asarray(two_re_over_beam, float), obs.shape)
    classes = np.array(sorted(curves))

    def ratio_at(a, xx):
        a = np.clip(a, classes[0], classes[-1])
        rs = np.array([curves[c].ratio(xx) for c in classes])  # [n_class, ...]
        return np.array([np.interp(ai, classes, rs[:, i]) for i, ai in enumerate(np.ravel(a))]).reshape(np.shape(a))

    if assumed_intrinsic is not None:
        r = ratio_at(np.full(obs.shape, abs(float(assumed_intrinsic))), x)
        return obs / r, 1.0 / r
    corr = obs.copy()
    for _ in range(n_iter):
        r = ratio_at(np.abs(corr), x)
        corr = obs / r
    return corr, 1.0 / r


def curves_table(curves: dict[float, Curve], grid=GRID) -> list[dict]:
    """Rows abs_grad, two_re_over_beam, ratio_fit, ratio_median on ``grid``."""
    rows = []
    for a, c in sorted(curves.items()):
        for x in grid:
            rows.append({"abs_grad": a, "two_re_over_beam": float(x), "ratio_fit": float(c.ratio(x)),
                         "ratio_median": float(c.running_median(x))})
    return rows


def write_curves_csv(curves: dict[float, Curve], path: str | Path, grid=GRID) -> Path:
    rows = curves_table(curves, grid)
    p = Path(path)
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["abs_grad", "two_re_over_beam", "ratio_fit", "ratio_median"])
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in r.items()})
    return p


def plot_curves(results: dict, curves: dict[float, Curve], measured: str = "grad_meas", title=None):
    """Paper A Fig. 8 style: ratio vs 2R_e/beam, one panel per |∇Z|, by sign, median and fit."""
    from jaxgrad.plotting import _plt

    plt = _plt()
    x = np.asarray(results["two_re_over_beam"], float)
    g = np.asarray(results["grad_true"], float)
    ratio = ratio_column(results, measured)
    fig, axes = plt.subplots(1, len(curves), figsize=(3.3 * len(curves), 3.2), sharey=True, squeeze=False)
    xx = np.linspace(min(c.x_range[0] for c in curves.values()), max(c.x_range[1] for c in curves.values()), 100)
    for ax, (a, c) in zip(axes[0], sorted(curves.items()), strict=True):
        sel = np.abs(np.abs(g) - a) <= 0.1 * a
        ax.scatter(x[sel & (g > 0)], ratio[sel & (g > 0)], s=4, alpha=0.35, color="tab:red", label="∇Z > 0")
        ax.scatter(x[sel & (g < 0)], ratio[sel & (g < 0)], s=4, alpha=0.35, color="tab:blue", label="∇Z < 0")
        ok = np.isfinite(c.median)
        ax.fill_between(c.bin_centers[ok], c.p16[ok], c.p84[ok], color="0.6", alpha=0.3, label="16–84 %")
        ax.plot(c.bin_centers[ok], c.median[ok], "k-", lw=1.5, label="running median")
        ax.plot(xx, c.ratio(xx), "k--", lw=1.2, label="polynomial fit")
        ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
        ax.set_title(f"|∇Z| = {a:.2f} dex/kpc (n = {c.n})")
        ax.set_xlabel("2 R_e / beam FWHM")
        ax.set_ylim(-0.5, 1.6)
    axes[0, 0].set_ylabel("measured / intrinsic ∇Z")
    axes[0, 0].legend(fontsize=6, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
