"""Matplotlib figures with one consistent style (nothing in jaxgrad imports this module).

All functions take NumPy-convertible arrays, return the matplotlib Figure, and never
call ``plt.show``; use ``fig.savefig(path)``.
"""

from __future__ import annotations

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


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


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


def plot_line_maps(maps, line_names, pixel_scale=None, title=None, noisy=None):
    """One panel per line (and a second row with noisy maps if given)."""
    plt = _plt()
    maps = np.asarray(maps)
    nrow = 1 if noisy is None else 2
    n = len(line_names)
    fig, axes = plt.subplots(nrow, n, figsize=(2.3 * n, 2.3 * nrow + 0.4), squeeze=False)
    ny, nx = maps.shape[-2:]
    ext = None
    if pixel_scale:
        ext = [-nx / 2 * pixel_scale, nx / 2 * pixel_scale, -ny / 2 * pixel_scale, ny / 2 * pixel_scale]
    for i, name in enumerate(line_names):
        rows = [maps[i]] if noisy is None else [maps[i], np.asarray(noisy)[i]]
        for j, img in enumerate(rows):
            ax = axes[j, i]
            ax.imshow(img, extent=ext, vmin=0, vmax=np.nanmax(maps[i]))
            ax.set_title(_lines.get(name).label + (" (noisy)" if j else ""))
            ax.set_xticks([]) if ext is None else ax.set_xlabel("Δx [″]")
            if i == 0 and ext is not None:
                ax.set_ylabel("Δy [″]")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
