"""Figures for inference results (matplotlib, Agg canvas, imported lazily).

Figures are built with ``matplotlib.figure.Figure`` and an Agg canvas — no pyplot, no
global backend switch — so they work headless and inside notebooks alike. Every
function returns the Figure; pass ``path`` to also save it.

* :func:`plot_profile` — posterior log Z(r) (draws and 68/95% bands) over binned data;
* :func:`plot_corner` — corner plot of the main parameters (ArviZ's ``plot_pair``);
* :func:`plot_population` — per-galaxy ∇Z posteriors, no-pooling MAPs and the fitted
  population relation;
* :func:`plot_sbc_ranks` — SBC rank histograms with the uniform expectation band.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["binned_metallicity", "plot_corner", "plot_population", "plot_profile", "plot_sbc_ranks"]


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def _figure_ax(ax, w: float, h: float):
    """(figure, axes): the given Axes and its figure, or a new one-panel figure."""
    if ax is not None:
        return ax.figure, ax
    fig = _figure(w, h)
    return fig, fig.add_subplot(111)


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def binned_metallicity(data, n_annuli: int = 8):
    """Observer-style annulus metallicities of a :class:`GalaxyData` (maps).

    Runs :func:`jaxgrad.pipeline.batched_gradient_from_maps` (Method I per annulus,
    annuli one PSF HWHM wide) with the galaxy's known geometry.

    Returns:
        (radius kpc, 12+log(O/H), 1σ, observer WLS gradient dex/kpc, its 1σ) for the
        valid annuli.
    """
    from jaxgrad import calibrations as _cal
    from jaxgrad.pipeline import batched_gradient_from_maps

    if data.kind != "maps":
        raise ValueError("binned_metallicity needs line maps (kind='maps')")
    p = data.base_params()
    spec = data.spec
    geometry = {"x0": float(p.x0), "y0": float(p.y0), "q": max(math.cos(math.radians(float(p.inc))), 1e-2),
                "pa": float(p.pa)}
    maps = np.where(data.mask, data.maps, np.nan)[None]
    errs = np.where(data.mask, data.errs, np.nan)[None]
    diags = _cal.get(spec.calibration).diagnostics_for_lines(spec.lines)
    res = batched_gradient_from_maps(maps, np.where(np.isfinite(errs), errs, 1.0), spec.lines,
                                     spec.pixel_scale, float(p.z), float(p.psf_fwhm),
                                     calibration=spec.calibration, diagnostics=diags,
                                     n_annuli=n_annuli, geometry=geometry, warn=False)
    ok = np.asarray(res.bin_valid[0], bool)
    return (res.radius[0][ok], res.logoh[0][ok], res.logoh_err[0][ok], float(res.grad[0]),
            float(res.grad_err[0]))


def plot_profile(fit, binned=None, n_draws: int = 100, r_max: float | None = None, truth=None,
                 seed: int = 0, path=None, ax=None):
    """Posterior log Z(r) = Z0 + ∇Z r over binned data.

    Args:
        fit: :class:`~jaxgrad.inference.FitResult`.
        binned: (radius kpc, logZ, err) arrays of binned measurements, or None to
            compute them with :func:`binned_metallicity` (needs the pipeline).
        n_draws: posterior draws drawn as thin lines.
        r_max: outer radius of the curve, kpc (default 2.5 R_e or the last bin).
        truth: optional (Z0, ∇Z) drawn as a dashed line.
        seed: which draws.
        path: save the figure there.
        ax: a matplotlib Axes to draw into (default: a new figure).
    """
    s = fit.samples
    z0 = np.ravel(s["logoh0"]) if "logoh0" in s else np.full(1, float(fit.model.base.logoh0))
    g = np.ravel(s["grad_z"]) if "grad_z" in s else np.full(1, float(fit.model.base.grad_z))
    n = max(len(z0), len(g))
    z0, g = np.broadcast_to(z0, (n,)), np.broadcast_to(g, (n,))
    if binned is None:
        try:
            binned = binned_metallicity(fit.model.data)[:3]
        except (ImportError, ValueError):
            binned = None
    re = np.median(s["r_e"]) if "r_e" in s else float(fit.model.base.r_e)
    if r_max is None:
        r_max = 2.5 * re
        if binned is not None and len(binned[0]):
            r_max = max(r_max, 1.1 * float(np.max(binned[0])))
    r = np.linspace(0, r_max, 100)
    prof = z0[:, None] + g[:, None] * r[None]
    fig, ax = _figure_ax(ax, 5.5, 4.0)
    for q, a in ((2.5, 0.15), (16, 0.3)):
        lo, hi = np.percentile(prof, [q, 100 - q], axis=0)
        ax.fill_between(r, lo, hi, color="C0", alpha=a, lw=0)
    idx = np.random.default_rng(seed).choice(n, size=min(n_draws, n), replace=False)
    for i in idx:
        ax.plot(r, prof[i], color="C0", lw=0.3, alpha=0.3)
    ax.plot(r, np.median(prof, axis=0), color="C0", lw=2, label="forward model (posterior)")
    if binned is not None:
        rb, zb, eb = (np.asarray(v, float) for v in binned[:3])
        ax.errorbar(rb, zb, eb, fmt="o", color="k", ms=4, label="binned data (annuli)")
    if truth is not None:
        ax.plot(r, truth[0] + truth[1] * r, "--", color="C3", label="truth")
    ax.set_xlabel("r [kpc]")
    ax.set_ylabel("12 + log(O/H)")
    ax.legend(fontsize=8)
    ax.set_title(f"{fit.config['name']}: ∇Z = {np.median(g):.3f} ± {np.std(g):.3f} dex/kpc", fontsize=9)
    return _save(fig, path)


def plot_corner(fit_or_samples, names=None, truths: dict | None = None, bins: int = 30, path=None):
    """Corner plot of the main parameters: ArviZ's ``plot_pair`` (2-D point clouds below
    the diagonal, marginal KDEs on it, reference values marked).

    Args:
        fit_or_samples: a FitResult (its sampled parameters) or a dict of draws
            ``[chains, draws]``.
        names: parameters to show (default: all scalar sampled ones, at most 8).
        truths: optional name -> value reference lines.
        bins: unused (kept for callers; the marginals are KDEs).
        path: save the figure there.
    """
    import arviz as az

    samples = fit_or_samples.samples if hasattr(fit_or_samples, "samples") else fit_or_samples
    if names is None:
        names = [k for k, v in samples.items() if np.ndim(v) <= 2][:8]
    draws = {n: np.atleast_2d(np.asarray(samples[n], float)) for n in names}
    k = len(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no reference value for ..." per parameter
        axes = az.plot_pair(draws, var_names=list(names), kind="scatter", marginals=True,
                            marginal_kwargs={"kind": "kde"},
                            scatter_kwargs={"alpha": 0.15, "s": 2},
                            reference_values={n: float(v) for n, v in (truths or {}).items() if n in names} or None,
                            figsize=(1.9 * k + 0.5, 1.9 * k + 0.5), textsize=7)
    fig = np.ravel(axes)[0].figure
    return _save(fig, path)


def plot_population(pop, covariate: str | None = None, truths: dict | None = None, path=None, ax=None):
    """Per-galaxy ∇Z posteriors (median, 68%) with their no-pooling MAPs (± Laplace σ),
    against a covariate (or galaxy index), and the population α + β x ± τ.

    Args:
        pop: :class:`~jaxgrad.inference.population.PopulationResult`.
        covariate: name of a covariate used in the fit (x axis); None: the first fitted
            covariate, or the galaxy index for a fit without covariates.
        truths: optional galaxy name -> true ∇Z.
        path: save the figure there.
        ax: a matplotlib Axes to draw into (default: a new figure).
    """
    names = pop.config["names"]
    n = len(names)
    xs = np.arange(n, dtype=float)
    xlabel = "galaxy"
    if covariate is None and pop.covariates:
        covariate = pop.covariates[0]  # the regression against its covariate, not an intercept at 0
    if covariate is not None:
        if covariate not in pop.covariates:
            raise ValueError(f"covariate {covariate!r} was not fitted; fitted: {pop.covariates}")
        xs = np.asarray(pop.config["covariate_values"][covariate], float)
        xlabel = covariate
    g = pop.galaxies
    med = np.array([g[k]["grad_z"]["median"] for k in names])
    lo = np.array([g[k]["grad_z"]["q16"] for k in names])
    hi = np.array([g[k]["grad_z"]["q84"] for k in names])
    mp = np.array([g[k]["grad_nopool"] for k in names])
    ms = np.array([g[k]["grad_nopool_sd"] for k in names])
    fig, ax = _figure_ax(ax, 6.0, 4.0)
    off = 0.15 * (np.ptp(xs) / max(n, 1) if covariate else 1.0)
    ax.errorbar(xs - off, mp, ms, fmt="o", mfc="none", color="0.5", ms=4, label="no pooling (MAP ± σ)")
    ax.errorbar(xs + off, med, [med - lo, hi - med], fmt="o", color="C0", ms=4, label="hierarchical (68%)")
    if truths:
        ax.plot(xs, [truths.get(k, np.nan) for k in names], "x", color="C3", label="truth")
    s = pop.samples
    a = np.ravel(s["alpha_grad"])
    tau = np.ravel(s["tau_grad"])
    grid = np.linspace(np.min(xs) - 0.5, np.max(xs) + 0.5, 50)
    if covariate is not None:
        j = pop.covariates.index(covariate)
        b = np.asarray(s["beta_grad"]).reshape(-1, len(pop.covariates))
        means = np.array([np.mean(pop.config["covariate_values"][c]) for c in pop.covariates])
        others = b @ np.where(np.arange(len(means)) == j, 0.0, means)  # other covariates at their means
        line = a[:, None] + b[:, j, None] * grid[None] + others[:, None]
    else:
        line = np.repeat(a[:, None], len(grid), axis=1)
    m = np.median(line, axis=0)
    ax.plot(grid, m, color="C1", label="population α + β x" if covariate is not None else "population mean")
    t = np.median(tau)
    ax.fill_between(grid, m - t, m + t, color="C1", alpha=0.2, lw=0, label="± τ")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("∇Z [dex/kpc]")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_sbc_ranks(sbc, n_bins: int = 20, path=None):
    """SBC rank histograms per parameter with the 99% band of a uniform histogram."""
    from scipy import stats

    names = list(sbc.names)
    k = len(names)
    fig = _figure(3.0 * k, 2.6)
    axes = fig.subplots(1, k, squeeze=False)[0]
    L = sbc.n_draws
    for ax, nme in zip(axes, names, strict=True):
        r = np.asarray(sbc.ranks[nme])
        s = len(r)
        edges = np.linspace(-0.5, L + 0.5, n_bins + 1)
        ax.hist(r, bins=edges, color="C0", alpha=0.8)
        p = 1.0 / n_bins
        lo, hi = stats.binom.ppf([0.005, 0.995], s, p)
        ax.axhspan(lo, hi, color="0.7", alpha=0.5, lw=0)
        ax.axhline(s * p, color="k", lw=0.8)
        ax.set_title(f"{nme}: p = {sbc.p_uniform[nme]:.2f}, c68 = {sbc.coverage68[nme]:.2f}", fontsize=8)
        ax.set_xlabel("rank")
    axes[0].set_ylabel("count")
    return _save(fig, path)
