"""Voronoi binning to a target S/N (Cappellari & Copin 2003), in NumPy.

A small, dependency-free implementation of the two stages of Cappellari & Copin (2003,
MNRAS 342, 345):

1. *bin accretion*: start at the highest-S/N pixel; add the unbinned pixel nearest to the
   bin's centroid among those adjacent to the bin, as long as the bin stays round
   (roundness = r_max / sqrt(n/π) − 1 < 0.3), its S/N keeps increasing and the target is
   not yet reached; start the next bin at the unbinned pixel nearest to the centroid of
   the binned ones. Bins that end below ``frac_good × target`` are dissolved and their
   pixels given to the nearest successful bin.
2. *regularisation*: a few weighted-Voronoi tessellation (WVT, Diehl & Statler 2006)
   iterations: every pixel goes to the generator minimising distance / δ_j, with the
   generators at the bins' centroids and δ_j = sqrt(n_j/π · target / (S/N)_j), which
   grows bins below the target and shrinks those above it.

S/N of a bin = Σ signal / sqrt(Σ noise²) (independent pixels). This runs once per galaxy
at the edge (it is not traced); the PyPI package ``vorbin`` implements the same algorithm
and can be used instead (pass its labels to :func:`jaxgrad.pipeline.measure_maps` via
``voronoi_labels``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["voronoi_bins", "bin_snr"]


def bin_snr(labels, signal, noise) -> np.ndarray:
    """S/N of each bin (labels ≥ 0), Σ S / sqrt(Σ N²)."""
    lab = np.asarray(labels).ravel()
    s = np.asarray(signal, float).ravel()
    n = np.asarray(noise, float).ravel()
    nb = int(lab.max()) + 1 if np.any(lab >= 0) else 0
    ok = lab >= 0
    S = np.bincount(lab[ok], s[ok], minlength=nb)
    V = np.bincount(lab[ok], n[ok] ** 2, minlength=nb)
    return S / np.sqrt(np.where(V > 0, V, np.inf))


def voronoi_bins(signal, noise, target_snr: float, *, mask=None, min_pixel_snr: float = 1.0,
                 roundness: float = 0.3, frac_good: float = 0.8, n_iter: int = 10):
    """Voronoi bins reaching ``target_snr`` (Cappellari & Copin 2003).

    Args:
        signal: ``[ny, nx]`` signal per pixel (e.g. the brightest line's flux).
        noise: ``[ny, nx]`` 1σ per pixel (> 0 where used).
        target_snr: target S/N per bin (Paper B: 5).
        mask: optional ``[ny, nx]`` bool of pixels that may be binned.
        min_pixel_snr: pixels below this S/N are not binned (Cappellari's advice: drop
            pixels with essentially no signal).
        roundness: maximum roundness during accretion.
        frac_good: a bin is kept if it reaches ``frac_good × target_snr``.
        n_iter: WVT regularisation iterations (0: accretion only).

    Returns:
        labels ``[ny, nx]`` int: bin index ≥ 0, or −1 for pixels not binned.
    """
    if not (target_snr > 0):
        raise ValueError(f"target_snr must be > 0, got {target_snr!r}")
    sig = np.asarray(signal, float)
    noi = np.asarray(noise, float)
    if sig.shape != noi.shape or sig.ndim != 2:
        raise ValueError(f"signal and noise must be 2-D of one shape, got {sig.shape} and {noi.shape}")
    ny, nx = sig.shape
    ok = np.isfinite(sig) & np.isfinite(noi) & (noi > 0)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    snr_pix = np.where(ok, sig / np.where(ok, noi, 1.0), -np.inf)
    ok &= snr_pix >= min_pixel_snr
    yy, xx = np.mgrid[0:ny, 0:nx]
    idx = np.flatnonzero(ok.ravel())
    labels = np.full(ny * nx, -1, int)
    if idx.size == 0:
        return labels.reshape(ny, nx)
    x = xx.ravel()[idx].astype(float)
    y = yy.ravel()[idx].astype(float)
    s = sig.ravel()[idx]
    v = noi.ravel()[idx] ** 2
    n = idx.size
    lab = np.full(n, -1, int)
    free = np.ones(n, bool)
    good_bins = []
    current = int(np.argmax(s / np.sqrt(v)))
    b = 0
    while True:
        members = [current]
        free[current] = False
        S, V = s[current], v[current]
        while S / np.sqrt(V) < target_snr and free.any():
            mx, my = x[members].mean(), y[members].mean()
            cand = np.flatnonzero(free)
            # adjacency: within 1.5 px of some member
            d_mem = np.min((x[cand, None] - x[None, members]) ** 2
                           + (y[cand, None] - y[None, members]) ** 2, axis=1)
            cand = cand[d_mem <= 2.25]
            if cand.size == 0:
                break
            j = cand[np.argmin((x[cand] - mx) ** 2 + (y[cand] - my) ** 2)]
            trial = members + [int(j)]
            tx, ty = x[trial], y[trial]
            rmax = np.sqrt(np.max((tx - tx.mean()) ** 2 + (ty - ty.mean()) ** 2))
            rnd = rmax / np.sqrt(len(trial) / np.pi) - 1.0
            S2, V2 = S + s[j], V + v[j]
            if rnd > roundness or S2 / np.sqrt(V2) < S / np.sqrt(V):
                break
            members, S, V = trial, S2, V2
            free[j] = False
        lab[members] = b
        if S / np.sqrt(V) >= frac_good * target_snr:
            good_bins.append(b)
        b += 1
        if not free.any():
            break
        binned = ~free & np.isin(lab, good_bins) if good_bins else ~free
        cx, cy = x[binned].mean(), y[binned].mean()
        cand = np.flatnonzero(free)
        current = int(cand[np.argmin((x[cand] - cx) ** 2 + (y[cand] - cy) ** 2)])
    good = np.isin(lab, good_bins)
    if not good.any():
        # nothing reaches the target: one bin with everything
        lab[:] = 0
    else:
        gids = np.array(good_bins)
        gx = np.array([x[lab == g].mean() for g in gids])
        gy = np.array([y[lab == g].mean() for g in gids])
        bad = ~good
        if bad.any():
            d = (x[bad, None] - gx[None]) ** 2 + (y[bad, None] - gy[None]) ** 2
            lab[bad] = gids[np.argmin(d, axis=1)]
        # relabel 0..nb-1
        _, lab = np.unique(lab, return_inverse=True)
        for _ in range(n_iter):
            nb = lab.max() + 1
            cnt = np.maximum(np.bincount(lab, minlength=nb), 1)
            gx = np.bincount(lab, x, minlength=nb) / cnt
            gy = np.bincount(lab, y, minlength=nb) / cnt
            S = np.bincount(lab, s, minlength=nb)
            V = np.bincount(lab, v, minlength=nb)
            sn = np.maximum(S / np.sqrt(np.where(V > 0, V, np.inf)), 1e-3)
            scale = np.sqrt(cnt / np.pi * target_snr / sn)
            d = np.sqrt((x[:, None] - gx[None]) ** 2 + (y[:, None] - gy[None]) ** 2) / scale[None]
            new = np.argmin(d, axis=1)
            _, new = np.unique(new, return_inverse=True)
            if np.array_equal(new, lab):
                break
            lab = new
    labels[idx] = lab
    return labels.reshape(ny, nx)
