"""Metallicity of one bin (annulus, spaxel or Voronoi bin) from its line fluxes.

Three estimators, all pure functions of one bin's fluxes (vmap them over bins and
galaxies):

* **Method I** (Paper A, docs/science.md §5): every available diagnostic at once,
  χ²(Z) = Σ_d (y_d − P_d(Z))² / (σ_d² + s_d²) with y_d the (dust-corrected) observed log
  ratio, σ_d its measurement error, s_d the calibration's intrinsic scatter and P_d the
  calibration. :func:`method1_grid` evaluates the exact posterior (flat prior) on a dense
  grid of 12+log(O/H); :func:`jaxgrad.pipeline.sampling.method1_numpyro` samples the same
  density with NUTS.
* **Method II** (Paper A): each diagnostic inverted on its own
  (:func:`method2_inversion`); a double-valued curve's branch is the root nearest to the
  Method I estimate from the *other* diagnostics.
* **Paper B** (Li et al.): the joint likelihood of (Z, A_V, f_Hβ) over line fluxes,
  :func:`paper_b_loglike` (sampled in :mod:`jaxgrad.pipeline.sampling`).

Rules shared by all (Paper A's): a line is used only at S/N ≥ ``snr_min`` (2.5); a
diagnostic only when all its lines are used; a diagnostic only inside its valid range —
implemented as two passes: the posterior median with all available diagnostics (support
= hull of their ranges) decides which diagnostics' ranges contain the bin, and the final
posterior uses those diagnostics on the intersection of their ranges. Fluxes are
de-reddened with A_V from the Balmer decrement (Hα/Hβ, else Hγ/Hβ, both lines at
S/N ≥ ``snr_min``; A_V ≥ 0; the curve chosen by ``dust_law``), or with a fallback A_V (e.g.
galaxy-wide) where no decrement is measured. The A_V error is not propagated into the
ratio errors in Method I/II (Paper A's practice); Paper B's likelihood fits A_V instead.

All quantities are dex (log ratios, 12+log(O/H)) or magnitudes (A_V).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines
from jaxgrad.physics import dust as _dust
from jaxgrad.pipeline import diagnostics as _diag

__all__ = [
    "MetallicitySpec",
    "make_metallicity_spec",
    "Method1Result",
    "Method2Result",
    "balmer_av",
    "deredden",
    "observed_diagnostics",
    "method1_grid",
    "method1_fisher_err",
    "method1_flags",
    "method2_inversion",
    "paper_b_loglike",
]

LN10 = math.log(10.0)


@dataclass(frozen=True)
class MetallicitySpec:
    """Static configuration of the per-bin metallicity estimators (hashable).

    Build it with :func:`make_metallicity_spec`, which resolves the calibration's
    scatter and ranges at the edge.

    Attributes:
        lines: measured line names; fluxes are ordered like this.
        calibration: calibration name.
        diagnostics: diagnostics used (all measurable from ``lines``).
        scatter: calibration scatter per diagnostic, dex.
        ranges: (lo, hi) 12+log(O/H) range per diagnostic (valid range, or the
            calibration's search range where none is published).
        grid: (lo, hi, n) of the 12+log(O/H) grid (cell centres).
        snr_min: minimum line S/N for a line to be used.
        ratio_snr_min: minimum S/N of a diagnostic's ratio, 1/(ln10 σ_logR) (0: off).
        dust_correct: de-redden fluxes with the Balmer decrement.
        dust_law: ``"calzetti"`` or ``"smc"``.
        default_branch: ``"lower"`` | ``"upper"``: Method II root of a double-valued
            curve when no other diagnostic is available to choose.
        line_scatter: Paper B's intrinsic scatter (dex) of each line's ratio to Hβ
            (−1 for lines the calibration cannot predict).
        turnovers: 12+log(O/H) of each diagnostic's extremum inside its range (+inf for
            a monotonic curve); it separates the lower and upper branches.

    (No NaN in the fields: the spec must compare equal to itself to serve as a static
    jit argument and cache key.)
    """

    lines: tuple[str, ...]
    calibration: str
    diagnostics: tuple[str, ...]
    scatter: tuple[float, ...]
    ranges: tuple[tuple[float, float], ...]
    grid: tuple[float, float, int] = (7.0, 9.2, 512)
    snr_min: float = 2.5
    ratio_snr_min: float = 0.0
    dust_correct: bool = True
    dust_law: str = "calzetti"
    default_branch: str = "lower"
    line_scatter: tuple[float, ...] = ()
    turnovers: tuple[float, ...] = ()

    @property
    def n_diag(self) -> int:
        return len(self.diagnostics)

    def replace(self, **kw) -> MetallicitySpec:
        from dataclasses import replace

        return replace(self, **kw)


def make_metallicity_spec(lines, calibration="sanders24", *, diagnostics=None,
                          default_scatter: float = 0.1, n_grid: int = 512,
                          snr_min: float = 2.5, ratio_snr_min: float = 0.0,
                          dust_correct: bool = True, dust_law: str = "calzetti",
                          default_branch: str = "lower", warn: bool = True):
    """Resolve a calibration into a :class:`MetallicitySpec` (edge; NumPy/Python).

    Args:
        lines: measured line names.
        calibration: calibration name (see :func:`jaxgrad.calibrations.available`).
        diagnostics: explicit diagnostic selection (default: all measurable ones).
        default_scatter: calibration scatter (dex) used where the calibration publishes
            none (``cal.scatter(d)`` is None).
        n_grid: points of the 12+log(O/H) grid (resolution = range / n_grid).
        snr_min: minimum line S/N (Paper A: 2.5).
        ratio_snr_min: minimum ratio S/N (spaxel mode: 2.5).
        dust_correct: de-redden with the Balmer decrement when measurable.
        dust_law: ``"calzetti"`` (Paper A) or ``"smc"`` (Paper B).
        default_branch: Method II branch when nothing else chooses.
        warn: emit a UserWarning naming diagnostics dropped for missing lines.

    Returns:
        (spec, dropped) where ``dropped`` maps each unusable diagnostic to its missing
        lines.
    """
    lines = _lines.validate(lines)
    cal = _cal.get(calibration)
    if not (default_scatter >= 0 and np.isfinite(default_scatter)):
        raise ValueError(f"default_scatter must be a finite value >= 0 dex, got {default_scatter!r}")
    if dust_law not in _dust.LAWS:
        raise ValueError(f"dust_law must be one of {_dust.LAWS}, got {dust_law!r}")
    if default_branch not in ("lower", "upper"):
        raise ValueError(f"default_branch must be 'lower' or 'upper', got {default_branch!r}")
    if not (isinstance(n_grid, (int, np.integer)) and n_grid >= 16):
        raise ValueError(f"n_grid must be an integer >= 16, got {n_grid!r}")
    usable, dropped = _diag.usable_diagnostics(cal, lines, diagnostics)
    if warn and dropped:
        warnings.warn(
            "diagnostics dropped because lines are missing: "
            + "; ".join(f"{d} (needs {', '.join(m)})" for d, m in dropped.items()),
            UserWarning, stacklevel=2)
    scat = []
    for d in usable:
        s = cal.scatter(d)
        scat.append(float(default_scatter if s is None else s))
    ranges = tuple(tuple(float(v) for v in cal.search_range(d)) for d in usable)
    if ranges:
        lo = min(r[0] for r in ranges)
        hi = max(r[1] for r in ranges)
    else:
        lo, hi = cal.search_range(cal.diagnostics[0])
    pad = 0.02 * (hi - lo)
    line_scatter = []
    for ln in lines:
        if ln in _lines.CASE_B:
            line_scatter.append(0.0)
            continue
        rec = cal.line_recipe(ln)
        if rec is None:
            line_scatter.append(-1.0)
            continue
        tot = 0.0
        for d, _ in rec:
            s = cal.scatter(d)
            tot += float(default_scatter if s is None else s) ** 2
        line_scatter.append(math.sqrt(tot))
    spec = MetallicitySpec(
        lines=lines, calibration=cal.name, diagnostics=usable, scatter=tuple(scat),
        ranges=ranges, grid=(float(lo - pad), float(hi + pad), int(n_grid)),
        snr_min=float(snr_min), ratio_snr_min=float(ratio_snr_min),
        dust_correct=bool(dust_correct), dust_law=dust_law, default_branch=default_branch,
        line_scatter=tuple(line_scatter),
        turnovers=tuple(math.inf if cal.turnover(d) is None else float(cal.turnover(d))
                        for d in usable))
    return spec, dropped


# --------------------------------------------------------------------------- helpers
def z_grid(spec: MetallicitySpec, dtype=None):
    """Cell centres of the 12+log(O/H) grid ``[n]`` and the cell width."""
    lo, hi, n = spec.grid
    dz = (hi - lo) / n
    dtype = dtype or jnp.result_type(float)
    return jnp.asarray(lo + dz * (np.arange(n) + 0.5), dtype), dz


def predictions(spec: MetallicitySpec, zg):
    """Calibration predictions on the grid ``[D, n]`` (no ionisation term)."""
    cal = _cal.get(spec.calibration)
    if not spec.diagnostics:
        return jnp.zeros((0, zg.shape[0]), zg.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        return jnp.stack([cal.predict(d, zg) for d in spec.diagnostics])


def line_used(flux, err, snr_min):
    """Boolean ``[L]``: finite flux, positive finite error and S/N ≥ snr_min."""
    ok = jnp.isfinite(flux) & jnp.isfinite(err) & (err > 0)
    snr = jnp.where(ok, flux / jnp.where(ok, err, 1.0), 0.0)
    return ok & (snr >= snr_min)


def _balmer_index(lines, name):
    return lines.index(name) if name in lines else -1


def balmer_av(flux, err, spec: MetallicitySpec, av_fallback=0.0):
    """A_V (mag) from the Balmer decrement, Hα/Hβ preferred, else Hγ/Hβ.

    A_V from :func:`jaxgrad.physics.dust.balmer_decrement_av` (``spec.dust_law``),
    clipped at 0. Where neither pair is measured at S/N ≥ ``snr_min``, returns
    ``av_fallback``.

    Returns:
        (av, measured): scalar A_V and a boolean flag.
    """
    lines = spec.lines
    used = line_used(flux, err, spec.snr_min)
    ib = _balmer_index(lines, "Hb")
    dtype = jnp.result_type(flux)
    av = jnp.asarray(av_fallback, dtype)
    measured = jnp.asarray(False)
    if ib < 0:
        return av, measured
    for name in ("Hg", "Ha"):  # later wins: Hα preferred
        ix = _balmer_index(lines, name)
        if ix < 0:
            continue
        ok = used[ix] & used[ib]
        ratio = jnp.where(ok, flux[ix] / jnp.where(ok, flux[ib], 1.0), 1.0)
        ratio = jnp.where(ok & (ratio > 0), ratio, _lines.CASE_B[name])
        a = _dust.balmer_decrement_av(ratio, spec.dust_law, name)
        av = jnp.where(ok, jnp.maximum(a, 0.0), av)
        measured = measured | ok
    return av, measured


def deredden(flux, err, av, spec: MetallicitySpec):
    """De-reddened fluxes and errors, F·10^{0.4 A_V k_l} (k = A_λ/A_V of the dust law)."""
    k = jnp.asarray(_dust.line_alav(spec.lines, spec.dust_law), jnp.result_type(flux))
    fac = 10.0 ** (0.4 * av * k)
    return flux * fac, err * fac


def observed_diagnostics(flux, err, spec: MetallicitySpec, av_fallback=0.0):
    """Dust-corrected observed log ratios of one bin.

    Args:
        flux: line fluxes ``[L]`` (ordered as ``spec.lines``; any flux unit).
        err: 1σ errors ``[L]``; non-finite or ≤ 0 marks a line as missing.
        spec: :class:`MetallicitySpec`.
        av_fallback: A_V (mag) used when no Balmer decrement is measured.

    Returns:
        (y ``[D]``, sy ``[D]``, avail ``[D]`` bool, av, av_measured).
    """
    used = line_used(flux, err, spec.snr_min)
    if spec.dust_correct:
        av, av_meas = balmer_av(flux, err, spec, av_fallback)
    else:
        av, av_meas = jnp.zeros((), jnp.result_type(flux)), jnp.asarray(False)
    fc, ec = deredden(jnp.where(used, flux, 1.0), jnp.where(used, err, 1.0), av, spec)
    y, sy = _diag.log_ratios_and_errors(fc, ec, spec.lines, spec.diagnostics)
    avail = []
    for d in spec.diagnostics:
        ok = jnp.asarray(True)
        for n in _diag.required_lines(d):
            ok = ok & used[spec.lines.index(n)]
        avail.append(ok)
    avail = jnp.stack(avail) if avail else jnp.zeros((0,), bool)
    avail = avail & jnp.isfinite(y) & jnp.isfinite(sy)
    if spec.ratio_snr_min > 0:
        avail = avail & (1.0 / (LN10 * jnp.where(sy > 0, sy, 1e-30)) > spec.ratio_snr_min)
    y = jnp.where(avail, y, 0.0)
    sy = jnp.where(avail, sy, 1.0)
    return y, sy, avail, av, av_meas


class Method1Result(NamedTuple):
    """Method I posterior summary of one bin (dex unless stated).

    Fields:
        median, lo, hi: posterior median and 16th/84th percentiles of 12+log(O/H).
        mean, std: posterior mean and standard deviation.
        mode: grid point of maximum posterior.
        err: (hi − lo)/2, the symmetric 1σ used for gradient fits.
        measurable: at least one diagnostic was used.
        used: ``[D]`` diagnostics used in the final posterior.
        avail: ``[D]`` diagnostics measured (lines at S/N ≥ snr_min).
        support: (lo, hi) bounds of the flat prior actually used.
        y, sy: ``[D]`` dust-corrected observed log ratios and errors.
        av, av_measured: A_V applied (mag) and whether a Balmer decrement gave it.
        logpost: ``[n]`` normalised log posterior density on the grid (−inf outside
            the support).
    """

    median: jax.Array
    lo: jax.Array
    hi: jax.Array
    mean: jax.Array
    std: jax.Array
    mode: jax.Array
    err: jax.Array
    measurable: jax.Array
    used: jax.Array
    avail: jax.Array
    support: jax.Array
    y: jax.Array
    sy: jax.Array
    av: jax.Array
    av_measured: jax.Array
    logpost: jax.Array


def _chi2_terms(y, sy, pred, scat):
    """Per-diagnostic χ² on the grid ``[D, n]``."""
    var = sy**2 + scat**2
    return (y[:, None] - pred) ** 2 / var[:, None]


def _ranges_arrays(spec, dtype):
    r = np.array(spec.ranges, float).reshape(-1, 2)
    return jnp.asarray(r[:, 0], dtype), jnp.asarray(r[:, 1], dtype)


def _posterior(chi2_d, use, support_mask, zg, dz):
    """Normalised gridded posterior from per-diagnostic χ² and a support mask."""
    chi2 = jnp.sum(jnp.where(use[:, None], chi2_d, 0.0), axis=0)
    logp = jnp.where(support_mask, -0.5 * chi2, -jnp.inf)
    ok = jnp.any(support_mask)
    m = jnp.max(jnp.where(support_mask, logp, -1e30))
    w = jnp.where(support_mask, jnp.exp(logp - m), 0.0)
    tot = jnp.sum(w)
    p = w / jnp.where(tot > 0, tot, 1.0)
    logpost = jnp.where(support_mask, logp - m - jnp.log(jnp.where(tot > 0, tot, 1.0) * dz), -jnp.inf)
    return p, logpost, ok & (tot > 0)


def _quantiles(p, zg, dz, qs):
    """Quantiles of a gridded density (piecewise constant in each cell).

    Written with comparisons and gathers instead of ``jnp.interp``/``searchsorted``,
    which compile much more slowly inside vmapped code.
    """
    cdf = jnp.concatenate([jnp.zeros((1,), p.dtype), jnp.cumsum(p)])
    tot = jnp.where(cdf[-1] > 0, cdf[-1], 1.0)
    cdf = cdf / tot
    q = jnp.asarray(qs, p.dtype)
    n = p.shape[0]
    # cell k holds the quantile when cdf[k] < q <= cdf[k+1]
    k = jnp.clip(jnp.sum(cdf[None, 1:] < q[:, None], axis=1), 0, n - 1)
    c0 = cdf[k]
    pk = p[k] / tot
    frac = jnp.where(pk > 0, (q - c0) / jnp.where(pk > 0, pk, 1.0), 0.5)
    out = zg[k] - 0.5 * dz + jnp.clip(frac, 0.0, 1.0) * dz
    return [out[i] for i in range(len(qs))]


def _summaries(p, zg, dz):
    med, lo, hi = _quantiles(p, zg, dz, (0.5, 0.15865525393145707, 0.8413447460685429))
    mean = jnp.sum(p * zg)
    std = jnp.sqrt(jnp.maximum(jnp.sum(p * (zg - mean) ** 2), 0.0) + dz**2 / 12.0)
    mode = zg[jnp.argmax(p)]
    return med, lo, hi, mean, std, mode


def method1_grid(flux, err, spec: MetallicitySpec, av_fallback=0.0) -> Method1Result:
    """Method I for one bin: the exact gridded posterior of 12+log(O/H) (traceable).

    Flat prior on the support; Gaussian likelihood per diagnostic with variance
    σ_d² + s_d² (measurement + calibration scatter). See the module docstring for the
    line, S/N, dust and valid-range rules. NaN summaries and ``measurable=False`` when no
    diagnostic is available.

    Args:
        flux: line fluxes ``[L]`` ordered as ``spec.lines`` (any flux unit).
        err: 1σ flux errors ``[L]`` (non-finite or ≤ 0: line missing).
        spec: :class:`MetallicitySpec` (static).
        av_fallback: A_V (mag) where no Balmer decrement is measured.

    Returns:
        :class:`Method1Result`.
    """
    dtype = jnp.result_type(flux, float)
    flux = jnp.asarray(flux, dtype)
    err = jnp.asarray(err, dtype)
    zg, dz = z_grid(spec, dtype)
    y, sy, avail, av, av_meas = observed_diagnostics(flux, err, spec, av_fallback)
    D = spec.n_diag
    nan = jnp.asarray(jnp.nan, dtype)
    if D == 0:
        empty = jnp.zeros((0,), dtype)
        return Method1Result(nan, nan, nan, nan, nan, nan, nan, jnp.asarray(False),
                             jnp.zeros((0,), bool), jnp.zeros((0,), bool),
                             jnp.stack([nan, nan]), empty, empty, av, av_meas,
                             jnp.full(zg.shape, -jnp.inf, dtype))
    pred = predictions(spec, zg)
    scat = jnp.asarray(spec.scatter, dtype)
    lo_d, hi_d = _ranges_arrays(spec, dtype)
    chi2_d = _chi2_terms(y, sy, pred, scat)
    # pass 1: all available diagnostics, support = hull of their ranges
    hull_lo = jnp.min(jnp.where(avail, lo_d, jnp.inf))
    hull_hi = jnp.max(jnp.where(avail, hi_d, -jnp.inf))
    sup1 = (zg >= hull_lo) & (zg <= hull_hi)
    p1, _, ok1 = _posterior(chi2_d, avail, sup1, zg, dz)
    z1 = _quantiles(p1, zg, dz, (0.5,))[0]
    # pass 2: diagnostics whose valid range contains the pass-1 median
    use = avail & (z1 >= lo_d) & (z1 <= hi_d) & ok1
    s_lo = jnp.max(jnp.where(use, lo_d, -jnp.inf))
    s_hi = jnp.min(jnp.where(use, hi_d, jnp.inf))
    sup2 = (zg >= s_lo) & (zg <= s_hi)
    p2, logpost, ok2 = _posterior(chi2_d, use, sup2, zg, dz)
    measurable = jnp.any(use) & ok2
    med, lo, hi, mean, std, mode = _summaries(p2, zg, dz)
    bad = ~measurable

    def m(x):
        return jnp.where(bad, nan, x)

    return Method1Result(
        median=m(med), lo=m(lo), hi=m(hi), mean=m(mean), std=m(std), mode=m(mode),
        err=m(0.5 * (hi - lo)), measurable=measurable, used=use, avail=avail,
        support=jnp.stack([m(s_lo), m(s_hi)]), y=y, sy=sy, av=av, av_measured=av_meas,
        logpost=jnp.where(bad, -jnp.inf, logpost))


def method1_fisher_err(m1: Method1Result, spec: MetallicitySpec, logoh):
    """1σ of 12+log(O/H) at ``logoh`` from the likelihood's curvature alone (traceable).

    σ⁻² = Σ_d P_d'(Z)² / (σ_d² + s_d²) over the diagnostics Method I used (Gauss–Newton):
    the width an unbounded inversion gives, independent of the valid-range truncation
    (a posterior against a range edge is narrower than the data make it; weighting a
    gradient fit by that width lets edge bins dominate). +inf where nothing constrains.
    """
    dtype = jnp.result_type(logoh, float)
    if spec.n_diag == 0:
        return jnp.full(jnp.shape(logoh), jnp.inf, dtype)
    cal = _cal.get(spec.calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        slopes = jnp.stack([jax.grad(lambda t, d=d: cal.predict(d, t))(jnp.asarray(logoh, dtype))
                            for d in spec.diagnostics])
    var = m1.sy**2 + jnp.asarray(spec.scatter, dtype) ** 2
    info = jnp.sum(jnp.where(m1.used, slopes**2 / var, 0.0))
    return jnp.where(info > 0, 1.0 / jnp.sqrt(jnp.where(info > 0, info, 1.0)), jnp.inf)


def method1_flags(m1: Method1Result, spec: MetallicitySpec, threshold: float = 2.0):
    """Whether a Method I posterior is a measurement one can summarise (traceable).

    Returns (saturated, truncated, multimodal):

    * ``saturated`` — the mode lies in the grid cell at an edge of the support (the
      likelihood peaks outside the valid range: no summary of it is a measurement);
    * ``truncated`` — the log density at an edge is within ``threshold`` of its peak (the
      edge cuts the posterior inside ~2σ);
    * ``multimodal`` — a second local maximum within ``threshold`` of the peak (e.g. a
      double-valued R3 with nothing to pick its branch: mode, median and mean are each
      a different wrong answer).
    """
    zg, dz = z_grid(spec, jnp.result_type(m1.mode, float))
    lo, hi = m1.support[0], m1.support[1]
    saturated = (m1.mode - lo < dz) | (hi - m1.mode < dz)
    near = (jnp.abs(zg - lo) < dz) | (jnp.abs(zg - hi) < dz)
    lp = jnp.where(jnp.isfinite(m1.logpost), m1.logpost, -jnp.inf)
    peak = jnp.max(lp)
    edge = jnp.max(jnp.where(near, lp, -jnp.inf))
    truncated = edge - peak > -threshold
    left = jnp.concatenate([jnp.full((1,), -jnp.inf, lp.dtype), lp[:-1]])
    right = jnp.concatenate([lp[1:], jnp.full((1,), -jnp.inf, lp.dtype)])
    maxima = (lp > left) & (lp >= right) & (lp > peak - threshold)
    multimodal = jnp.sum(maxima) >= 2
    ok = m1.measurable
    return saturated & ok, truncated & ok, multimodal & ok


class Method2Result(NamedTuple):
    """Method II: each diagnostic inverted alone (arrays ``[D]``, dex).

    Fields:
        logoh: 12+log(O/H) from each diagnostic (NaN where invalid).
        err: its 1σ, sqrt(σ_d² + s_d²) / |dP_d/dZ| at the root (capped at the range width).
        valid: a root exists inside the diagnostic's range and the diagnostic is measured.
        reference: the Method I median from the other diagnostics used to pick the
            branch (NaN when there were none; then ``spec.default_branch`` decides).
    """

    logoh: jax.Array
    err: jax.Array
    valid: jax.Array
    reference: jax.Array


def method2_inversion(flux, err, spec: MetallicitySpec, av_fallback=0.0) -> Method2Result:
    """Method II for one bin: invert each diagnostic alone (traceable).

    The roots of P_d(Z) = y_d inside the diagnostic's range are found on the grid (sign
    changes, linear interpolation); for a double-valued calibration the root nearest to
    the Method I median of the *other* available diagnostics decides the branch (below or
    above the curve's turnover) and the root on that branch nearest to it is taken; with
    no other diagnostic, ``spec.default_branch`` decides. No root on the branch inside the
    range (e.g. a ratio beyond the curve's extremum) → invalid (NaN), never the other
    branch.

    Args:
        flux, err: ``[L]`` line fluxes and errors (ordered as ``spec.lines``).
        spec: :class:`MetallicitySpec`.
        av_fallback: A_V (mag) where no Balmer decrement is measured.
    """
    dtype = jnp.result_type(flux, float)
    flux = jnp.asarray(flux, dtype)
    err = jnp.asarray(err, dtype)
    D = spec.n_diag
    if D == 0:
        e = jnp.zeros((0,), dtype)
        return Method2Result(e, e, jnp.zeros((0,), bool), e)
    zg, dz = z_grid(spec, dtype)
    y, sy, avail, _, _ = observed_diagnostics(flux, err, spec, av_fallback)
    pred = predictions(spec, zg)
    scat = jnp.asarray(spec.scatter, dtype)
    lo_d, hi_d = _ranges_arrays(spec, dtype)
    chi2_d = _chi2_terms(y, sy, pred, scat)

    def ref_for(d):
        others = avail & (jnp.arange(D) != d)
        h_lo = jnp.min(jnp.where(others, lo_d, jnp.inf))
        h_hi = jnp.max(jnp.where(others, hi_d, -jnp.inf))
        sup = (zg >= h_lo) & (zg <= h_hi)
        p, _, ok = _posterior(chi2_d, others, sup, zg, dz)
        med = _quantiles(p, zg, dz, (0.5,))[0]
        return jnp.where(jnp.any(others) & ok, med, jnp.nan)

    refs = jax.vmap(ref_for)(jnp.arange(D))
    f = pred - y[:, None]  # [D, n]
    a, b = f[:, :-1], f[:, 1:]
    cross = (a * b <= 0) & (a != b)
    t = jnp.where(cross, a / jnp.where(a != b, a - b, 1.0), 0.0)
    root = zg[:-1][None] + t * dz
    inrange = (root >= lo_d[:, None]) & (root <= hi_d[:, None])
    cand = cross & inrange
    slope = (b - a) / dz
    dist = jnp.abs(root - refs[:, None])
    if spec.default_branch == "lower":
        fallback_key = root
    else:
        fallback_key = -root
    # a double-valued curve: keep only roots on the branch the reference lies on
    turn = jnp.asarray(np.asarray(spec.turnovers, float), dtype)
    has_turn = jnp.isfinite(turn)[:, None]
    turn = jnp.where(jnp.isfinite(turn), turn, 0.0)
    upper = jnp.where(jnp.isfinite(refs), refs > turn, spec.default_branch == "upper")[:, None]
    on_branch = ~has_turn | jnp.where(upper, root >= turn[:, None], root <= turn[:, None])
    cand = cand & on_branch
    key = jnp.where(jnp.isfinite(refs)[:, None], dist, fallback_key)
    key = jnp.where(cand, key, jnp.inf)
    k = jnp.argmin(key, axis=1)
    idx = jnp.arange(D)
    has = jnp.any(cand, axis=1) & avail
    z = jnp.where(has, root[idx, k], jnp.nan)
    width = hi_d - lo_d
    s = jnp.sqrt(sy**2 + scat**2) / jnp.maximum(jnp.abs(slope[idx, k]), 1e-12)
    s = jnp.where(has, jnp.minimum(s, width), jnp.nan)
    return Method2Result(logoh=z, err=s, valid=has, reference=refs)


def paper_b_loglike(logoh, av, f_hb, flux, err, spec: MetallicitySpec, normalised: bool = False):
    """Paper B's joint log-likelihood of (12+log(O/H), A_V, f_Hβ) for one bin.

    Paper B (Li et al.) writes L ∝ exp(−½ Σ_i (f_i − R_i(Z) f_Hβ)² / (σ_i² + f_Hβ² σ_Ri²))
    with f_i the de-reddened fluxes, R_i the expected ratio to Hβ (case B for Balmer
    lines, the calibration otherwise, :meth:`Calibration.line_log_ratios`) and σ_Ri its
    intrinsic scatter (R_i ln10 s_i, s_i from ``spec.line_scatter``). It is evaluated
    in observed-flux space — model_i = f_Hβ R_i 10^{−0.4 A_V k_i}, variance
    σ_obs,i² + (model_i ln10 s_i)² — which is exactly Paper B's exponent (de-reddening
    numerator and denominator by the same factor cancels).

    ``normalised=False`` is Paper B's expression as published (the exponent only).
    ``normalised=True`` adds −½ Σ log(variance), the normalisation of a Gaussian whose
    variance depends on the parameters: the proper likelihood of "flux = model × 10^ε +
    noise" in the Gaussian approximation, but its maximum is pulled towards smaller
    model fluxes when the intrinsic scatter dominates the variance.

    Lines below S/N ``snr_min`` or unpredictable by the calibration are left out.

    Args:
        logoh: 12+log(O/H).
        av: A_V, mag.
        f_hb: dust-free Hβ flux (same unit as ``flux``).
        flux, err: observed ``[L]`` line fluxes and errors.
        spec: :class:`MetallicitySpec`.
        normalised: include the variance normalisation (see above).

    Returns:
        Scalar log-likelihood (up to a constant).
    """
    dtype = jnp.result_type(flux, float)
    cal = _cal.get(spec.calibration)
    ok_static = np.asarray(spec.line_scatter, float) >= 0
    names = tuple(n for n, ok in zip(spec.lines, ok_static, strict=True) if ok)
    idx = np.flatnonzero(ok_static)
    if len(names) == 0:
        return jnp.zeros((), dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        logr = cal.line_log_ratios(names, jnp.asarray(logoh, dtype))
    k = jnp.asarray(np.asarray(_dust.line_alav(spec.lines, spec.dust_law))[idx], dtype)
    s = jnp.asarray(np.asarray(spec.line_scatter)[idx], dtype)
    F = flux[idx]
    E = err[idx]
    use = line_used(F, E, spec.snr_min)
    model = f_hb * 10.0 ** (logr - 0.4 * av * k)
    var = jnp.where(use, E, 1.0) ** 2 + (model * LN10 * s) ** 2
    r = jnp.where(use, F - model, 0.0)
    term = r**2 / var + (jnp.log(var) if normalised else 0.0)
    return -0.5 * jnp.sum(jnp.where(use, term, 0.0))
