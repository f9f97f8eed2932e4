"""The per-pixel likelihood shared by every model in :mod:`jaxgrad.inference`.

For each used pixel p of line (or channel) l, with model flux m (the PSF-convolved
forward model, so beam smearing is inside the likelihood) and observed flux d ± σ:

    log L = Σ_p w_p [ −½ (d − m)² / v − ½ log(2π v) ],   v = σ² + (f_ref · s_l · ln 10)²


``s_l`` is the calibration's intrinsic scatter propagated to line l (dex): the
quadrature sum of the scatters of the diagnostics that predict the line from Hβ
(:meth:`Calibration.line_recipe`), zero for Balmer lines. This is Paper B's term
(Li et al., docs/science.md §5): the scatter of the ratio R_l = f_l/f_Hβ enters as a
variance f_Hβ² σ_{R_l}² with σ_{R_l} = R_l s_l ln 10 — a log-normal scatter linearised
in flux — treated as independent from pixel to pixel and line to line, which keeps
high-S/N pixels from over-weighting a calibration that is only good to ~0.1–0.2 dex.

**Our choice: f_ref is a model fitted first without the scatter term, cross-fitted,
and the variance is then held fixed** (two-pass, iteratively reweighted least squares).
We measured both obvious alternatives bias the *gradient* on S/N-30 mocks without
intrinsic scatter:

* f_ref = the model being fitted (variance depends on the parameters): the −½ log v
  term rewards *smaller* model fluxes wherever the scatter term dominates (bright pixels
  of lines with a large s, e.g. [OII] at 0.22 dex); S/N falls with radius, so the ratio
  bias varies with radius: +0.04–0.07 dex/kpc (~1.5σ).
* f_ref = the data, max(d, 0): at S/N ~ 1–5 the weight then correlates with the noise
  (up-fluctuations are down-weighted), so faint outer pixels of large-s lines are
  biased low: −0.05–0.1 dex/kpc.

A first-pass model fitted to *all* pixels correlates with each pixel's noise only
weakly, but summed over a galaxy that still biased the score at the truth by ~0.1 σ
(``benchmarks/score_bias.py``, 3000 mocks: mean Z0 score −6.8 ± 1.2 at S/N 30; with the
true model as reference −1.4 ± 1.2): invisible in one fit, 0.004 dex low in the mean Z0
of 10⁴ galaxies (4 σ there). Hence **cross-fitting**: the pixels are split in two
:func:`checkerboard` halves, a first-pass model is fitted to each half, and every pixel
takes its reference from the fit to the *other* half, so no pixel's variance depends on
its own noise (the same measurement: −1.1 ± 1.2). :func:`add_scatter` folds the
variance into ``Obs.err``; the likelihood itself is a fixed-variance Gaussian.

Cubes: channel c is assigned to the spec line nearest in wavelength (at the known
redshift) and uses that line's s_l; exact when lines do not overlap in a channel.

Scatter models (``scatter_model`` argument of :func:`~jaxgrad.inference.fit_galaxy`):
  * ``"pixel"``: the variance term above, independent from pixel to pixel;
  * ``"coherent"``: one offset per line and galaxy, δ_l ~ N(0, s_l), sampled
    (:func:`offset_plan`); no per-pixel term. The scatter then does not average down as
    1/√N_pix, and Z0's interval includes the calibration's zero-point uncertainty.

Scatter values (``cal_scatter`` argument):
  * ``"calibration"``: the calibration's published scatter per diagnostic; an
    unverified candidate where only that exists; :data:`DEFAULT_SCATTER_DEX` where none
    is published (e.g. Sanders+24 O32 and Ne3O2) — listed by :func:`line_scatter`.
  * a float: that scatter (dex) for every diagnostic.
  * a mapping diagnostic -> dex (missing diagnostics take the default).
  * ``0`` or ``None``: no calibration term (measurement errors only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines
from jaxgrad.forward import GalaxyParams, ModelSpec, cube_kernel, line_maps_kernel
from jaxgrad.inference.data import Obs, channel_lines

__all__ = ["DEFAULT_SCATTER_DEX", "SCATTER_MODELS", "offset_plan", "add_scatter", "checkerboard", "checkerboard_halves", "cross_reference", "line_scatter", "log_likelihood", "pixel_sigma_ln", "predict"]

DEFAULT_SCATTER_DEX = 0.1
LN10 = math.log(10.0)


def line_scatter(spec: ModelSpec, cal_scatter="calibration") -> tuple[np.ndarray, dict]:
    """Calibration scatter per line, dex ``[n_lines]``, and where each value came from.

    Args:
        spec: model spec (lines, calibration).
        cal_scatter: see the module docstring.

    Returns:
        (scatter per line in dex, {diagnostic: (dex, source)}) with source one of
        ``"published"``, ``"unverified"``, ``"default"``, ``"user"``.
    """
    cal = _cal.get(spec.calibration)
    used = {}
    if cal_scatter is None or (isinstance(cal_scatter, (int, float)) and cal_scatter == 0):
        return np.zeros(spec.n_lines), used
    out = []
    for ln in spec.lines:
        recipe = () if ln in _lines.CASE_B else cal.line_recipe(ln) or ()
        tot = 0.0
        for d, _sign in recipe:
            if isinstance(cal_scatter, str):
                if cal_scatter != "calibration":
                    raise ValueError(
                        f"cal_scatter must be 'calibration', a number (dex), a mapping or None, got {cal_scatter!r}"
                    )
                diag = cal.diagnostic(d)
                if diag.scatter is not None:
                    s, src = diag.scatter, "published"
                elif diag.scatter_unverified is not None:
                    s, src = diag.scatter_unverified, "unverified"
                else:
                    s, src = DEFAULT_SCATTER_DEX, "default"
            elif isinstance(cal_scatter, Mapping):
                s = float(cal_scatter.get(d, DEFAULT_SCATTER_DEX))
                src = "user" if d in cal_scatter else "default"
            else:
                s, src = float(cal_scatter), "user"
            if not (s >= 0 and math.isfinite(s)):
                raise ValueError(f"calibration scatter of {d} must be a finite number >= 0 dex, got {s!r}")
            used[d] = (s, src)
            tot += s * s
        out.append(math.sqrt(tot))
    return np.asarray(out), used


def pixel_sigma_ln(spec: ModelSpec, kind: str, scatter_dex: np.ndarray, z: float) -> np.ndarray:
    """s_l ln10 per leading index of the data: ``[n_lines]`` (maps) or ``[n_chan]`` (cube)."""
    s = np.asarray(scatter_dex, float) * LN10
    if kind == "maps":
        return s
    return s[channel_lines(spec, z)]


SCATTER_MODELS = ("pixel", "coherent")


def offset_plan(spec: ModelSpec, kind: str, scatter_dex, z: float) -> tuple[dict, np.ndarray]:
    """The coherent calibration-scatter model's offsets of one galaxy.

    A calibration's scatter is galaxy-to-galaxy: a galaxy's ratios sit off the fitted
    relation by one amount for the whole galaxy (its ionisation conditions), not by an
    independent amount in every pixel. Each line l with scatter s_l > 0 gets one offset
    δ_l ~ N(0, s_l) (dex) of its ratio to Hβ, sampled with the other parameters; the
    model of every plane of that line is multiplied by 10^δ_l.

    Returns:
        ({site name ``cal_offset_<line>``: (line index, s_l)}, ``[K]`` line index of every
        data plane).
    """
    sites = {f"cal_offset_{ln}": (i, float(sd)) for i, (ln, sd) in enumerate(zip(spec.lines, scatter_dex, strict=True))
             if sd > 0}
    plane_line = np.arange(spec.n_lines) if kind == "maps" else np.asarray(channel_lines(spec, z))
    return sites, plane_line


def predict(params: GalaxyParams, spec: ModelSpec, kind: str, psf_image=None):
    """PSF-convolved model ``[K, ny, nx]``: line maps or cube (traceable)."""
    img = psf_image if spec.psf_model == "image" else None
    if kind == "maps":
        return line_maps_kernel(params, spec, img)
    return cube_kernel(params, spec, img)


def checkerboard(shape) -> np.ndarray:
    """1.0 on the pixels with an odd x + y, 0.0 elsewhere, ``[ny, nx]``: the two halves of a
    cross-fitted reference model (each half's variance from a fit to the other)."""
    ny, nx = shape
    return ((np.arange(ny)[:, None] + np.arange(nx)[None, :]) % 2).astype(float)


def checkerboard_halves(obs: Obs) -> tuple[Obs, Obs]:
    """``obs`` using only its :func:`checkerboard`-1 pixels ("on"), and only the others
    ("off"): what the two first-pass fits of a cross-fitted reference see."""
    chk = jnp.asarray(checkerboard(obs.data.shape[-2:]), obs.weight.dtype)
    return obs._replace(weight=obs.weight * chk), obs._replace(weight=obs.weight * (1.0 - chk))


def cross_reference(ref_on, ref_off):
    """Each pixel's reference flux from the fit to the *other* half (see
    :func:`checkerboard_halves`): ``ref_off`` on the checkerboard-1 pixels, ``ref_on``
    elsewhere; ``[..., ny, nx]``."""
    return jnp.where(checkerboard(jnp.shape(ref_on)[-2:]) > 0, ref_off, ref_on)


def add_scatter(obs: Obs, sigma_ln, ref=None) -> Obs:
    """Fold the calibration scatter into the errors: σ_eff² = σ² + (f_ref s ln10)².

    Args:
        obs: the data (raw measurement errors).
        sigma_ln: s_l ln 10 per leading index ``[K]`` (see :func:`pixel_sigma_ln`).
        ref: reference fluxes ``[K, ny, nx]`` — a model fitted without the scatter term
            (what :func:`~jaxgrad.inference.fit_galaxy` uses); None: max(d, 0), the
            data themselves (biased at low S/N, see the module docstring).
    """
    sig = jnp.asarray(sigma_ln, obs.data.dtype)[..., :, None, None]
    ref = jnp.maximum(obs.data if ref is None else jnp.asarray(ref, obs.data.dtype), 0.0)
    return obs._replace(err=jnp.sqrt(obs.err**2 + (ref * sig) ** 2))


def log_likelihood(params: GalaxyParams, obs: Obs, spec: ModelSpec, kind: str, normalised: bool = True,
                   plane_scale=None):
    """Gaussian log-likelihood of one galaxy's data (scalar; traceable, vmappable).

    Args:
        params: scalar :class:`GalaxyParams`.
        obs: the data (:class:`~jaxgrad.inference.data.Obs`), errors already including
            the calibration scatter (:func:`add_scatter`).
        spec: static model spec.
        kind: ``"maps"`` or ``"cube"`` (static).
        normalised: False drops the parameter-free terms: −½ Σ w (r²/σ² − 1), which
            differs from the normalised value by a constant, and whose partial sums stay
            O(√N) for a fitting model instead of O(N). Samplers summing many galaxies in
            float32 need this: at 10⁴ galaxies × 10³ pixels the normalised sum is ~10⁷
            with an ulp of 1, and that rounding noise in the energy stalls NUTS.
        plane_scale: optional factor per data plane ``[K]`` on the model (the coherent
            calibration offsets 10^δ_l, see :func:`offset_plan`).
    """
    model = predict(params, spec, kind, obs.psf_image)
    if plane_scale is not None:
        model = model * plane_scale[:, None, None]
    var = obs.err**2
    resid = obs.data - model
    if not normalised:
        return -0.5 * jnp.sum(obs.weight * (resid * resid / var - 1.0))
    terms = -0.5 * resid * resid / var - 0.5 * jnp.log(2.0 * jnp.pi * var)
    return jnp.sum(obs.weight * terms)
