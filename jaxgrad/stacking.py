"""Median stacking of line-flux maps and the metallicity gradient of the stack (Paper B).

Paper B (Li et al.; docs/science.md §8) median-stacks the line maps of many galaxies, each
centred on its emission centroid and weighted by its [OIII] flux, takes bootstrap errors
over galaxies, sums the stack in five circular annuli out to 0.42″, and turns the
annulus line ratios into 12+log(O/H) and a gradient. Its mock tests show that the stack
recovers the population's median gradient. The three steps here:

1. :func:`stack_maps` — per galaxy: the centroid of the ``center_line`` map (pixels at
   S/N ≥ ``snr_min``, flux-weighted first moment); a sub-pixel shift that puts it on the
   field centre ((nx−1)/2, (ny−1)/2) in 0-based pixels; division of every line by the
   galaxy's total flux in the ``weights`` line (so every galaxy enters the [OIII] stack
   with the same weight and keeps its own line ratios); then the per-pixel median over
   galaxies, per line. Errors: the standard deviation of ``n_boot`` stacks of galaxies
   resampled with replacement.
2. :func:`stack_profile` — sums of the stacked maps in circular annuli (exact pixel
   fractions from sub-sampling), with bootstrap errors from the same resampled stacks.
3. :func:`stack_gradient` — 12+log(O/H) per annulus from the annulus fluxes, and a
   weighted straight line through them, with the gradient's error from the bootstrap.

**The shift** is bilinear (separable linear interpolation): every input pixel splits its
flux between the two nearest output pixels along each axis with weights (1−f, f), which
sum to 1, so the shift conserves flux exactly (except what leaves the field) and never
rings. It smooths by a kernel of variance f(1−f) ≤ 1/4 pixel² per axis — much less than
a PSF of ≥ 2 pixels FWHM. Pixels whose interpolation touches a masked or off-field pixel
are masked (NaN) in that galaxy's shifted map and left out of the median there.

**Angular vs physical radius.** The stack is built in arcsec on the common pixel grid,
as Paper B's annuli (0.42″); radii become kpc with one ``kpc_per_arcsec`` — use that of
the sample's median redshift (:func:`jaxgrad.physics.cosmology.kpc_per_arcsec`). Over
4 < z < 6 the scale changes by ±8 %, which moves a stacked gradient by about the same
fraction at most (and much less for a redshift distribution independent of ∇Z).

Inputs are plain arrays (pixel scale in arcsec); this module is NumPy except for the
optional Method I evaluation, which calls :mod:`jaxgrad.pipeline.metallicity`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines

__all__ = [
    "Stack",
    "StackProfile",
    "StackGradient",
    "centroid",
    "shift_image",
    "resampled_medians",
    "stack_maps",
    "stack_profile",
    "stack_gradient",
    "DIAGNOSTIC_LINES",
]

# numerator lines, denominator lines of the diagnostics the "invert" method can use
DIAGNOSTIC_LINES = {
    "R3": (("OIII_5008",), ("Hb",)),
    "O2": (("OII_3727_30",), ("Hb",)),
    "R2": (("OII_3727_30",), ("Hb",)),
    "O32": (("OIII_5008",), ("OII_3727_30",)),
    "Ne3O2": (("NeIII_3870",), ("OII_3727_30",)),
    "N2": (("NII_6585",), ("Ha",)),
    "S2": (("SII_6718_33",), ("Ha",)),
}


class Stack(NamedTuple):
    """A median stack of line maps (:func:`stack_maps`).

    Fields:
        maps: ``[n_lines, ny, nx]`` median stack. With ``weights`` a line name, in units
            of the galaxy's total ``weights``-line flux per pixel (dimensionless);
            otherwise in the input unit. NaN where no galaxy covers a pixel.
        err: ``[n_lines, ny, nx]`` bootstrap standard deviation of ``maps``.
        boot: ``[n_boot, n_lines, ny, nx]`` the bootstrap stacks.
        noise_err: ``[n_lines, ny, nx]`` the error the measurement noise alone gives the
            median, sqrt(π/2)·sqrt(Σσ_i²)/N (large-N Gaussian approximation; the shifted
            errors are propagated as independent pixels).
        n_used: ``[n_lines, ny, nx]`` number of galaxies contributing to each pixel.
        lines: line names of axis 0.
        centers: ``[n_gal, 2]`` (x, y) 0-based pixel position of each galaxy's centre in
            its input map.
        norms: ``[n_gal]`` the normalising flux of each galaxy (1 when ``weights`` is None).
        weights: the normalising line name, or None.
    """

    maps: np.ndarray
    err: np.ndarray
    boot: np.ndarray
    noise_err: np.ndarray
    n_used: np.ndarray
    lines: tuple[str, ...]
    centers: np.ndarray
    norms: np.ndarray
    weights: str | None


class StackProfile(NamedTuple):
    """Annulus sums of a stack (:func:`stack_profile`); arrays over annuli ``[A]``.

    Fields:
        lines: line names of axis 0 of ``flux``.
        r_in_arcsec, r_out_arcsec: annulus bounds, arcsec.
        r_arcsec: annulus radius (r_in + r_out)/2, arcsec (Paper A's convention).
        r_kpc: ``r_arcsec`` × ``kpc_per_arcsec``.
        flux: ``[n_lines, A]`` summed stacked flux per annulus (unit of the stack).
        err: ``[n_lines, A]`` bootstrap standard deviation of ``flux``.
        boot: ``[n_boot, n_lines, A]`` annulus sums of the bootstrap stacks.
        area_pix: ``[A]`` annulus area in pixels.
        kpc_per_arcsec: the scale used.
    """

    lines: tuple[str, ...]
    r_in_arcsec: np.ndarray
    r_out_arcsec: np.ndarray
    r_arcsec: np.ndarray
    r_kpc: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    boot: np.ndarray
    area_pix: np.ndarray
    kpc_per_arcsec: float


class StackGradient(NamedTuple):
    """Metallicity profile and gradient of a stack (:func:`stack_gradient`).

    Fields:
        grad: ∇Z, dex/kpc (weighted least squares through the valid annuli).
        grad_err: bootstrap standard deviation of ∇Z (the same fit on every bootstrap
            stack): the sample-variance error Paper B quotes.
        grad_err_formal: the WLS error from the per-annulus errors.
        z0, z0_err: intercept 12+log(O/H) at r = 0 and its bootstrap error.
        logoh: ``[A]`` 12+log(O/H) per annulus (NaN where invalid).
        logoh_err: ``[A]`` its bootstrap standard deviation (measurement only; the
            calibration scatter, common to all annuli of a stack, is not included).
        r_kpc: ``[A]`` annulus radii, kpc.
        valid: ``[A]`` annuli used in the fit.
        boot_grad: ``[n_boot]`` bootstrap gradients (NaN where a fit was impossible).
        method: ``"method1"`` or ``"invert"``.
        diagnostics: diagnostics used.
        calibration: calibration name.
    """

    grad: float
    grad_err: float
    grad_err_formal: float
    z0: float
    z0_err: float
    logoh: np.ndarray
    logoh_err: np.ndarray
    r_kpc: np.ndarray
    valid: np.ndarray
    boot_grad: np.ndarray
    method: str
    diagnostics: tuple[str, ...]
    calibration: str


# ----------------------------------------------------------------------------- helpers
def _as_arcsec(x, name: str) -> float:
    if hasattr(x, "unit"):  # an astropy Quantity: convert at the edge
        from jaxgrad.io.fits import as_arcsec

        x = as_arcsec(x)
    x = float(x)
    if not (np.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite value > 0 (arcsec), got {x!r}")
    return x


def _shift_1d(a, shift: float, axis: int, square: bool = False):
    """Move ``a`` by ``shift`` pixels along ``axis`` (linear interpolation, zero fill).

    out[i] = (1−f)·a[i−k] + f·a[i−k−1] with shift = k + f, 0 ≤ f < 1; with ``square``
    the weights are squared (variance propagation for independent pixels).
    """
    k = int(np.floor(shift))
    f = float(shift - k)
    w0, w1 = (1.0 - f, f) if not square else ((1.0 - f) ** 2, f**2)
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    out = np.zeros_like(a)
    for off, w in ((k, w0), (k + 1, w1)):
        if w == 0.0 or abs(off) >= n:
            continue
        if off >= 0:
            out[..., off:] += w * a[..., : n - off]
        else:
            out[..., : n + off] += w * a[..., -off:]
    return np.moveaxis(out, -1, axis)


def shift_image(image, dx: float, dy: float, square: bool = False):
    """Shift ``[..., ny, nx]`` by (dx, dy) pixels (+x right, +y up = increasing row index).

    Separable bilinear interpolation; flux-conserving (weights sum to 1) except for flux
    moved off the field, which is lost (the field is zero-filled). ``square=True``
    propagates a variance map instead (squared weights).
    """
    a = np.asarray(image, dtype=float)
    return _shift_1d(_shift_1d(a, dx, -1, square), dy, -2, square)


def centroid(image, err=None, snr_min: float = 3.0, mask=None):
    """Flux-weighted centroid (x, y), 0-based pixels, of the positive pixels at S/N ≥ snr_min.

    Args:
        image: ``[ny, nx]`` line map.
        err: ``[ny, nx]`` 1σ errors, or None (then every positive pixel is used).
        snr_min: minimum pixel S/N.
        mask: optional ``[ny, nx]`` bool, True = good.

    Raises:
        ValueError: if no pixel passes.
    """
    img = np.asarray(image, float)
    good = np.isfinite(img) & (img > 0)
    if mask is not None:
        good &= np.asarray(mask, bool)
    if err is not None:
        e = np.asarray(err, float)
        good &= np.isfinite(e) & (e > 0)
        good &= np.where(good, img / np.where(good, e, 1.0), 0.0) >= snr_min
    if not np.any(good):
        raise ValueError(f"no pixel with positive flux at S/N >= {snr_min} to compute a centroid")
    w = np.where(good, img, 0.0)
    ny, nx = img.shape
    tot = w.sum()
    return float((w.sum(axis=0) * np.arange(nx)).sum() / tot), float((w.sum(axis=1) * np.arange(ny)).sum() / tot)


def resampled_medians(x, idx, chunk: int = 50):
    """NaN-ignoring medians over axis 0 of ``x`` for many resamples of its rows.

    Equivalent to ``np.stack([np.nanmedian(x[i], axis=0) for i in idx])`` but sorts each
    pixel's values once and finds every resample's median from cumulative counts, so a
    bootstrap costs one gather and one cumulative sum per resample.

    Args:
        x: ``[N, ...]`` values (NaN = missing).
        idx: ``[B, N']`` integer row indices of each resample.
        chunk: resamples processed at once.

    Returns:
        ``[B, ...]`` medians (NaN where a resample has no finite value).
    """
    x = np.asarray(x, float)
    idx = np.asarray(idx)
    n = x.shape[0]
    flat = x.reshape(n, -1).T  # [P, N]
    order = np.argsort(flat, axis=1)  # NaN last
    sv = np.take_along_axis(flat, order, axis=1)
    valid = np.isfinite(sv)
    n_b = idx.shape[0]
    counts = np.zeros((n_b, n), np.int32)
    np.add.at(counts, (np.repeat(np.arange(n_b), idx.shape[1]), idx.ravel()), 1)
    rows = np.arange(flat.shape[0])
    out = np.empty((n_b, flat.shape[0]))
    for s in range(0, n_b, max(int(chunk), 1)):
        c = counts[s:s + chunk][:, order] * valid  # [b, P, N], counts in sorted order
        cs = np.cumsum(c, axis=-1)
        nv = cs[..., -1:]
        k1 = np.minimum((cs < (nv + 1) // 2).sum(-1), n - 1)
        k2 = np.minimum((cs < nv // 2 + 1).sum(-1), n - 1)
        med = 0.5 * (sv[rows, k1] + sv[rows, k2])
        out[s:s + chunk] = np.where(nv[..., 0] > 0, med, np.nan)
    return out.reshape((n_b,) + x.shape[1:])


# ----------------------------------------------------------------------------- stacking
def stack_maps(maps_list, errs_list, lines, weights: str | None = "OIII_5008",
               center="centroid", n_boot: int = 200, seed: int = 0, *,
               center_line: str | None = None, snr_min: float = 3.0,
               chunk: int = 50) -> Stack:
    """Median-stack galaxies' line maps, centred on their emission centroids (Paper B).

    Args:
        maps_list: ``n_gal`` line-map stacks ``[n_lines, ny, nx]`` (a list, or an array
            ``[n_gal, n_lines, ny, nx]``), flux per pixel, one common pixel grid and
            scale. NaN marks missing pixels.
        errs_list: 1σ errors, same shapes; non-finite or ≤ 0 marks missing pixels.
        lines: line names of axis 1 (jaxgrad names, see :func:`jaxgrad.lines.names`).
        weights: the line whose total flux (sum over good pixels) normalises each galaxy
            (Paper B: ``"OIII_5008"``), or None to stack the maps as they are.
        center: ``"centroid"`` (flux-weighted centroid of ``center_line``), ``"peak"``
            (its brightest pixel), ``"none"`` (no shift), or an array ``[n_gal, 2]`` of
            (x, y) 0-based pixel positions.
        n_boot: bootstrap resamples of the galaxies (0: no errors).
        seed: seed of the bootstrap's NumPy generator.
        center_line: line used to find the centre (default: ``weights``, which must then
            be a line name).
        snr_min: minimum pixel S/N for the centroid.
        chunk: bootstrap resamples evaluated at once (memory ~ chunk × n_gal × map size).

    Returns:
        :class:`Stack`.

    Raises:
        ValueError: unknown or duplicate line names, inconsistent shapes, fewer than two
            galaxies, a non-positive normalising flux, or no pixel for a centroid (the
            message names the galaxy).
    """
    lines = _lines.validate(lines)
    maps = [np.asarray(m, float) for m in maps_list]
    errs = [np.asarray(e, float) for e in errs_list]
    n_gal = len(maps)
    if n_gal < 2:
        raise ValueError(f"need at least two galaxies to stack, got {n_gal}")
    if len(errs) != n_gal:
        raise ValueError(f"maps_list has {n_gal} galaxies but errs_list has {len(errs)}")
    shape = maps[0].shape
    if len(shape) != 3 or shape[0] != len(lines):
        raise ValueError(f"each galaxy's maps must have shape [n_lines={len(lines)}, ny, nx], got {shape}")
    for i, (m, e) in enumerate(zip(maps, errs, strict=True)):
        if m.shape != shape or e.shape != shape:
            raise ValueError(f"galaxy {i}: maps {m.shape} / errs {e.shape} differ from galaxy 0's {shape}")
    if weights is not None and weights not in lines:
        _lines.get(weights)
        raise ValueError(f"weights line {weights!r} is not among the stacked lines {lines}")
    cline = center_line if center_line is not None else weights
    if isinstance(center, str):
        if center not in ("centroid", "peak", "none"):
            raise ValueError(f"center must be 'centroid', 'peak', 'none' or an [n_gal, 2] array, got {center!r}")
        if center != "none":
            if cline is None:
                raise ValueError("center='centroid'/'peak' with weights=None needs center_line=<line name>")
            if cline not in lines:
                _lines.get(cline)
                raise ValueError(f"center_line {cline!r} is not among the stacked lines {lines}")
    else:
        cen = np.asarray(center, float)
        if cen.shape != (n_gal, 2) or not np.all(np.isfinite(cen)):
            raise ValueError(f"center array must be finite with shape [n_gal={n_gal}, 2] (x, y), got {cen.shape}")
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 0):
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")

    _, ny, nx = shape
    xc, yc = (nx - 1) / 2.0, (ny - 1) / 2.0
    shifted = np.empty((n_gal,) + shape)
    shifted_var = np.empty((n_gal,) + shape)
    centers = np.empty((n_gal, 2))
    norms = np.ones(n_gal)
    for g in range(n_gal):
        m, e = maps[g], errs[g]
        good = np.isfinite(m) & np.isfinite(e) & (e > 0)
        if isinstance(center, str):
            if center == "none":
                cx, cy = xc, yc
            else:
                ic = lines.index(cline)
                if center == "centroid":
                    try:
                        cx, cy = centroid(m[ic], e[ic], snr_min, good[ic])
                    except ValueError as exc:
                        raise ValueError(f"galaxy {g}: {exc} in {cline}") from None
                else:
                    img = np.where(good[ic], m[ic], -np.inf)
                    cy, cx = (float(v) for v in np.unravel_index(np.argmax(img), img.shape))
        else:
            cx, cy = cen[g]
        centers[g] = cx, cy
        if weights is not None:
            iw = lines.index(weights)
            norms[g] = float(np.sum(np.where(good[iw], m[iw], 0.0)))
            if not (np.isfinite(norms[g]) and norms[g] > 0):
                raise ValueError(f"galaxy {g}: total {weights} flux is {norms[g]!r}; it must be > 0 to normalise")
        dx, dy = xc - cx, yc - cy
        fm = np.where(good, m, 0.0) / norms[g]
        fv = np.where(good, e, 0.0) ** 2 / norms[g] ** 2
        cover = shift_image(good.astype(float), dx, dy)
        ok = cover > 1.0 - 1e-9
        shifted[g] = np.where(ok, shift_image(fm, dx, dy), np.nan)
        shifted_var[g] = np.where(ok, shift_image(fv, dx, dy, square=True), np.nan)

    med = resampled_medians(shifted, np.arange(n_gal)[None])[0]
    n_used = np.sum(np.isfinite(shifted), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        noise_err = np.sqrt(np.pi / 2.0) * np.sqrt(np.nansum(shifted_var, axis=0)) / n_used
    noise_err = np.where(n_used > 0, noise_err, np.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_gal, size=(n_boot, n_gal))
    boot = resampled_medians(shifted, idx, chunk)
    if n_boot > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            err = np.nanstd(boot, axis=0, ddof=1)
    else:
        err = np.full(shape, np.nan)
    return Stack(maps=med, err=err, boot=boot, noise_err=noise_err, n_used=n_used, lines=lines,
                 centers=centers, norms=norms, weights=weights)


# ----------------------------------------------------------------------------- profile
def annulus_fractions(ny: int, nx: int, edges_pix, oversample: int = 8) -> np.ndarray:
    """Fraction of each pixel's area in each circular annulus ``[A, ny, nx]``.

    Annuli are centred on the field centre ((nx−1)/2, (ny−1)/2); radii ``edges_pix``
    (``A + 1`` values) in pixels; fractions from ``oversample``² sub-pixels per pixel.
    """
    k = int(oversample)
    sub = (np.arange(k) + 0.5) / k - 0.5
    y = (np.arange(ny)[:, None] + sub[None, :]).ravel() - (ny - 1) / 2.0
    x = (np.arange(nx)[:, None] + sub[None, :]).ravel() - (nx - 1) / 2.0
    r = np.hypot(y[:, None], x[None, :])  # [ny*k, nx*k]
    edges = np.asarray(edges_pix, float)
    idx = np.digitize(r, edges) - 1  # annulus index, -1 inside none
    out = np.zeros((edges.size - 1, ny, nx))
    for a in range(edges.size - 1):
        out[a] = (idx == a).reshape(ny, k, nx, k).mean(axis=(1, 3))
    return out


def stack_profile(stack: Stack, lines, pixel_scale, kpc_per_arcsec, n_annuli: int = 5,
                  r_max_arcsec=0.42, *, oversample: int = 8) -> StackProfile:
    """Sum a stack (and its bootstrap stacks) in circular annuli about the field centre.

    Paper B: five annuli of equal width out to 0.42″.

    Args:
        stack: :class:`Stack` from :func:`stack_maps`.
        lines: subset of ``stack.lines`` to keep (None: all).
        pixel_scale: arcsec per pixel of the stacked maps (float or angle Quantity).
        kpc_per_arcsec: proper kpc per arcsec for ``r_kpc`` (e.g. at the sample's median
            redshift, :func:`jaxgrad.physics.cosmology.kpc_per_arcsec`).
        n_annuli: number of annuli.
        r_max_arcsec: outer radius of the last annulus, arcsec (float or Quantity).
        oversample: sub-pixels per pixel and axis for the annulus fractions.

    Returns:
        :class:`StackProfile`. An annulus touching a NaN pixel of the stack has NaN flux.
    """
    if not isinstance(stack, Stack):
        raise TypeError(f"stack must be a Stack from stack_maps, got {type(stack).__name__}")
    scale = _as_arcsec(pixel_scale, "pixel_scale")
    r_max = _as_arcsec(r_max_arcsec, "r_max_arcsec")
    kpa = float(kpc_per_arcsec)
    if not (np.isfinite(kpa) and kpa > 0):
        raise ValueError(f"kpc_per_arcsec must be finite and > 0, got {kpc_per_arcsec!r}")
    if not (isinstance(n_annuli, (int, np.integer)) and n_annuli >= 1):
        raise ValueError(f"n_annuli must be a positive integer, got {n_annuli!r}")
    sel = stack.lines if lines is None else _lines.validate(lines)
    missing = [n for n in sel if n not in stack.lines]
    if missing:
        raise ValueError(f"line(s) {missing} are not in the stack, which has {stack.lines}")
    ii = [stack.lines.index(n) for n in sel]
    _, ny, nx = stack.maps.shape
    half = min(ny, nx) / 2.0 * scale
    if r_max > half:
        raise ValueError(f"r_max_arcsec = {r_max} exceeds the half-width of the stacked field ({half:.3g}″)")
    edges = np.linspace(0.0, r_max, n_annuli + 1)
    frac = annulus_fractions(ny, nx, edges / scale, oversample)  # [A, ny, nx]
    touch = frac > 0

    def sums(m):  # [..., L, ny, nx] -> [..., L, A]
        bad = np.isnan(m)[..., None, :, :] & touch
        s = np.einsum("...lyx,ayx->...la", np.nan_to_num(m, nan=0.0), frac)
        return np.where(bad.any(axis=(-2, -1)), np.nan, s)

    flux = sums(stack.maps[ii])
    boot = sums(stack.boot[:, ii]) if stack.boot.shape[0] else np.zeros((0, len(ii), n_annuli))
    if boot.shape[0] > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            err = np.nanstd(boot, axis=0, ddof=1)
    else:
        err = np.full(flux.shape, np.nan)
    r_mid = 0.5 * (edges[1:] + edges[:-1])
    return StackProfile(lines=sel, r_in_arcsec=edges[:-1], r_out_arcsec=edges[1:], r_arcsec=r_mid,
                        r_kpc=r_mid * kpa, flux=flux, err=err, boot=boot,
                        area_pix=frac.sum(axis=(1, 2)), kpc_per_arcsec=kpa)


# ----------------------------------------------------------------------------- gradient
def _wls(r, z, s):
    """Weighted straight line z = a + b r; returns (b, a, σ_b, σ_a)."""
    w = 1.0 / s**2
    S, Sx, Sy = w.sum(), (w * r).sum(), (w * z).sum()
    Sxx, Sxy = (w * r * r).sum(), (w * r * z).sum()
    det = S * Sxx - Sx**2
    b = (S * Sxy - Sx * Sy) / det
    a = (Sxx * Sy - Sx * Sxy) / det
    return b, a, np.sqrt(S / det), np.sqrt(Sxx / det)


def _method1_available() -> bool:
    try:
        from jaxgrad.pipeline import metallicity  # noqa: F401
    except ImportError:
        return False
    return hasattr(metallicity, "method1_grid") and hasattr(metallicity, "make_metallicity_spec")


def _logoh_method1(flux, err, lines, calibration, snr_min):
    """Method I medians for flux/err ``[M, L]`` -> ``[M]`` (NaN where not measurable)."""
    import jax
    import jax.numpy as jnp

    from jaxgrad.pipeline import metallicity as _met

    spec, _ = _met.make_metallicity_spec(lines, calibration, snr_min=snr_min, warn=False)
    if not spec.diagnostics:
        raise ValueError(f"calibration {calibration!r} has no diagnostic measurable from {lines}")
    f = jax.jit(jax.vmap(lambda a, b: _met.method1_grid(a, b, spec).median))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        z = f(jnp.asarray(flux), jnp.asarray(err))
    return np.asarray(z, float), spec.diagnostics


def _logoh_invert(flux, err, lines, cal, diagnostic, branch, snr_min):
    if diagnostic not in DIAGNOSTIC_LINES:
        raise ValueError(f"method='invert' supports diagnostics {tuple(DIAGNOSTIC_LINES)}, got {diagnostic!r}")
    cal.diagnostic(diagnostic)  # raises if the calibration lacks it
    num, den = DIAGNOSTIC_LINES[diagnostic]
    need = [n for n in num + den if n not in lines]
    if need:
        raise ValueError(f"diagnostic {diagnostic} needs line(s) {need}, not in the profile's {lines}")
    fn = sum(flux[..., lines.index(n)] for n in num)
    fd = sum(flux[..., lines.index(n)] for n in den)
    ok = np.ones(fn.shape, bool)
    for n in num + den:
        f, e = flux[..., lines.index(n)], err[..., lines.index(n)]
        ok &= np.isfinite(f) & (f > 0) & (~(e > 0) | (f >= snr_min * np.where(e > 0, e, 0.0)))
    y = np.where(ok, np.log10(np.where(ok, fn / np.where(ok, fd, 1.0), 1.0)), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        z = np.asarray(cal.invert(diagnostic, y, branch=branch), float)
    return np.where(ok, z, np.nan), (diagnostic,)


def stack_gradient(profile: StackProfile, calibration="sanders24", method: str = "auto", *,
                   diagnostic: str = "O32", branch: str = "lower", snr_min: float = 2.5,
                   min_annuli: int = 3, err_floor: float = 1e-3) -> StackGradient:
    """12+log(O/H) per annulus of a stacked profile and the weighted gradient.

    Methods:
        ``"method1"``: Paper A's Method I on each annulus' fluxes
        (:func:`jaxgrad.pipeline.metallicity.method1_grid`: all diagnostics the
        calibration offers for the lines, flux errors = the profile's bootstrap errors,
        posterior median; de-reddened with the pipeline's Balmer-decrement rule when Hα or
        Hγ is in the profile with Hβ); ``"invert"``: invert one diagnostic (default O32, monotonic
        in most calibrations) with ``cal.invert(diagnostic, log_ratio, branch=branch)``;
        ``"auto"``: ``"method1"`` when :mod:`jaxgrad.pipeline.metallicity` is importable,
        else ``"invert"``.

    The same estimator is applied to every bootstrap profile; each annulus' error is the
    bootstrap standard deviation of its 12+log(O/H) (floored at ``err_floor``), the
    straight line is a weighted least-squares fit over the annuli valid in the stack,
    and ``grad_err`` is the standard deviation of the bootstrap gradients (same
    annuli, same weights).

    Args:
        profile: :class:`StackProfile` from :func:`stack_profile`.
        calibration: calibration name or object (:func:`jaxgrad.calibrations.get`).
        method: ``"auto"`` | ``"method1"`` | ``"invert"``.
        diagnostic: diagnostic for ``"invert"`` (see :data:`DIAGNOSTIC_LINES`).
        branch: ``"lower"`` | ``"upper"`` branch for ``"invert"``.
        snr_min: minimum S/N of a line in an annulus (flux / bootstrap error).
        min_annuli: minimum valid annuli for a gradient (else NaN).
        err_floor: minimum per-annulus error, dex.

    Returns:
        :class:`StackGradient`.
    """
    if not isinstance(profile, StackProfile):
        raise TypeError(f"profile must be a StackProfile from stack_profile, got {type(profile).__name__}")
    if method not in ("auto", "method1", "invert"):
        raise ValueError(f"method must be 'auto', 'method1' or 'invert', got {method!r}")
    if branch not in ("lower", "upper"):
        raise ValueError(f"branch must be 'lower' or 'upper', got {branch!r}")
    cal = _cal.get(calibration)
    if method == "auto":
        method = "method1" if _method1_available() else "invert"
    lines = profile.lines
    A = profile.flux.shape[1]
    n_boot = profile.boot.shape[0]
    # rows: the stack, then each bootstrap stack; fluxes [M, L]
    flux = np.concatenate([profile.flux.T[None], np.transpose(profile.boot, (0, 2, 1))], axis=0)
    err = np.broadcast_to(np.where(np.isfinite(profile.err), profile.err, np.nan).T, flux.shape)
    if method == "method1":
        if not _method1_available():
            raise ValueError("method='method1' needs jaxgrad.pipeline.metallicity.method1_grid, "
                             "which is not available; use method='invert'")
        e = np.where(np.isfinite(err) & (err > 0), err, np.inf)
        z, diags = _logoh_method1(np.nan_to_num(flux.reshape(-1, len(lines)), nan=0.0),
                                  e.reshape(-1, len(lines)), lines, cal.name, snr_min)
        z = z.reshape(1 + n_boot, A)
    else:
        z, diags = _logoh_invert(flux, err, lines, cal, diagnostic, branch, snr_min)
    z_stack, z_boot = z[0], z[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        zerr = np.nanstd(z_boot, axis=0, ddof=1) if n_boot > 1 else np.full(A, np.nan)
    s = np.maximum(np.where(np.isfinite(zerr), zerr, np.nan), err_floor)
    valid = np.isfinite(z_stack) & np.isfinite(s)
    r = profile.r_kpc
    nan = float("nan")
    boot_grad = np.full(n_boot, np.nan)
    boot_z0 = np.full(n_boot, np.nan)
    if valid.sum() >= max(int(min_annuli), 2):
        g, z0, gs, _ = _wls(r[valid], z_stack[valid], s[valid])
        for b in range(n_boot):
            vb = valid & np.isfinite(z_boot[b])
            if vb.sum() >= max(int(min_annuli), 2):
                boot_grad[b], boot_z0[b], _, _ = _wls(r[vb], z_boot[b][vb], s[vb])
        nb = np.isfinite(boot_grad).sum()
        g_err = float(np.nanstd(boot_grad, ddof=1)) if nb > 1 else nan
        z0_err = float(np.nanstd(boot_z0, ddof=1)) if nb > 1 else nan
        g, z0, gs = float(g), float(z0), float(gs)
    else:
        g = z0 = gs = g_err = z0_err = nan
    return StackGradient(grad=g, grad_err=g_err, grad_err_formal=gs, z0=z0, z0_err=z0_err,
                         logoh=np.where(valid, z_stack, np.nan), logoh_err=np.where(valid, zerr, np.nan),
                         r_kpc=r, valid=valid, boot_grad=boot_grad, method=method,
                         diagnostics=tuple(diags), calibration=cal.name)
