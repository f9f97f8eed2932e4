"""Beam-smearing curves: measured/intrinsic gradient against 2 R_e / beam.

The primary product is a table of **binned medians** per |∇Z| class and sign of ∇Z: bins
in log(2R_e/beam), each with its number of mocks, the median ratio, its bootstrap error
and the 16–84 % spread. A smooth curve (a weighted polynomial in log x through the bin
medians, degree at most 2) is fitted only through bins holding at least ``min_n`` mocks
and is defined only between the first and last such bin: it is never extrapolated (NaN
outside), and :func:`correct` refuses galaxies outside it with NaN and a warning.

(The earlier design — a cubic through every mock of a uniform-FWHM suite, whose x has
density ∝ 1/x² — was set by a handful of mocks at large x and bent away from the data's
own medians there; issue 20.)
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jaxgrad.plotting import _styled

CLASSES = (0.05, 0.10, 0.20)
SIGNS = ("all", "positive", "negative")
CSV_FIELDS = ("abs_grad", "sign", "x_lo", "x_hi", "x_center", "n", "ratio_median", "ratio_median_err",
              "ratio_p16", "ratio_p84", "ratio_fit")


@dataclass
class Curve:
    """One |∇Z| class and sign: the binned medians and the smooth fit through them.

    Attributes:
        abs_grad: |∇Z| of the class (dex/kpc); sign: ``"all"``, ``"positive"`` or
            ``"negative"``.
        x_lo, x_hi, x_center: bin edges and the median 2R_e/beam of the mocks in a bin.
        n: mocks per bin; median, median_err, p16, p84: the ratio's median, its bootstrap
            standard error and the 16th/84th percentiles (NaN in bins with < 3 mocks).
        coeffs: polynomial coefficients in log(x) (highest power first) or None.
        fit_range: (x_min, x_max) where the fit is defined (supported bins' centres).
        per_sign: for ``sign="all"``, the ``"positive"`` and ``"negative"`` curves.
    """

    abs_grad: float
    sign: str
    x_lo: np.ndarray
    x_hi: np.ndarray
    x_center: np.ndarray
    n: np.ndarray
    median: np.ndarray
    median_err: np.ndarray
    p16: np.ndarray
    p84: np.ndarray
    coeffs: np.ndarray | None
    fit_range: tuple[float, float] | None
    per_sign: dict = field(default_factory=dict)

    @property
    def n_total(self) -> int:
        return int(np.sum(self.n))

    def ratio(self, x):
        """Smooth ratio at 2R_e/beam = x; NaN outside :attr:`fit_range` (no extrapolation)."""
        xx = np.asarray(x, float)
        if self.coeffs is None:
            return np.full(xx.shape, np.nan)
        inside = (xx >= self.fit_range[0] - 1e-9) & (xx <= self.fit_range[1] + 1e-9)
        with np.errstate(invalid="ignore", divide="ignore"):
            val = np.polyval(self.coeffs, np.log(np.where(xx > 0, xx, 1.0)))
        return np.where(inside, val, np.nan)


def ratio_column(results: dict, measured: str = "grad_meas") -> np.ndarray:
    """measured / intrinsic gradient (NaN where the intrinsic gradient is 0)."""
    g = np.asarray(results["grad_true"], float)
    m = np.asarray(results[measured], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(g) > 1e-9, m / g, np.nan)


def log_edges(x_range, n_bins: int) -> np.ndarray:
    """``n_bins`` bins equally spaced in log(2R_e/beam) over ``x_range``."""
    lo, hi = float(x_range[0]), float(x_range[1])
    if not (0 < lo < hi):
        raise ValueError(f"x range must be 0 < min < max, got {x_range}")
    return np.geomspace(lo, hi * (1 + 1e-9), n_bins + 1)


def bootstrap_median(y, n_boot: int, rng) -> float:
    """Standard error of the median by bootstrap resampling."""
    if len(y) < 3:
        return np.nan
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    return float(np.std(np.median(y[idx], axis=1), ddof=1))


def _fit(center, med, err, n, min_n, deg):
    ok = (n >= min_n) & np.isfinite(med) & np.isfinite(err)
    if ok.sum() < 3:
        return None, None
    d = int(min(deg, ok.sum() - 2))
    e = np.maximum(err[ok], 1e-3)
    coeffs = np.polyfit(np.log(center[ok]), med[ok], d, w=1.0 / e)
    return coeffs, (float(center[ok].min()), float(center[ok].max()))


def _curve(x, y, a, sign, edges, min_n, deg, n_boot, rng):
    nb = len(edges) - 1
    n = np.zeros(nb, int)
    cen, med, err, p16, p84 = (np.full(nb, np.nan) for _ in range(5))
    for i in range(nb):
        sel = (x >= edges[i]) & (x < edges[i + 1]) & np.isfinite(y)
        n[i] = int(sel.sum())
        cen[i] = np.median(x[sel]) if n[i] else np.sqrt(edges[i] * edges[i + 1])
        if n[i] >= 3:
            med[i], p16[i], p84[i] = np.percentile(y[sel], [50, 16, 84])
            err[i] = bootstrap_median(y[sel], n_boot, rng)
    coeffs, rng_fit = _fit(cen, med, err, n, min_n, deg)
    return Curve(a, sign, edges[:-1].copy(), edges[1:].copy(), cen, n, med, err, p16, p84, coeffs, rng_fit)


def fit_curves(results: dict, measured: str = "grad_meas", classes=CLASSES, n_bins: int = 8,
               x_range=None, min_n: int = 10, deg: int = 2, n_boot: int = 1000,
               seed: int = 0) -> dict[float, Curve]:
    """Binned medians (with bootstrap errors) and a supported smooth fit per |∇Z| class.

    Args:
        results: columns of a suite (``load_results``): grad_true, two_re_over_beam,
            ``measured``.
        measured: which measured-gradient column to use.
        classes: |∇Z| values; mocks are assigned to the nearest class within 10 %.
        n_bins: bins in log(2R_e/beam) over ``x_range``.
        x_range: (min, max) of the bins; default the range of the mocks' x.
        min_n: bins with fewer mocks are shown but do not enter the smooth fit.
        deg: maximum polynomial degree in log x (lowered to n_supported_bins - 2).
        n_boot: bootstrap resamples per bin; seed: their seed.

    Returns:
        {|∇Z|: :class:`Curve` (sign ``"all"``, with ``per_sign``)}.
    """
    x = np.asarray(results["two_re_over_beam"], float)
    g = np.asarray(results["grad_true"], float)
    ratio = ratio_column(results, measured)
    if x_range is None:
        x_range = (float(np.nanmin(x)), float(np.nanmax(x)))
    edges = log_edges(x_range, n_bins)
    rng = np.random.default_rng(seed)
    curves = {}
    for a in classes:
        cls = (np.abs(np.abs(g) - a) <= 0.1 * a) & np.isfinite(ratio)
        if cls.sum() < 3:
            continue
        c = _curve(x[cls], ratio[cls], a, "all", edges, min_n, deg, n_boot, rng)
        for name, s in (("positive", g > 0), ("negative", g < 0)):
            sel = cls & s
            c.per_sign[name] = _curve(x[sel], ratio[sel], a, name, edges, min_n, deg, n_boot, rng)
        curves[a] = c
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
        curves: output of :func:`fit_curves` or :func:`load_curves_csv`.

    Returns:
        (corrected gradient, correction factor) arrays; NaN (with a warning) for
        galaxies whose 2R_e/beam lies outside the range the curves support.
    """
    if curves is None:
        raise ValueError("pass curves=fit_curves(load_results(DIR)) (or the shipped mock_curves.csv via load_curves_csv)")
    obs = np.asarray(observed_gradient, float)
    x = np.broadcast_to(np.asarray(two_re_over_beam, float), obs.shape)
    classes = np.array(sorted(curves))

    def ratio_at(a, xx):
        a = np.clip(a, classes[0], classes[-1])
        rs = np.array([curves[c].ratio(xx) for c in classes])  # [n_class, ...]
        flat = rs.reshape(len(classes), -1)
        return np.array([np.interp(ai, classes, flat[:, i]) for i, ai in enumerate(np.ravel(a))]).reshape(np.shape(a))

    outside = ~np.isfinite(np.array([curves[c].ratio(x) for c in classes])).all(axis=0)
    if np.any(outside):
        warnings.warn(f"{int(np.sum(outside))} galaxy(ies) have 2R_e/beam outside the range the correction "
                      f"curves support ({_support_text(curves)}): their corrected gradients are NaN",
                      UserWarning, stacklevel=2)
    if assumed_intrinsic is not None:
        r = ratio_at(np.full(obs.shape, abs(float(assumed_intrinsic))), x)
        return obs / r, 1.0 / r
    corr = obs.copy()
    r = np.ones_like(obs)
    for _ in range(n_iter):
        r = ratio_at(np.where(np.isfinite(corr), np.abs(corr), 0.0), x)
        corr = obs / r
    return corr, 1.0 / r


def _support_text(curves) -> str:
    return ", ".join(f"|∇Z| {a:.2f}: {c.fit_range[0]:.2f}-{c.fit_range[1]:.2f}" if c.fit_range else
                     f"|∇Z| {a:.2f}: none" for a, c in sorted(curves.items()))


def curves_table(curves: dict[float, Curve]) -> list[dict]:
    """One row per |∇Z| class, sign and bin (:data:`CSV_FIELDS`)."""
    rows = []
    for a, c in sorted(curves.items()):
        for cv in (c, *(c.per_sign[s] for s in SIGNS[1:] if s in c.per_sign)):
            fit = cv.ratio(cv.x_center)
            for i in range(len(cv.n)):
                rows.append({"abs_grad": a, "sign": cv.sign, "x_lo": float(cv.x_lo[i]), "x_hi": float(cv.x_hi[i]),
                             "x_center": float(cv.x_center[i]), "n": int(cv.n[i]),
                             "ratio_median": float(cv.median[i]), "ratio_median_err": float(cv.median_err[i]),
                             "ratio_p16": float(cv.p16[i]), "ratio_p84": float(cv.p84[i]),
                             "ratio_fit": float(fit[i])})
    return rows


def write_curves_csv(curves: dict[float, Curve], path: str | Path) -> Path:
    """The binned table (:func:`curves_table`) as CSV; NaN cells are left empty."""
    p = Path(path)
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_FIELDS))
        w.writeheader()
        for r in curves_table(curves):
            w.writerow({k: ("" if isinstance(v, float) and not np.isfinite(v) else
                            f"{v:.5f}" if isinstance(v, float) else v) for k, v in r.items()})
    return p


def load_curves_csv(path: str | Path, min_n: int = 10, deg: int = 2) -> dict[float, Curve]:
    """Curves from a CSV written by :func:`write_curves_csv` (the fit is redone from the
    bin table, so it equals the original's)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"curve table {str(p)!r} does not exist")
    with p.open() as f:
        rows = list(csv.DictReader(f))
    missing = set(CSV_FIELDS) - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{str(p)!r} is not a curve table: columns {sorted(missing)} missing")

    def col(rs, k, typ=float):
        return np.array([typ(r[k]) if r[k] != "" else np.nan for r in rs])

    out: dict[float, Curve] = {}
    for a in sorted({float(r["abs_grad"]) for r in rows}):
        made = {}
        for s in SIGNS:
            rs = [r for r in rows if float(r["abs_grad"]) == a and r["sign"] == s]
            if not rs:
                continue
            n = col(rs, "n", int).astype(int)
            med, err, cen = col(rs, "ratio_median"), col(rs, "ratio_median_err"), col(rs, "x_center")
            coeffs, fr = _fit(cen, med, err, n, min_n, deg)
            made[s] = Curve(a, s, col(rs, "x_lo"), col(rs, "x_hi"), cen, n, med, err, col(rs, "ratio_p16"),
                            col(rs, "ratio_p84"), coeffs, fr)
        if "all" in made:
            made["all"].per_sign = {s: made[s] for s in SIGNS[1:] if s in made}
            out[a] = made["all"]
    return out


@_styled
def plot_curves(results: dict, curves: dict[float, Curve], measured: str = "grad_meas", title=None):
    """Ratio vs 2R_e/beam per |∇Z| class: mocks by sign, binned medians with bootstrap
    errors (n per bin written above each), and the smooth fit where the bins support it."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    x = np.asarray(results["two_re_over_beam"], float)
    g = np.asarray(results["grad_true"], float)
    ratio = ratio_column(results, measured)
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.4), sharey=True, squeeze=False)
    for ax, (a, c) in zip(axes[0], sorted(curves.items()), strict=True):
        sel = np.abs(np.abs(g) - a) <= 0.1 * a
        for s, col, off in (("positive", "tab:red", 1.02), ("negative", "tab:blue", 0.98)):
            m = sel & ((g > 0) if s == "positive" else (g < 0))
            ax.scatter(x[m], ratio[m], s=3, alpha=0.25, color=col, label=f"mocks, ∇Z {'>' if off > 1 else '<'} 0")
            cs = c.per_sign.get(s)
            if cs is not None:
                ok = np.isfinite(cs.median)
                ax.errorbar(cs.x_center[ok] * off, cs.median[ok], yerr=cs.median_err[ok], fmt="o", ms=3,
                            color=col, lw=1, label=f"median ± bootstrap, ∇Z {'>' if off > 1 else '<'} 0")
        ok = np.isfinite(c.median)
        ax.errorbar(c.x_center[ok], c.median[ok], yerr=c.median_err[ok], fmt="s", ms=4, color="k",
                    lw=1.2, label="median ± bootstrap, both signs")
        for xc, mv, nn in zip(c.x_center[ok], c.median[ok], c.n[ok], strict=True):
            ax.annotate(f"{nn}", (xc, mv), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=6)
        if c.fit_range is not None:
            xx = np.geomspace(*c.fit_range, 100)
            ax.plot(xx, c.ratio(xx), "k--", lw=1, label="fit (supported bins only)")
        ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks([t for t in (0.5, 0.7, 1, 1.5, 2, 3, 4, 6, 8, 12) if min(c.x_lo) <= t <= max(c.x_hi)])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_title(f"|∇Z| = {a:.2f} dex/kpc (n = {c.n_total})")
        ax.set_xlabel("2 R_e / beam FWHM")
        ax.set_ylim(-0.2, 1.5)
    axes[0, 0].set_ylabel("measured / intrinsic ∇Z")
    axes[0, 0].legend(fontsize=5.5, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
