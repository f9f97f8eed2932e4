"""Matplotlib figures with one consistent style (nothing in jaxgrad imports this module).

All functions take NumPy-convertible arrays, return the matplotlib Figure, and never
call ``plt.show``; use ``fig.savefig(path)``.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxgrad import lines as _lines

STYLE = {
    "figure.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "image.origin": "lower",
    "image.cmap": "magma",
}


FLUX_LABEL = "flux [10⁻¹⁸ erg s⁻¹ cm⁻² pixel⁻¹]"  # jaxgrad's internal map unit


def _plt():
    """pyplot, as the user has it: no backend is switched and no global rcParams are changed
    (jaxgrad's style is applied per figure by :func:`_styled`), so figures show in Jupyter."""
    import matplotlib.pyplot as plt

    return plt


def _styled(fn):
    """Run a plotting function inside ``rc_context(STYLE)``: jaxgrad's look for its own
    figures, the user's settings untouched everywhere else."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _plt().rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def radial_profile(image, radius, edges, weights=None):
    """Sum of ``image`` (optionally times ``weights``) in radial bins of ``radius``.

    Args:
        image: ``[..., ny, nx]`` values.
        radius: ``[ny, nx]`` radius of each pixel.
        edges: bin edges (same unit as ``radius``), length n_bins + 1.

    Returns:
        ``[..., n_bins]`` sums.
    """
    image = np.asarray(image)
    r = np.asarray(radius)
    idx = np.digitize(r, edges) - 1
    nb = len(edges) - 1
    out = np.zeros(image.shape[:-2] + (nb,))
    for b in range(nb):
        sel = idx == b
        out[..., b] = image[..., sel].sum(axis=-1)
    return out


@_styled
def plot_line_maps(maps, line_names, pixel_scale=None, title=None, noisy=None):
    """One panel per line (and a second row with noisy maps if given)."""
    plt = _plt()
    maps = np.asarray(maps)
    nrow = 1 if noisy is None else 2
    n = len(line_names)
    fig, axes = plt.subplots(nrow, n, figsize=(2.8 * n, 2.3 * nrow + 0.4), squeeze=False)
    ny, nx = maps.shape[-2:]
    ext = None
    if pixel_scale:
        ext = [-nx / 2 * pixel_scale, nx / 2 * pixel_scale, -ny / 2 * pixel_scale, ny / 2 * pixel_scale]
    for i, name in enumerate(line_names):
        rows = [maps[i]] if noisy is None else [maps[i], np.asarray(noisy)[i]]
        for j, img in enumerate(rows):
            ax = axes[j, i]
            im = ax.imshow(img, extent=ext, vmin=0, vmax=np.nanmax(maps[i]))
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            cb.set_label(FLUX_LABEL, fontsize=6)
            cb.ax.tick_params(labelsize=6)
            ax.set_title(_lines.get(name).label + (" (noisy)" if j else ""))
            ax.set_xticks([]) if ext is None else ax.set_xlabel("Δx [″]")
            if i == 0 and ext is not None:
                ax.set_ylabel("Δy [″]")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def plot_ratio_profiles(radius_kpc, observed, intrinsic, labels, title=None):
    """Observed (PSF-smeared) vs intrinsic log line ratios against radius.

    Args:
        radius_kpc: ``[n_bins]`` bin radii.
        observed, intrinsic: ``[n_ratio, n_bins]`` log10 ratios.
        labels: names of the ratios.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for k, lab in enumerate(labels):
        (ln,) = ax.plot(radius_kpc, np.asarray(observed)[k], "o-", label=f"{lab} observed")
        ax.plot(radius_kpc, np.asarray(intrinsic)[k], "--", color=ln.get_color(), label=f"{lab} intrinsic")
    ax.set_xlabel("de-projected radius [kpc]")
    ax.set_ylabel("log ratio")
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@_styled
def plot_metallicity_profile(radius_kpc, logoh, logoh_err=None, fits=None, title=None):
    """12+log(O/H) per bin with error bars and straight-line fits.

    Args:
        radius_kpc, logoh, logoh_err: per-bin values.
        fits: dict label -> (Z0, grad) lines to overplot.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.errorbar(radius_kpc, logoh, yerr=logoh_err, fmt="o", color="k", label="bins")
    rr = np.linspace(0, max(np.max(radius_kpc) * 1.1, 1e-3), 50)
    for lab, (z0, g) in (fits or {}).items():
        ax.plot(rr, z0 + g * rr, label=f"{lab}: ∇Z = {g:+.3f} dex/kpc")
    ax.set_xlabel("de-projected radius [kpc]")
    ax.set_ylabel("12 + log(O/H)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@_styled
def plot_diagnostic_profiles(radius_kpc, logoh_by_diag: dict, err_by_diag: dict | None = None,
                             fits: dict | None = None, title=None):
    """Paper A Fig. 2 style: 12+log(O/H) per annulus from each diagnostic alone, with fits.

    Args:
        radius_kpc: ``[n_bins]`` bin radii.
        logoh_by_diag: diagnostic -> ``[n_bins]`` 12+log(O/H) (NaN where unusable).
        err_by_diag: diagnostic -> ``[n_bins]`` errors.
        fits: label -> (Z0, grad) lines (e.g. "Method I", "Method II").
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.5))
    r = np.asarray(radius_kpc)
    for k, (d, z) in enumerate(logoh_by_diag.items()):
        z = np.asarray(z)
        e = None if err_by_diag is None else np.asarray(err_by_diag.get(d))
        ok = np.isfinite(z)
        ax.errorbar(r[ok] + 0.03 * k, z[ok], yerr=None if e is None else e[ok], fmt="o", ms=4, label=d)
    rr = np.linspace(0, max(float(np.nanmax(r)) * 1.1, 1e-3), 50)
    for lab, (z0, g) in (fits or {}).items():
        ax.plot(rr, z0 + g * rr, lw=1.5, label=f"{lab}: {g:+.3f} dex/kpc")
    ax.set_xlabel("de-projected radius [kpc]")
    ax.set_ylabel("12 + log(O/H)")
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@_styled
def plot_population(x, y, yerr=None, xlabel="", ylabel="∇Z [dex/kpc]", classes=None, tau=None, title=None):
    """Population panel: y against a galaxy property, optional classes and Kendall τ annotation.

    Args:
        x, y: per-galaxy values.
        yerr: symmetric ``[n]`` or asymmetric ``[2, n]`` errors.
        classes: optional per-galaxy labels (one colour each).
        tau: output of :func:`jaxgrad.stats.kendall_tau` to annotate.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    x, y = np.asarray(x, float), np.asarray(y, float)
    labels = np.asarray(classes) if classes is not None else np.array(["all"] * len(x))
    for lab in dict.fromkeys(labels):
        sel = labels == lab
        err = None
        if yerr is not None:
            ye = np.asarray(yerr, float)
            err = ye[..., sel]
        ax.errorbar(x[sel], y[sel], yerr=err, fmt="o", ms=4, label=str(lab))
    ax.axhline(0, color="0.5", lw=0.8, ls=":")
    if tau is not None:
        ax.text(0.03, 0.95, f"Kendall τ = {tau['tau']:+.2f} (p = {tau['p']:.2f})", transform=ax.transAxes,
                va="top", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if classes is not None:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@_styled
def plot_demo(meas, i, truth, two_re_over_beam, pipeline, corrected, fit, draws, suite):
    """The demo's figure: the noisy [OIII] map with the annuli, the annulus metallicities with
    the injected, pipeline, corrected and forward-model lines, and the ∇Z posterior.

    Args:
        meas: :func:`jaxgrad.mocks.measure.measure_batch` output with ``annuli=True``;
            ``i`` the mock in it.
        truth: the mock's :class:`~jaxgrad.forward.GalaxyParams` (floats).
        two_re_over_beam: 2R_e/beam.
        pipeline: (∇Z, 1σ) of the annulus pipeline; corrected: (∇Z, factor).
        fit: :class:`~jaxgrad.inference.FitResult`; draws: its ∇Z draws.
        suite: the :class:`~jaxgrad.mocks.SuiteSpec` that made the mock.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), gridspec_kw={"width_ratios": [1.5, 1]})
    ax = axes[0]
    r = np.asarray(meas["annulus_radius_kpc"][i])
    y = np.asarray(meas["annulus_logoh"][i])
    e = np.asarray(meas["annulus_err"][i])
    use = np.asarray(meas["annulus_used"][i])
    ax.errorbar(r[use], y[use], yerr=e[use], fmt="o", color="k", ms=4, label="annuli (Method I, mode)")
    rr = np.linspace(0, max(float(np.max(r[use])) * 1.1, 1.0), 60)
    g_pipe, e_pipe = pipeline
    g_corr, fac = corrected
    z0_pipe = float(np.average(y[use] - g_pipe * r[use], weights=1 / e[use] ** 2))
    ax.plot(rr, truth.logoh0 + truth.grad_z * rr, "k--", lw=1.2, label=f"injected: ∇Z = {truth.grad_z:+.3f}")
    ax.plot(rr, z0_pipe + g_pipe * rr, color="tab:orange", lw=1.5,
            label=f"annulus pipeline: {g_pipe:+.3f} ± {e_pipe:.3f}")
    ax.plot(rr, z0_pipe + g_corr * rr, color="tab:orange", ls=":", lw=1.5,
            label=f"pipeline × correction curve ({fac:.2f}): {g_corr:+.3f}")
    z0s = np.asarray(fit.samples["logoh0"]).ravel()
    gs = np.asarray(fit.samples["grad_z"]).ravel()
    rng = np.random.default_rng(0)
    for k in rng.choice(len(gs), size=min(40, len(gs)), replace=False):
        ax.plot(rr, z0s[k] + gs[k] * rr, color="tab:blue", alpha=0.08, lw=1)
    ax.plot([], [], color="tab:blue", label=f"forward model (NUTS): {np.median(gs):+.3f}")
    ax.set_xlabel("de-projected radius [kpc]")
    ax.set_ylabel("12 + log(O/H)")
    ax.set_title(f"2R_e/beam = {two_re_over_beam:.1f}: the beam flattens the annuli", fontsize=8)
    ax.legend(fontsize=6.5, loc="best")
    ax = axes[1]
    ax.hist(draws, bins=40, color="tab:blue", alpha=0.6, density=True, label="forward-model posterior")
    ax.axvline(truth.grad_z, color="k", ls="--", label="injected")
    ax.axvline(g_pipe, color="tab:orange", label="annulus pipeline")
    ax.axvline(g_corr, color="tab:orange", ls=":", label="corrected by the curve")
    ax.set_xlabel("∇Z [dex/kpc]")
    ax.set_yticks([])
    ax.legend(fontsize=6.5)
    lines = ", ".join(_lines.get(n).label for n in suite.lines)
    fig.suptitle(f"jaxgrad demo: z = {truth.z:g} mock ({lines}; {suite.calibration} "
                 f"{' + '.join(suite.diagnostics())})", fontsize=9)
    fig.tight_layout()
    return fig
