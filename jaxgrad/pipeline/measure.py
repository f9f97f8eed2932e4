"""One-call measurement of a galaxy's metallicity gradient from a cube or line maps.

:func:`measure_cube` and :func:`measure_maps` validate the inputs, run the jitted chain
of :mod:`jaxgrad.pipeline.core` (annuli, spaxels or Voronoi bins), optionally sample the
posteriors with NumPyro / emcee (:mod:`jaxgrad.pipeline.sampling`), and return a tidy
:class:`PipelineResult`: a per-bin table, per-diagnostic gradients, Method I and II
gradients with errors, and the posterior samples as ArviZ InferenceData.

Bad input is handled at this edge: NaN/inf pixels (or voxels) are masked, a missing line
(absent, all non-finite, or outside the cube) drops only the diagnostics that need it
(with a warning naming them), errors ≤ 0 raise a ValueError, and when no line reaches
the S/N threshold the result says so (``measurable=False`` and a message) instead of
failing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import lines as _lines
from jaxgrad.pipeline import batched as _bt
from jaxgrad.pipeline import core as _core
from jaxgrad.pipeline import diagnostics as _diag
from jaxgrad.pipeline import geometry as _geom
from jaxgrad.pipeline import gradient as _grad
from jaxgrad.pipeline import sampling as _smp
from jaxgrad.pipeline import voronoi as _vor

__all__ = ["PipelineResult", "measure_maps", "measure_cube"]

MODES = ("annuli", "spaxel", "voronoi")
SAMPLERS = ("nuts", "emcee")


@dataclass
class PipelineResult:
    """Tidy result of :func:`measure_cube` / :func:`measure_maps`.

    Attributes:
        mode: ``"annuli"``, ``"spaxel"`` or ``"voronoi"``.
        lines: line names of the fluxes (for maps, missing lines stay listed with no
            flux; see ``dropped_lines``); calibration: its name; diagnostics: diagnostics
            considered (a diagnostic whose lines are missing is never used).
        geometry: dict with ``x0``, ``y0`` (arcsec), ``q`` (b/a), ``pa`` (deg E of N),
            ``inc`` (deg, from cos i = q).
        psf_fwhm: PSF FWHM after homogenisation (arcsec); annulus_width: arcsec (annuli
            mode); kpc_per_arcsec: angular scale at z.
        bins: per-bin table, dict of equal-length arrays: ``radius_kpc``, ``valid``,
            ``npix``, ``flux_<line>``, ``err_<line>``, ``snr_<line>``, ``logoh``
            (Method I median), ``logoh_lo``/``logoh_hi`` (16/84%), ``logoh_err``,
            ``measurable``, ``av`` (mag), ``logoh_<diag>`` / ``logoh_<diag>_err``
            (Method II), ``logratio_<diag>`` / ``logratio_<diag>_err`` (observed,
            dust-corrected), and sampler columns when run.
        method1: WLS gradient through the Method I bins: ``grad``, ``grad_err``
            (dex/kpc), ``z0``, ``z0_err`` (dex), ``n_bins``, ``chi2``.
        method2: Method II: ``grad``, ``grad_err``, ``z0``, ``z0_err``, ``spread``,
            ``n_diagnostics``.
        per_diagnostic: ``{diag: {grad, grad_err, z0, z0_err, n_bins, used}}``.
        samplers: ``{"nuts"|"emcee"|"method1_nuts"|"paper_b": summary dict}``.
        paper_b: Paper B's joint fit per bin and its WLS gradient (or None).
        azimuthal: gradients in angle bins from the major axis (or None).
        idata: ArviZ InferenceData with every posterior sampled (or None).
        measurable: a gradient could be measured (≥ 2 bins with a metallicity).
        messages: notes on dropped lines/diagnostics and failures.
        dropped_lines: lines missing from the data; dropped_diagnostics:
            ``{diag: missing lines}``.
        raw: the JAX outputs of the chain (for debugging).
    """

    mode: str
    lines: tuple
    calibration: str
    diagnostics: tuple
    geometry: dict
    psf_fwhm: float
    annulus_width: float | None
    kpc_per_arcsec: float
    bins: dict
    method1: dict
    method2: dict
    per_diagnostic: dict
    samplers: dict = field(default_factory=dict)
    paper_b: dict | None = None
    azimuthal: dict | None = None
    idata: Any = None
    measurable: bool = False
    messages: list = field(default_factory=list)
    dropped_lines: tuple = ()
    dropped_diagnostics: dict = field(default_factory=dict)
    raw: Any = None

    def table(self):
        """The per-bin table as a pandas DataFrame (pandas comes with ArviZ)."""
        import pandas as pd

        return pd.DataFrame(self.bins)

    def summary(self) -> str:
        """A few lines of text: gradients with errors and the messages."""
        m1, m2 = self.method1, self.method2
        out = [f"mode={self.mode} calibration={self.calibration} diagnostics={list(self.diagnostics)}",
               f"Method I : grad = {m1['grad']:+.4f} ± {m1['grad_err']:.4f} dex/kpc, "
               f"Z0 = {m1['z0']:.3f} ± {m1['z0_err']:.3f} ({m1['n_bins']} bins)",
               f"Method II: grad = {m2['grad']:+.4f} ± {m2['grad_err']:.4f} dex/kpc "
               f"({m2['n_diagnostics']} diagnostics)"]
        for k, s in self.samplers.items():
            if "grad" in s:
                out.append(f"{k:9s}: grad = {s['grad']:+.4f} ± {s['grad_err']:.4f} dex/kpc")
        out += [f"note: {m}" for m in self.messages]
        return "\n".join(out)


# --------------------------------------------------------------------------- jitted
@lru_cache(maxsize=32)
def _maps_chain_fn(spec):
    return jax.jit(lambda *a: _core.maps_chain(spec, *a))


@lru_cache(maxsize=32)
def _cube_chain_fn(spec):
    return jax.jit(lambda *a: _core.cube_chain(spec, *a))


@lru_cache(maxsize=32)
def _prep_maps_fn(spec):
    return jax.jit(lambda *a: _core.prepare_maps(spec, *a))


@lru_cache(maxsize=32)
def _prep_cube_fn(spec):
    return jax.jit(lambda *a: _core.prepare_cube(spec, *a))


@lru_cache(maxsize=32)
def _bins_fn(met, min_bins):
    return jax.jit(lambda f, e, r, v: _core.bins_to_gradients(f, e, r, v, met, min_bins))


@lru_cache(maxsize=32)
def _fit_many_fn(spec, chunk):
    """Line fits of many spectra ``[N, C]`` in chunks of ``chunk`` (jitted)."""
    def f(spectra, espec, centres, z, chan_ok):
        def one(s, e):
            return _core.fit_spectra(spec, s[None], None if espec is None else e[None], centres,
                                     z, chan_ok)

        e_in = espec if espec is not None else jnp.zeros((spectra.shape[0], 1), spectra.dtype)
        out = _bt._mapper(one, chunk)(spectra, e_in)
        return jax.tree_util.tree_map(lambda x: x[:, 0], out)

    return jax.jit(f)


@lru_cache(maxsize=32)
def _azimuthal_fn(min_bins):
    return jax.jit(lambda r, y, e, m, a: _grad.azimuthal_gradients(r, y, e, m, a, min_bins=min_bins))


# --------------------------------------------------------------------------- helpers
def _pad(n: int) -> int:
    """Next power of two ≥ n (≥ 4): limits recompilation over Voronoi bin counts."""
    return max(4, 1 << (max(n, 1) - 1).bit_length())


def _geometry_arg(geometry, dtype):
    if geometry is None:
        return _geom.make_geometry(dtype=dtype), True
    if isinstance(geometry, dict):
        return _geom.make_geometry(**geometry, dtype=dtype), False
    if isinstance(geometry, _geom.Geometry):
        return jax.tree_util.tree_map(lambda v: jnp.asarray(v), geometry), False
    raise TypeError(f"geometry must be None, a dict(x0, y0, q, pa) or a Geometry, got {type(geometry).__name__}")


def _dropped_diags(calibration, all_lines, kept, diagnostics):
    """Diagnostics the full line list allows that the kept lines no longer do."""
    full, _ = _diag.usable_diagnostics(calibration, all_lines, diagnostics)
    out = {}
    for d in full:
        miss = tuple(n for n in _diag.required_lines(d) if n not in kept)
        if miss:
            out[d] = miss
    return out


def _f(x):
    return float(np.asarray(x))


def _fit_dict(fit) -> dict:
    return {"grad": _f(fit.grad), "grad_err": _f(fit.grad_err), "z0": _f(fit.z0),
            "z0_err": _f(fit.z0_err), "n_bins": int(np.asarray(fit.n)), "chi2": _f(fit.chi2)}


def _geometry_dict(g) -> dict:
    q = _f(g.q)
    return {"x0": _f(g.x0), "y0": _f(g.y0), "q": q, "pa": _f(g.pa),
            "inc": math.degrees(math.acos(min(max(q, 0.0), 1.0)))}


def _bin_table(lines, met, radius, valid, npix, flux, ferr, m1, m2, extra=None) -> dict:
    a = np.asarray
    t = {"radius_kpc": a(radius), "valid": a(valid), "npix": a(npix)}
    flux, ferr = a(flux), a(ferr)
    for i, n in enumerate(lines):
        t[f"flux_{n}"] = flux[:, i]
        t[f"err_{n}"] = ferr[:, i]
        with np.errstate(divide="ignore", invalid="ignore"):
            t[f"snr_{n}"] = np.where(np.isfinite(ferr[:, i]) & (ferr[:, i] > 0), flux[:, i] / ferr[:, i], 0.0)
    t["logoh"] = a(m1.median)
    t["logoh_lo"] = a(m1.lo)
    t["logoh_hi"] = a(m1.hi)
    t["logoh_err"] = a(m1.err)
    t["measurable"] = a(m1.measurable) & a(valid)
    t["av"] = a(m1.av)
    t["av_measured"] = a(m1.av_measured)
    for j, d in enumerate(met.diagnostics):
        ok = a(m1.avail)[:, j]
        t[f"logratio_{d}"] = np.where(ok, a(m1.y)[:, j], np.nan)
        t[f"logratio_{d}_err"] = np.where(ok, a(m1.sy)[:, j], np.nan)
        t[f"used_{d}"] = a(m1.used)[:, j]
        t[f"logoh_{d}"] = a(m2.logoh)[:, j]
        t[f"logoh_{d}_err"] = a(m2.err)[:, j]
    if extra:
        t.update({k: a(v) for k, v in extra.items()})
    return t


def _assemble(mode, spec, geom, psf_eff, width, scale, radius, valid, npix, flux, ferr, m1, m2,
              fit1, fit2, messages, dropped_lines, dropped_diags, raw, extra_cols=None):
    met = spec.met
    bins = _bin_table(spec.lines, met, radius, valid, npix, flux, ferr, m1, m2, extra_cols)
    per = {}
    pd_ = fit2.per_diagnostic
    for j, d in enumerate(met.diagnostics):
        per[d] = {"grad": _f(pd_.grad[j]), "grad_err": _f(pd_.grad_err[j]), "z0": _f(pd_.z0[j]),
                  "z0_err": _f(pd_.z0_err[j]), "n_bins": int(np.asarray(pd_.n[j])),
                  "used": bool(np.asarray(fit2.used[j]))}
    method2 = {"grad": _f(fit2.grad), "grad_err": _f(fit2.grad_err), "z0": _f(fit2.z0),
               "z0_err": _f(fit2.z0_err), "spread": _f(fit2.spread),
               "n_diagnostics": int(np.asarray(fit2.n_used))}
    measurable = bool(np.asarray(fit1.valid))
    n_meas = int(np.sum(bins["measurable"]))
    if not measurable:
        if n_meas == 0:
            messages.append(
                "no metallicity measurable: no bin has a diagnostic with all its lines at "
                f"S/N >= {met.snr_min} (and inside the calibration's valid range)")
        else:
            messages.append(f"no gradient measurable: only {n_meas} bin(s) with a metallicity (need 2)")
    return PipelineResult(
        mode=mode, lines=spec.lines, calibration=met.calibration, diagnostics=met.diagnostics,
        geometry=_geometry_dict(geom), psf_fwhm=_f(psf_eff),
        annulus_width=None if width is None else _f(width), kpc_per_arcsec=_f(scale),
        bins=bins, method1=_fit_dict(fit1), method2=method2, per_diagnostic=per,
        measurable=measurable, messages=messages, dropped_lines=tuple(dropped_lines),
        dropped_diagnostics=dropped_diags, raw=raw)


def _run_samplers(res: PipelineResult, spec, samplers, method1_sampler, paper_b, key, seed,
                  num_warmup, num_samples, emcee_walkers, emcee_steps, emcee_burn):
    b = res.bins
    use = np.asarray(b["measurable"], bool)
    results = {}
    for s in samplers:
        if s not in SAMPLERS:
            raise ValueError(f"samplers must be among {SAMPLERS}, got {s!r}")
    if not res.measurable:
        if samplers or method1_sampler or paper_b:
            res.messages.append("samplers skipped: no gradient measurable")
        return
    key = jax.random.key(seed) if key is None else key
    k1, k2, k3 = jax.random.split(key, 3)
    r, y, e = b["radius_kpc"], b["logoh"], b["logoh_err"]
    if "nuts" in samplers:
        sr = _smp.fit_gradient_numpyro(k1, r, y, e, use, num_warmup=num_warmup,
                                       num_samples=num_samples)
        results["nuts"] = sr
    if "emcee" in samplers:
        sr = _smp.fit_gradient_emcee(r, y, e, use, n_walkers=emcee_walkers, n_steps=emcee_steps,
                                     burn=emcee_burn, seed=seed)
        results["emcee"] = sr
    for k in ("nuts", "emcee"):
        if k in results:
            sr = results[k]
            res.samplers[k] = {"grad": float(sr.median["grad"]), "grad_err": float(sr.std["grad"]),
                               "grad_lo": float(sr.lo["grad"]), "grad_hi": float(sr.hi["grad"]),
                               "z0": float(sr.median["z0"]), "z0_err": float(sr.std["z0"]),
                               "ess_grad": sr.ess["grad"], "wall_s": sr.wall_s, **{
                                   kk: (vv.tolist() if isinstance(vv, np.ndarray) else vv)
                                   for kk, vv in sr.extra.items()}}
    flux = np.stack([b[f"flux_{n}"] for n in spec.lines], axis=1)[use]
    ferr = np.stack([b[f"err_{n}"] for n in spec.lines], axis=1)[use]
    if method1_sampler:
        av_fb = float(np.asarray(res.raw["av_global"])) if isinstance(res.raw, dict) and "av_global" in res.raw else 0.0
        sr = _smp.method1_numpyro(k2, flux, ferr, spec.met, av_fallback=av_fb,
                                  num_warmup=num_warmup, num_samples=num_samples)
        results["method1_nuts"] = sr
        col = np.full(len(use), np.nan)
        col[use] = sr.median["logoh"]
        b["logoh_nuts"] = col
        col = np.full(len(use), np.nan)
        col[use] = 0.5 * (sr.hi["logoh"] - sr.lo["logoh"])
        b["logoh_nuts_err"] = col
        res.samplers["method1_nuts"] = {"wall_s": sr.wall_s, "ess_logoh": sr.ess["logoh"]}
    if paper_b:
        sr = _smp.paper_b_numpyro(k3, flux, ferr, spec.met, num_warmup=num_warmup,
                                  num_samples=num_samples)
        results["paper_b"] = sr
        zb = np.full(len(use), np.nan)
        zb[use] = sr.median["logoh"]
        eb = np.full(len(use), np.nan)
        eb[use] = 0.5 * (sr.hi["logoh"] - sr.lo["logoh"])
        avb = np.full(len(use), np.nan)
        avb[use] = sr.median["av"]
        b["logoh_paper_b"], b["logoh_paper_b_err"], b["av_paper_b"] = zb, eb, avb
        fit = _grad.wls_gradient(jnp.asarray(r), jnp.asarray(zb), jnp.asarray(eb), jnp.asarray(use))
        res.paper_b = {**_fit_dict(fit), "wall_s": sr.wall_s}
        res.samplers["paper_b"] = {"wall_s": sr.wall_s, "ess_logoh": sr.ess["logoh"]}
    res.idata = _smp.to_inference_data(results) if results else None


def _edge_units(pixel_scale, z, psf_fwhm, max_radius_kpc):
    """astropy Quantities of the common arguments in internal units (:mod:`jaxgrad.units`)."""
    from jaxgrad.units import is_quantity, to_internal

    def conv(v, unit, name):
        out = to_internal(v, unit, name)
        return float(out) if is_quantity(v) and np.ndim(out) == 0 else out

    return (conv(pixel_scale, "arcsec", "pixel_scale"), conv(z, "", "z"), conv(psf_fwhm, "arcsec", "psf_fwhm"),
            None if max_radius_kpc is None else conv(max_radius_kpc, "kpc", "max_radius_kpc"))


def _check_common(mode, pixel_scale, z):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not (np.isscalar(pixel_scale) and pixel_scale > 0):
        raise ValueError(f"pixel_scale must be a positive number (arcsec/pixel), got {pixel_scale!r}")
    if not (np.isscalar(z) and np.isfinite(z) and z > 0):
        raise ValueError(f"z must be a positive finite number, got {z!r}")


def _warn_missing(missing, dropped, messages):
    if not missing:
        return
    msg = f"line(s) {', '.join(missing)} missing from the data"
    if dropped:
        msg += "; diagnostics dropped: " + "; ".join(f"{d} (needs {', '.join(m)})" for d, m in dropped.items())
    else:
        msg += "; no diagnostic needed them"
    messages.append(msg)
    warnings.warn(msg, UserWarning, stacklevel=3)


# --------------------------------------------------------------------------- maps
def _stack_maps(maps, errs, lines):
    if isinstance(maps, dict):
        if not isinstance(errs, dict):
            raise ValueError("when maps is a dict {line: map}, errs must be a dict too")
        names = tuple(lines) if lines is not None else tuple(maps)
        shape = next(np.shape(v) for v in maps.values() if v is not None)
        nan = np.full(shape, np.nan)
        m = np.stack([np.asarray(maps.get(n), float) if maps.get(n) is not None else nan for n in names])
        e = np.stack([np.asarray(errs.get(n), float) if errs.get(n) is not None else nan for n in names])
        return m, e, _lines.validate(names)
    if lines is None:
        raise ValueError("lines must be given when maps is an array [L, ny, nx]")
    m = np.asarray(maps, float)
    e = np.asarray(errs, float)
    lines = _lines.validate(lines)
    if m.ndim != 3 or m.shape[0] != len(lines):
        raise ValueError(f"maps must have shape [{len(lines)}, ny, nx] for lines {lines}, got {m.shape}")
    if e.shape != m.shape:
        raise ValueError(f"errs must have the shape of maps {m.shape}, got {e.shape}")
    return m, e, lines


def measure_maps(maps, errs, lines, pixel_scale: float, z: float, psf_fwhm,
                 calibration="sanders24", *, mode: str = "annuli", diagnostics=None,
                 geometry=None, psf_axis_ratio: float = 1.0, n_annuli: int = 12,
                 max_radius_kpc: float | None = None, bright_line: str | None = None,
                 outer_snr: float = 3.0, min_width_pix: float = 1.0, snr_min: float = 2.5,
                 spaxel_ratio_snr: float = 2.5, target_snr: float = 5.0,
                 voronoi_labels=None, default_scatter: float = 0.1,
                 dust_correct: bool = True, dust_law: str = "calzetti", n_grid: int = 512,
                 radius_mode: str = "midpoint", homogenise: bool = True,
                 geometry_psf_deconvolve: bool = False, min_bins_method2: int = 3,
                 azimuthal: bool = False, samplers=("nuts",), method1_sampler: bool = False,
                 paper_b: bool = False, key=None, seed: int = 0, num_warmup: int = 500,
                 num_samples: int = 1000, emcee_walkers: int = 64, emcee_steps: int = 2000,
                 emcee_burn: int = 500) -> PipelineResult:
    """Measure a galaxy's metallicity gradient from line maps (grism or collapsed IFU).

    Args:
        maps: line-flux maps ``[L, ny, nx]`` (flux per pixel, any unit) ordered as
            ``lines``, or a dict ``{line: map}`` (a line mapped to None is missing).
        errs: 1σ maps of the same layout, > 0 where finite (NaN masks a pixel).
        lines: line names (may be None for dict input: the dict's keys).
        pixel_scale: arcsec per pixel.
        z: redshift.
        psf_fwhm: PSF FWHM (arcsec), scalar or one per map (homogenised to the reddest).
        calibration: calibration name (:func:`jaxgrad.calibrations.available`).
        mode: ``"annuli"`` (Paper A), ``"spaxel"`` (spaxels with ratio S/N > 2.5) or
            ``"voronoi"`` (bins reaching ``target_snr`` in the brightest line, Paper B).
        diagnostics: diagnostics to use (default: every one the lines allow).
        geometry: None to fit a 2-D Gaussian to the brightest line, or dict(x0, y0, q, pa).
        psf_axis_ratio: PSF b/a.
        n_annuli: maximum number of annuli.
        max_radius_kpc: ignore bins beyond this radius.
        bright_line: line used for geometry, outer radius and Voronoi S/N.
        outer_snr: minimum brightest-line S/N of an annulus (outer radius).
        min_width_pix: minimum annulus width, pixels.
        snr_min: minimum line S/N (Paper A: 2.5).
        spaxel_ratio_snr: minimum diagnostic-ratio S/N in spaxel/Voronoi mode.
        target_snr: Voronoi target S/N; voronoi_labels: precomputed labels ``[ny, nx]``
            (e.g. from ``vorbin``), −1 for unbinned pixels.
        default_scatter: calibration scatter (dex) where the calibration gives none.
        dust_correct, dust_law: Balmer-decrement correction and curve.
        n_grid: Method I grid size.
        radius_mode: annulus radius: ``"midpoint"`` (Paper A), ``"mean"`` or
            ``"flux_weighted"`` (see :class:`~jaxgrad.pipeline.core.ChainOptions`).
        homogenise, geometry_psf_deconvolve, min_bins_method2: see
            :func:`~jaxgrad.pipeline.batched.batched_gradient_from_maps`.
        azimuthal: also measure gradients in three bins of angle from the major axis
            (from spaxels).
        samplers: gradient samplers to run: ``"nuts"`` (NumPyro) and/or ``"emcee"``
            (Paper A: 64 walkers × 2000 steps, 500 burn-in; set ``emcee_*``).
        method1_sampler: also sample every bin's Method I posterior with NUTS.
        paper_b: also run Paper B's joint (Z, A_V, f_Hβ) fit per bin (NUTS).
        key: JAX PRNG key for NumPyro (default ``jax.random.key(seed)``); seed: integer
            seed (emcee, and the default key).
        num_warmup, num_samples: NUTS settings.
        emcee_walkers, emcee_steps, emcee_burn: emcee settings.

    Returns:
        :class:`PipelineResult`.
    """
    pixel_scale, z, psf_fwhm, max_radius_kpc = _edge_units(pixel_scale, z, psf_fwhm, max_radius_kpc)
    _check_common(mode, pixel_scale, z)
    m, e, all_lines = _stack_maps(maps, errs, lines)
    _bt.check_errors(e)
    has = np.any(np.isfinite(m) & np.isfinite(e), axis=(1, 2))
    missing = [n for n, h in zip(all_lines, has, strict=True) if not h]
    kept = tuple(n for n, h in zip(all_lines, has, strict=True) if h)
    messages: list[str] = []
    dropped = _dropped_diags(calibration, all_lines, kept, diagnostics)
    _warn_missing(missing, dropped, messages)
    if not kept:
        raise ValueError("no line has any finite pixel: nothing to measure")
    # missing lines stay in the (static) spec with no data: the kernel's masks drop their
    # diagnostics, so a missing line costs no recompilation
    fw = np.asarray(psf_fwhm, float)
    fw = np.full(len(all_lines), float(fw)) if fw.ndim == 0 else fw
    if fw.shape != (len(all_lines),) or np.any(~np.isfinite(fw)) or np.any(fw <= 0):
        raise ValueError(f"psf_fwhm must be finite, > 0 arcsec, scalar or one per line, got {psf_fwhm!r}")
    diags = diagnostics
    bright_line = bright_line if (bright_line and bright_line in kept) else _bt.default_bright_line(kept)
    dtype = jnp.result_type(float)
    geom_in, fit_geom = _geometry_arg(geometry, dtype)
    spec, _ = _bt.make_chain_spec(
        all_lines, pixel_scale, m.shape[1], m.shape[2], calibration=calibration, diagnostics=diags,
        n_annuli=n_annuli, bright_line=bright_line, min_width_pix=min_width_pix,
        fit_geometry=fit_geom, geometry_psf_deconvolve=geometry_psf_deconvolve,
        homogenise=bool(homogenise and np.ptp(fw) > 0), snr_min=snr_min,
        default_scatter=default_scatter, dust_correct=dust_correct, dust_law=dust_law,
        n_grid=n_grid, min_bins_method2=min_bins_method2, warn=False)
    opts = _core.make_options(max_radius_kpc, outer_snr, radius_mode, dtype)
    rmax = opts.max_radius_kpc
    args = (jnp.asarray(m, dtype), jnp.asarray(e, dtype), jnp.asarray(z, dtype),
            jnp.asarray(fw, dtype), jnp.asarray(psf_axis_ratio, dtype), geom_in)
    if mode == "annuli":
        out = _maps_chain_fn(spec)(*args, opts)
        b = out.bins
        res = _assemble(mode, spec, out.geometry, out.psf_fwhm, out.width, out.kpc_per_arcsec,
                        b.radius, b.valid, b.npix, b.flux, b.flux_err, b.m1, b.m2, out.method1,
                        out.method2, messages, missing, dropped,
                        {"output": out, "av_global": b.av_global})
        prep = None
    else:
        prep = _prep_maps_fn(spec)(*args)
        res = _binned_result(mode, spec, prep, rmax, spaxel_ratio_snr, target_snr,
                             voronoi_labels, messages, missing, dropped)
    if azimuthal:
        if prep is None:
            prep = _prep_maps_fn(spec)(*args)
        res.azimuthal = _azimuthal(spec, prep, rmax, spaxel_ratio_snr)
    _run_samplers(res, spec, tuple(samplers or ()), method1_sampler, paper_b, key, seed,
                  num_warmup, num_samples, emcee_walkers, emcee_steps, emcee_burn)
    return res


def _spaxel_bins(spec, prep, rmax):
    """Per-spaxel fluxes (maps) ``[P, L]``, radii, angles and validity."""
    L = len(spec.lines)
    flux = jnp.moveaxis(prep.stack.reshape(L, -1), 0, 1)
    ferr = jnp.moveaxis(prep.err.reshape(L, -1), 0, 1)
    ferr = jnp.where(prep.present[None, :] & prep.good.ravel()[:, None], ferr, jnp.inf)
    r = prep.a.ravel() * prep.kpc_per_arcsec
    valid = prep.good.ravel() & (r <= rmax)
    return flux, ferr, r, valid, prep.angle.ravel()


def _azimuthal(spec, prep, rmax, ratio_snr):
    met = spec.met.replace(ratio_snr_min=float(ratio_snr))
    if spec.linefit is not None:
        raise NotImplementedError  # handled by measure_cube
    flux, ferr, r, valid, ang = _spaxel_bins(spec, prep, rmax)
    return _azimuthal_from(spec, met, flux, ferr, r, valid, ang)


def _azimuthal_from(spec, met, flux, ferr, r, valid, ang):
    m1, _, _, _, _ = _bins_fn(met, spec.min_bins_method2)(flux, ferr, r, valid)
    use = valid & m1.measurable
    fits = _azimuthal_fn(3)(r, m1.median, m1.err, use, ang)
    edges = _grad.AZIMUTH_EDGES
    out = {}
    for i in range(len(edges) - 1):
        key = f"[{edges[i]:.0f},{edges[i + 1]:.0f})"
        out[key] = {k: _f(getattr(fits, k)[i]) for k in ("grad", "grad_err", "z0", "z0_err")}
        out[key]["n_bins"] = int(np.asarray(fits.n[i]))
    return out


def _voronoi_weights(spec, prep, target_snr, labels, rmax):
    if labels is None:
        # only pixels inside the radius cap are binned
        inside = np.asarray(prep.a) * float(np.asarray(prep.kpc_per_arcsec)) <= float(np.asarray(rmax))
        labels = _vor.voronoi_bins(np.asarray(prep.bright), np.asarray(prep.bright_err), target_snr,
                                   mask=np.asarray(prep.good) & inside)
    labels = np.asarray(labels)
    if labels.shape != (spec.ny, spec.nx):
        raise ValueError(f"voronoi_labels must have shape {(spec.ny, spec.nx)}, got {labels.shape}")
    nb = int(labels.max()) + 1 if np.any(labels >= 0) else 0
    K = _pad(nb)
    flat = labels.ravel()
    W = (flat[None, :] == np.arange(K)[:, None]).astype(float)
    W *= np.asarray(prep.good).ravel()[None, :]
    return jnp.asarray(W, prep.stack.dtype), labels, nb


def _binned_result(mode, spec, prep, rmax, ratio_snr, target_snr, labels, messages,
                   missing, dropped, cube_ctx=None):
    met = spec.met.replace(ratio_snr_min=float(ratio_snr))
    extra = {}
    if mode == "spaxel":
        if cube_ctx is None:
            flux, ferr, r, valid, ang = _spaxel_bins(spec, prep, rmax)
        else:
            flux, ferr, r, valid, ang = cube_ctx["spaxel"](prep, rmax)
        npix = jnp.ones_like(r)
        extra["angle_deg"] = ang
        width = None
    else:
        W, labels, nb = _voronoi_weights(spec, prep, target_snr, labels, rmax)
        fwt = W * jnp.maximum(prep.bright, 0.0).ravel()[None]
        tot = jnp.sum(fwt, axis=1)
        r = (fwt @ prep.a.ravel()) / jnp.where(tot > 0, tot, 1.0) * prep.kpc_per_arcsec
        ang = (fwt @ prep.angle.ravel()) / jnp.where(tot > 0, tot, 1.0)
        npix = jnp.sum(W, axis=1)
        if cube_ctx is None:
            L = len(spec.lines)
            flux = W @ prep.stack.reshape(L, -1).T
            ferr = jnp.sqrt(W @ (prep.err.reshape(L, -1) ** 2).T)
            ferr = jnp.where(prep.present[None, :], ferr, jnp.inf)
        else:
            flux, ferr = cube_ctx["voronoi"](prep, W)
        valid = (npix > 0) & (r <= rmax)
        extra["angle_deg"] = ang
        extra["bin_snr_target"] = np.full(W.shape[0], target_snr)
        width = None
        messages.append(f"voronoi: {nb} bins (padded to {W.shape[0]}) at target S/N {target_snr}")
    m1, m2, avg, fit1, fit2 = _bins_fn(met, spec.min_bins_method2)(flux, ferr, r, valid)
    spec_r = replace(spec, met=met)
    res = _assemble(mode, spec_r, prep.geometry, prep.psf_fwhm, width, prep.kpc_per_arcsec, r,
                    valid, npix, flux, ferr, m1, m2, fit1, fit2, messages, missing, dropped,
                    {"prepared": prep, "av_global": avg, "voronoi_labels": labels if mode == "voronoi" else None},
                    extra)
    if mode in ("spaxel", "voronoi"):
        fits = _azimuthal_fn(3)(r, m1.median, m1.err, valid & m1.measurable, ang)
        edges = _grad.AZIMUTH_EDGES
        res.azimuthal = {
            f"[{edges[i]:.0f},{edges[i + 1]:.0f})": {
                **{k: _f(getattr(fits, k)[i]) for k in ("grad", "grad_err", "z0", "z0_err")},
                "n_bins": int(np.asarray(fits.n[i]))} for i in range(len(edges) - 1)}
    return res


# --------------------------------------------------------------------------- cubes
def _psf_per_channel(psf_fwhm, centres):
    if callable(psf_fwhm):
        fw = np.asarray([psf_fwhm(float(c)) for c in centres], float)
    else:
        fw = np.asarray(psf_fwhm, float)
        fw = np.full(len(centres), float(fw)) if fw.ndim == 0 else fw
    if fw.shape != (len(centres),):
        raise ValueError(f"psf_fwhm must be a scalar, a callable of wavelength (µm) or shape [{len(centres)}], got {np.shape(psf_fwhm)}")
    if np.any(~np.isfinite(fw)) or np.any(fw <= 0):
        raise ValueError("psf_fwhm must be finite and > 0 arcsec")
    return fw


def _cube_line_missing(cube, centres, z, lines, half_kms):
    """Lines outside the cube or whose channels are all non-finite."""
    missing = []
    for n in lines:
        lam = np.asarray(_core._component_lams([n])) / 1e4 * (1 + z)
        if np.any(lam < centres[0]) or np.any(lam > centres[-1]):
            missing.append(n)
            continue
        near = np.zeros(len(centres), bool)
        for l0 in lam:
            near |= np.abs(centres / l0 - 1.0) * 299792.458 <= half_kms
        if not np.any(np.isfinite(cube[near])):
            missing.append(n)
    return missing


def measure_cube(cube, err, wavelengths_um, z: float, lines, pixel_scale: float, psf_fwhm,
                 calibration="sanders24", *, mode: str = "annuli", diagnostics=None,
                 geometry=None, psf_axis_ratio: float = 1.0, n_annuli: int = 12,
                 max_radius_kpc: float | None = None, bright_line: str | None = None,
                 outer_snr: float = 3.0, min_width_pix: float = 1.0, snr_min: float = 2.5,
                 spaxel_ratio_snr: float = 2.5, target_snr: float = 5.0, voronoi_labels=None,
                 default_scatter: float = 0.1, dust_correct: bool = True,
                 dust_law: str = "calzetti", n_grid: int = 512, radius_mode: str = "midpoint",
                 homogenise: bool = True, geometry_psf_deconvolve: bool = False,
                 min_bins_method2: int = 3, sigma_init_kms: float = 150.0, broad=(),
                 rms_window: int = 160, line_mask_kms: float = 800.0,
                 linefit_options: dict | None = None, chunk_size: int = 256,
                 azimuthal: bool = False, samplers=("nuts",), method1_sampler: bool = False,
                 paper_b: bool = False, key=None, seed: int = 0, num_warmup: int = 500,
                 num_samples: int = 1000, emcee_walkers: int = 64, emcee_steps: int = 2000,
                 emcee_burn: int = 500) -> PipelineResult:
    """Measure a galaxy's metallicity gradient from an IFU cube (Paper A's pipeline).

    Args:
        cube: ``[C, ny, nx]`` flux per channel per pixel (any unit); NaN/inf masked.
        err: ``[C, ny, nx]`` ERR cube (> 0 where finite) or None (error spectra from the
            RMS in a moving window of ``rms_window`` channels with lines masked).
        wavelengths_um: ``[C]`` channel centres, observed µm, increasing.
        z: redshift (initial value for the line fits; ±2 channels allowed).
        lines: line names to fit; lines outside the cube (or with no finite channel) are
            dropped with a warning naming the diagnostics they take away.
        pixel_scale: arcsec per pixel.
        psf_fwhm: arcsec: scalar, ``[C]`` per channel, or a callable of wavelength (µm);
            the cube is homogenised to the PSF at the reddest used line.
        sigma_init_kms: initial line σ (intrinsic ⊕ LSF), km/s; broad: lines with a
            broad component (Hα, Hβ, [OIII]5008).
        rms_window, line_mask_kms: error-spectrum window (channels) and line mask (km/s).
        linefit_options: extra :func:`~jaxgrad.pipeline.linefit.make_linefit_spec`
            arguments.
        chunk_size: spectra per vectorised chunk in spaxel mode.
        Other arguments: as :func:`measure_maps`.

    Returns:
        :class:`PipelineResult` (line-fit details per annulus in ``raw["output"].linefit``).
    """
    pixel_scale, z, psf_fwhm, max_radius_kpc = _edge_units(pixel_scale, z, psf_fwhm, max_radius_kpc)
    _check_common(mode, pixel_scale, z)
    cube = np.asarray(cube, float)
    if cube.ndim != 3:
        raise ValueError(f"cube must have shape [n_chan, ny, nx], got {cube.shape}")
    C, ny, nx = cube.shape
    centres = _bt.check_wavelengths(wavelengths_um, C)
    has_err = err is not None
    if has_err:
        err = np.asarray(err, float)
        if err.shape != cube.shape:
            raise ValueError(f"err must have the shape of cube {cube.shape}, got {err.shape}")
        _bt.check_errors(err, "err")
    all_lines = _lines.validate(lines)
    missing = _cube_line_missing(cube, centres, z, all_lines, line_mask_kms)
    kept = tuple(n for n in all_lines if n not in missing)
    messages: list[str] = []
    dropped = _dropped_diags(calibration, all_lines, kept, diagnostics)
    _warn_missing(missing, dropped, messages)
    if not kept:
        raise ValueError(f"none of the lines {all_lines} lies inside the cube with finite data")
    fw = _psf_per_channel(psf_fwhm, centres)
    diags = None if diagnostics is None else tuple(d for d in diagnostics if d not in dropped)
    bright_line = bright_line if (bright_line and bright_line in kept) else _bt.default_bright_line(kept)
    lf = _bt.linefit_spec_for(kept, centres, sigma_init_kms=sigma_init_kms,
                              broad=tuple(b for b in (broad or ()) if b in kept) if broad is not True else True,
                              **(linefit_options or {}))
    dtype = jnp.result_type(float)
    geom_in, fit_geom = _geometry_arg(geometry, dtype)
    spec, _ = _bt.make_chain_spec(
        kept, pixel_scale, ny, nx, calibration=calibration, diagnostics=diags, n_annuli=n_annuli,
        bright_line=bright_line, min_width_pix=min_width_pix,
        fit_geometry=fit_geom, geometry_psf_deconvolve=geometry_psf_deconvolve,
        homogenise=homogenise and np.ptp(fw) > 0, snr_min=snr_min,
        default_scatter=default_scatter, dust_correct=dust_correct, dust_law=dust_law,
        n_grid=n_grid, min_bins_method2=min_bins_method2, linefit=lf, n_chan=C,
        has_err_cube=has_err, rms_window=rms_window, line_mask_kms=line_mask_kms, warn=False)
    opts = _core.make_options(max_radius_kpc, outer_snr, radius_mode, dtype)
    rmax = opts.max_radius_kpc
    e_arg = jnp.asarray(err, dtype) if has_err else jnp.zeros((1, 1, 1), dtype)
    cen = jnp.asarray(centres, dtype)
    zz = jnp.asarray(z, dtype)
    args = (jnp.asarray(cube, dtype), e_arg, cen, zz, jnp.asarray(fw, dtype),
            jnp.asarray(psf_axis_ratio, dtype), geom_in)
    fit_many = _fit_many_fn(spec, int(chunk_size))

    def spaxel_ctx(prep, rmax_):
        P = ny * nx
        spectra = prep.stack.reshape(C, P).T
        espec = None if prep.err is None else prep.err.reshape(C, P).T
        fits = fit_many(spectra, espec, cen, zz, prep.present)
        ferr = jnp.where(prep.good.ravel()[:, None], fits.flux_err, jnp.inf)
        r = prep.a.ravel() * prep.kpc_per_arcsec
        return fits.flux, ferr, r, prep.good.ravel() & (r <= rmax_), prep.angle.ravel()

    def voronoi_ctx(prep, W):
        spectra = W @ prep.stack.reshape(C, -1).T
        espec = None if prep.err is None else jnp.sqrt(W @ (prep.err.reshape(C, -1) ** 2).T)
        fits = fit_many(spectra, espec, cen, zz, prep.present)
        return fits.flux, fits.flux_err

    ctx = {"spaxel": spaxel_ctx, "voronoi": voronoi_ctx}
    prep = None
    if mode == "annuli":
        out = _cube_chain_fn(spec)(args[0], args[1], cen, zz, args[4], args[5], geom_in, opts)
        b = out.bins
        res = _assemble(mode, spec, out.geometry, out.psf_fwhm, out.width, out.kpc_per_arcsec,
                        b.radius, b.valid, b.npix, b.flux, b.flux_err, b.m1, b.m2, out.method1,
                        out.method2, messages, missing, dropped,
                        {"output": out, "av_global": b.av_global})
    else:
        prep = _prep_cube_fn(spec)(*args)
        res = _binned_result(mode, spec, prep, rmax, spaxel_ratio_snr, target_snr,
                             voronoi_labels, messages, missing, dropped, cube_ctx=ctx)
    if azimuthal and mode == "annuli":
        prep = _prep_cube_fn(spec)(*args)
        met = spec.met.replace(ratio_snr_min=float(spaxel_ratio_snr))
        flux, ferr, r, valid, ang = spaxel_ctx(prep, rmax)
        res.azimuthal = _azimuthal_from(spec, met, flux, ferr, r, valid, ang)
    _run_samplers(res, spec, tuple(samplers or ()), method1_sampler, paper_b, key, seed,
                  num_warmup, num_samples, emcee_walkers, emcee_steps, emcee_burn)
    return res

