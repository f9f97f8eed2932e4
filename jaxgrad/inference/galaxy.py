"""Single-galaxy forward-model fit: NumPyro model, MAP initialisation, NUTS, results.

The model (:func:`galaxy_model`) samples the parameters that have priors
(:mod:`jaxgrad.inference.priors`), keeps the rest at their known/fixed values, runs the
PSF-convolved forward model (:func:`jaxgrad.forward.line_maps_kernel` or
:func:`~jaxgrad.forward.cube_kernel`) and scores every unmasked pixel with the
likelihood of :mod:`jaxgrad.inference.likelihood` — beam smearing is inside the
likelihood, not a correction applied afterwards.

Sampler geometry (why the defaults are what they are):

* Fluxes are sampled in log space (LogNormal priors ⇒ unconstrained coordinate ln F),
  where the line fluxes are *sums* of ln F_Hβ and the log line ratios — the flux scale
  no longer multiplies the calibration curvature, and the remaining correlations are
  close to linear, which a dense mass matrix removes.
* Z0's prior is a :class:`~jaxgrad.inference.priors.SoftUniform` (flat over the valid
  range, Gaussian shoulders, real support): with a hard Uniform, a Z0 near a range edge
  becomes a skewed, exponentially tailed logit coordinate — on the S/N-30 mock at
  Z0 = 7.45 (edge 7.4) that cost 22.6 leapfrog steps per draw and ESS/grad 0.016;
  the soft box gives 6.8 steps per draw and ESS/grad 0.11.
* The MAP (optax Adam + Newton polish, several starts; :mod:`jaxgrad.inference.optim`)
  gives the start point and its inverse Hessian the initial dense inverse mass matrix,
  so warm-up starts with the right scales and correlations (Z0–∇Z anti-correlation
  from the radius lever arm, R_e–n–flux).
* Double-valued calibrations (R3 turns over near 12+log(O/H) ≈ 7.9): when none of the
  modelled lines is predicted by a monotonic diagnostic, ``branch="auto"`` starts the
  MAP on both branches, keeps the branch with the higher posterior density and
  restricts the ``logoh0`` prior to it (a :class:`BranchWarning` when the two differ by
  less than 2 in log density, as they do for R3 alone), so the posterior is not
  bimodal. With a branch-breaking line (e.g. [OII] with Sanders+24's monotonic O2) the
  prior spans the whole valid range.

Example::

    data = GalaxyData(maps, errs, mask, spec, known={"z": 5.0, "psf_fwhm": 0.2})
    res = fit_galaxy(data, priors={"logu": dist.Uniform(-3.5, -1.5)}, fixed={"sersic_n": 1})
    print(res.report()); res.idata.to_netcdf("fit.nc")
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to

from jaxgrad import calibrations as _cal
from jaxgrad.forward import GalaxyParams, ModelSpec, make_params, validate_params
from jaxgrad.inference import priors as _pri
from jaxgrad.inference.data import GalaxyData, Obs, logoh_range
from jaxgrad.inference.likelihood import (
    LN10,
    SCATTER_MODELS,
    add_scatter,
    checkerboard_halves,
    cross_reference,
    line_scatter,
    log_likelihood,
    offset_plan,
    pixel_sigma_ln,
    predict,
)
from jaxgrad.inference.optim import POLISH, distinct_rows, find_map
from jaxgrad.inference.sampler import FlatModel, diagnose, flatten_model, nuts_from_map

_log = logging.getLogger(__name__)

__all__ = ["BranchWarning", "FitResult", "GalaxyModel", "build_galaxy_model", "fit_galaxy", "galaxy_model", "summary_table"]


class BranchWarning(UserWarning):
    """The data barely prefer one branch of a double-valued calibration."""


def galaxy_model(obs: Obs, *, spec: ModelSpec, kind: str, priors: dict, base: GalaxyParams,
                 offsets: dict | None = None, plane_line=None):
    """NumPyro model of one galaxy.

    Args:
        obs: the data (dynamic argument), calibration scatter folded into its errors
            (:func:`~jaxgrad.inference.likelihood.add_scatter`; ``GalaxyModel.obs``).
        spec: static model spec; kind: ``"maps"``/``"cube"``.
        priors: name -> scalar distribution of every sampled GalaxyParams field.
        base: GalaxyParams holding the fixed values.
        offsets, plane_line: the coherent calibration offsets
            (:func:`~jaxgrad.inference.likelihood.offset_plan`), or None.
    """
    dtype = base.r_e.dtype
    vals = {k: jnp.asarray(numpyro.sample(k, d), dtype) for k, d in priors.items()}
    p = base._replace(**vals)
    scale = None
    if offsets:
        delta = jnp.zeros((spec.n_lines,), dtype)
        for name, (i, sd) in offsets.items():
            delta = delta.at[i].set(jnp.asarray(numpyro.sample(name, dist.Normal(0.0, sd)), dtype))
        scale = jnp.exp(LN10 * delta)[jnp.asarray(plane_line)]
    numpyro.factor("loglik", log_likelihood(p, obs, spec, kind, plane_scale=scale))


@dataclass(frozen=True, eq=False)
class GalaxyModel:
    """A configured single-galaxy model: priors, fixed values and its flat potential.

    Attributes:
        data: the :class:`GalaxyData`.
        priors: sampled parameter -> distribution (after branch restriction).
        fixed: user-fixed values.
        base: GalaxyParams of the fixed/known values.
        sigma_ln: calibration scatter per data plane (s ln 10).
        scatter_used: diagnostic -> (dex, source).
        branch: ``"lower"``/``"upper"`` if the logoh0 prior is restricted, else None.
        flat: the :class:`~jaxgrad.inference.sampler.FlatModel` (args = ``(obs,)``).
        obs: the data as the likelihood uses them, calibration scatter folded into the
            errors (:func:`~jaxgrad.inference.likelihood.add_scatter`); after
            :func:`fit_galaxy`, with the first-pass MAP model as reference flux.
        offsets, plane_line: the coherent calibration offsets (``scatter_model="coherent"``;
            :func:`~jaxgrad.inference.likelihood.offset_plan`), else empty / None.
    """

    data: GalaxyData
    priors: dict
    fixed: dict
    base: GalaxyParams
    sigma_ln: np.ndarray
    scatter_used: dict
    branch: str | None
    flat: FlatModel
    obs: Obs
    offsets: dict = field(default_factory=dict)
    plane_line: np.ndarray | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.flat.names

    @property
    def all_priors(self) -> dict:
        """Every sampled site's prior: the GalaxyParams fields and the calibration offsets."""
        return {**self.priors, **{k: dist.Normal(0.0, sd) for k, (_, sd) in self.offsets.items()}}

    def model(self, obs: Obs):
        """The NumPyro model function (for Predictive, initialize_model, MCMC, ...)."""
        return galaxy_model(obs, spec=self.data.spec, kind=self.data.kind, priors=self.priors,
                            base=self.base, offsets=self.offsets, plane_line=self.plane_line)

    def with_reference(self, params: GalaxyParams, params_off: GalaxyParams | None = None) -> GalaxyModel:
        """A copy whose calibration-scatter variance uses the model of ``params`` as
        reference flux (see :mod:`jaxgrad.inference.likelihood`). Cross-fitted, with
        ``params_off``: ``params`` fitted to the pixels where :func:`checkerboard` is 1,
        ``params_off`` to the others, and each pixel takes the other half's model."""
        raw = self.data.obs()
        ref = _predict_jit(params, self.data.spec, self.data.kind, raw.psf_image)
        if params_off is not None:
            ref = cross_reference(ref, _predict_jit(params_off, self.data.spec, self.data.kind, raw.psf_image))
        return replace(self, obs=add_scatter(raw, self.sigma_ln, ref))

    def vg(self):
        """Compiled ``(u, obs) -> (U, ∇U)`` of the flat potential (obs dynamic)."""
        return _vg_cache(self.flat.potential)

    def params_from(self, values: dict) -> GalaxyParams:
        """GalaxyParams with the sampled values replaced (scalars or arrays)."""
        dtype = self.base.r_e.dtype
        return self.base._replace(**{k: jnp.asarray(values[k], dtype) for k in self.priors})

    def prior_start(self, key, n: int) -> jax.Array:
        """``n`` start points drawn from the priors, flat unconstrained ``[n, d]``."""
        pri = self.all_priors
        return _prior_draws(tuple(pri[k] for k in self.names), key, n).astype(self.flat.u_init.dtype)


@partial(jax.jit, static_argnums=2)
def _prior_draws(priors: tuple, key, n: int) -> jax.Array:
    """``[n, len(priors)]`` unconstrained draws, one column per prior. One compilation per
    kinds and shapes of priors (pytree arguments), reused by later fits; eagerly, every
    op of every prior's sampler compiled on its own (~3 s in a fresh process)."""
    cols = [biject_to(d.support).inv(d.sample(k, (n,)))
            for k, d in zip(jax.random.split(key, len(priors)), priors, strict=True)]
    return jnp.stack(cols, axis=1)


def build_galaxy_model(data: GalaxyData, priors=None, fixed=None, cal_scatter="calibration",
                       branch: str | None = None, key=None, scatter_model: str = "pixel") -> GalaxyModel:
    """Resolve priors and fixed values, validate them and build the flat model.

    ``scatter_model``: ``"pixel"`` (the calibration scatter as independent per-pixel
    variance) or ``"coherent"`` (one sampled offset per line and galaxy); see
    :mod:`jaxgrad.inference.likelihood`.

    ``branch``: ``"lower"``/``"upper"`` restricts the logoh0 prior to that branch;
    None/``"none"`` leaves it as is. (:func:`fit_galaxy` chooses it for ``"auto"``.)

    Raises:
        ValueError: bad priors/fixed values (see :func:`~jaxgrad.inference.priors.resolve_priors`),
            fixed values outside their physical ranges, or a fixed logoh0 outside the
            calibration's valid range.
    """
    spec = data.spec
    pri, fixed = _pri.resolve_priors(data, priors, fixed)
    if branch in ("lower", "upper") and "logoh0" in pri:
        pri["logoh0"] = _pri.restrict_branch(pri["logoh0"], spec, branch)
    else:
        branch = None
    base = make_params(**{**data.known, **fixed})
    med = {k: float(v) for k, v in _pri.medians(pri).items()}
    check = base._replace(**{k: jnp.asarray(v, base.r_e.dtype) for k, v in med.items()})
    validate_params(check, spec.replace(range_check="off"))
    if "logoh0" not in pri:
        lo, hi = logoh_range(spec)
        if not lo <= float(base.logoh0) <= hi:
            raise ValueError(f"fixed logoh0={float(base.logoh0)} outside the valid range [{lo}, {hi}] of {spec.calibration}")
    if scatter_model not in SCATTER_MODELS:
        raise ValueError(f"scatter_model must be one of {SCATTER_MODELS}, got {scatter_model!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        scat, used = line_scatter(spec, cal_scatter)
        offsets, plane_line = {}, None
        if scatter_model == "coherent":
            offsets, plane_line = offset_plan(spec, data.kind, scat, float(base.z))
            scat = np.zeros_like(scat)  # no per-pixel term: the offsets carry the scatter
        sigma_ln = pixel_sigma_ln(spec, data.kind, scat, float(base.z))
    if not pri:
        raise ValueError("nothing to sample: every parameter is fixed")

    def model(obs):
        return galaxy_model(obs, spec=spec, kind=data.kind, priors=pri, base=base, offsets=offsets,
                            plane_line=plane_line)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        obs = add_scatter(data.obs(), sigma_ln)
        flat = flatten_model(model, (obs,), key)
    return GalaxyModel(data, pri, fixed, base, sigma_ln, used, branch, flat, obs, offsets, plane_line)


_predict_jit = jax.jit(predict, static_argnums=(1, 2))


def _vg_cache(potential):
    return jax.jit(jax.value_and_grad(potential))


def _to_coords(gm_from: GalaxyModel, gm_to: GalaxyModel, u, cov):
    """Map a point and covariance between two models' unconstrained coordinates
    (same sampled names; different supports, e.g. a branch-restricted logoh0)."""
    names = gm_from.names

    def f(v):
        out = []
        for i, k in enumerate(names):
            p_from, p_to = gm_from.all_priors[k], gm_to.all_priors[k]
            x = biject_to(p_from.support)(v[i])
            lo, hi = _pri.support_bounds(p_to)
            if np.isfinite(hi - lo):
                x = jnp.clip(x, lo + 1e-4 * (hi - lo), hi - 1e-4 * (hi - lo))
            out.append(biject_to(p_to.support).inv(x))
        return jnp.stack(out)

    u = jnp.asarray(u)
    jac = np.asarray(jax.jacfwd(f)(u), float)
    return np.asarray(f(u)), jac @ np.asarray(cov) @ jac.T


def _map_starts(gm: GalaxyModel, key, n_starts: int, branch_values=()) -> np.ndarray:
    """Start points ``[n, d]``: prior median, prior draws, and one per requested logoh0."""
    starts = [np.asarray(gm.flat.u_init)]
    if n_starts > 1:
        starts += list(np.asarray(gm.prior_start(key, n_starts - 1)))
    if branch_values:
        i = gm.names.index("logoh0")
        tr = biject_to(gm.priors["logoh0"].support)
        for zval in branch_values:
            u = np.array(starts[0])
            u[i] = float(tr.inv(jnp.asarray(zval)))
            starts.append(u)
    return np.stack(starts).astype(np.asarray(gm.flat.u_init).dtype)


@dataclass(eq=False)
class FitResult:
    """Result of :func:`fit_galaxy`.

    Attributes:
        idata: ``arviz.InferenceData`` (posterior, sample_stats, observed_data,
            constant_data with the configuration in its attrs), or None without arviz.
        summary: table of the sampled parameters (pandas DataFrame if pandas is
            installed, else a dict of rows): mean, sd, median, 2.5/16/84/97.5
            percentiles, ess_bulk, r_hat; ``attrs["divergences"]`` and
            ``attrs["warning"]``.
        diagnostics: see :func:`jaxgrad.inference.sampler.diagnose`, plus ``map``
            convergence, ``branch``, ``n_bad_masked`` and ``frac_z_out_of_range``.
        map: MAP values of the sampled parameters (constrained; the MAP is taken in
            the unconstrained space the sampler uses).
        samples: constrained draws ``[chains, draws]`` per sampled parameter.
        config: JSON-able description of the fit (priors, fixed, spec, sampler).
        model: the :class:`GalaxyModel`.
    """

    idata: Any
    summary: Any
    diagnostics: dict
    map: dict
    samples: dict
    config: dict
    model: GalaxyModel = field(repr=False)

    @property
    def map_params(self) -> GalaxyParams:
        """The MAP as full :class:`GalaxyParams` (fixed values included)."""
        return self.model.params_from(self.map)

    def median(self, name: str) -> float:
        return float(np.median(self.samples[name]))

    def interval(self, name: str, level: float = 0.68) -> tuple[float, float]:
        """Central credible interval of a sampled parameter."""
        q = 50 * (1 - level)
        lo, hi = np.percentile(self.samples[name], [q, 100 - q])
        return float(lo), float(hi)

    def report(self) -> str:
        """Human-readable summary (divergences are announced first, loudly)."""
        d = self.diagnostics
        lines = []
        if d.get("problems"):
            lines.append("WARNING: NOT CONVERGED — " + "; ".join(d["problems"]))
        if d["divergences"]:
            lines.append(f"WARNING: {d['divergences']} DIVERGENT TRANSITIONS "
                         f"({100 * d['divergent_fraction']:.1f}% of draws) — results may be biased")
        lines.append(f"galaxy {self.config['name']!r}: {d['num_chains']} chain(s) x {d['num_samples']} draws, "
                     f"branch={d['branch']}, steps/draw={d['mean_steps_per_draw']:.1f}, "
                     f"min ESS={d['ess_bulk_min']:.0f}, max R-hat={d['r_hat_max']:.3f}, "
                     f"ESS/grad={d['ess_per_grad']:.3g}")
        lines.append(_format_table(self.summary))
        return "\n".join(lines)


def _format_table(summary) -> str:
    rows = summary.to_dict(orient="index") if hasattr(summary, "to_dict") else summary
    cols = ["median", "sd", "q16", "q84", "ess_bulk", "r_hat"]
    out = [f"{'param':>10s} " + " ".join(f"{c:>10s}" for c in cols)]
    for k, r in rows.items():
        if isinstance(r, dict):
            out.append(f"{k:>10s} " + " ".join(f"{r[c]:10.4g}" for c in cols))
    return "\n".join(out)


def summary_table(samples: dict, names, diagnostics: dict):
    """Per-parameter summary rows (DataFrame if pandas is available)."""
    rows = {}
    for k in names:
        x = np.asarray(samples[k], float).ravel()
        q = np.percentile(x, [2.5, 16, 50, 84, 97.5])
        rows[k] = {"mean": float(x.mean()), "sd": float(x.std()), "median": float(q[2]),
                   "q2.5": float(q[0]), "q16": float(q[1]), "q84": float(q[3]), "q97.5": float(q[4]),
                   "ess_bulk": diagnostics["ess_bulk"].get(k, float("nan")),
                   "r_hat": diagnostics["r_hat"].get(k, float("nan"))}
    attrs = {"divergences": diagnostics["divergences"],
             "warning": (f"{diagnostics['divergences']} divergent transitions" if diagnostics["divergences"] else "")}
    try:
        import pandas as pd
    except ImportError:
        rows["attrs"] = attrs
        return rows
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.attrs.update(attrs)
    return df


def _dist_repr(d) -> str:
    params = {k: np.asarray(getattr(d, k)).tolist() for k in getattr(d, "arg_constraints", {}) if hasattr(d, k)}
    if hasattr(d, "base_dist"):
        return f"{type(d).__name__}({_dist_repr(d.base_dist)}, support={d.support})"
    return f"{type(d).__name__}({', '.join(f'{k}={v}' for k, v in params.items())})"


def _spec_dict(spec: ModelSpec) -> dict:
    return {"lines": list(spec.lines), "calibration": spec.calibration, "ny": spec.ny, "nx": spec.nx,
            "pixel_scale": spec.pixel_scale, "oversample": spec.oversample, "psf_model": spec.psf_model,
            "dust_law": spec.dust_law, "use_logu": spec.use_logu, "cosmology": list(spec.cosmology)}


def _make_idata(gm: GalaxyModel, run, config: dict, obs: Obs):
    try:
        import arviz as az
    except ImportError:
        return None
    data = gm.data
    st = run.stats
    plane = "line" if data.kind == "maps" else "channel"
    from jaxgrad.instrument.grid import pixel_offsets

    # sky coordinates of the pixel axes: offsets from the field centre in arcsec (x to the
    # West/right, y to the North/up, as the model's x0, y0)
    coords = {plane: list(data.spec.lines) if data.kind == "maps" else np.arange(data.maps.shape[0]),
              "y": pixel_offsets(data.spec.ny, data.spec.pixel_scale),
              "x": pixel_offsets(data.spec.nx, data.spec.pixel_scale)}
    n_c, n_s = st["num_steps"].shape
    const = {"errs": np.asarray(data.errs), "errs_eff": np.asarray(gm.obs.err),
             "mask": np.asarray(data.mask, np.int8), "sigma_ln": np.asarray(gm.sigma_ln)}
    for k, v in gm.base._asdict().items():
        if k not in gm.priors:
            const[f"fixed_{k}"] = np.asarray(v, float)
    idata = az.from_dict(
        posterior={k: run.samples[k] for k in gm.names},
        sample_stats={
            "diverging": st["diverging"].astype(bool),
            "n_steps": st["num_steps"],
            "acceptance_rate": st["accept_prob"],
            "energy": st["energy"],
            "lp": -st["potential_energy"],
            "step_size": np.broadcast_to(st["step_size"][:, None], (n_c, n_s)),
        },
        observed_data={"maps": np.asarray(data.maps)},
        constant_data=const,
        coords=coords,
        dims={"maps": [plane, "y", "x"], "errs": [plane, "y", "x"], "errs_eff": [plane, "y", "x"],
              "mask": [plane, "y", "x"],
              "sigma_ln": [plane]},
        attrs={"config": json.dumps(config), "jaxgrad_model": "galaxy_forward"},
    )
    return idata


def fit_galaxy(data: GalaxyData, priors=None, fixed=None, *, num_warmup: int = 500,
               num_samples: int = 1000, num_chains: int = 2, seed: int = 0,
               cal_scatter="calibration", branch: str = "auto", dense_mass: bool = True,
               scatter_model: str = "pixel",
               max_tree_depth: int = 8, target_accept_prob: float = 0.85,
               n_map_starts: int = 3, segment: int | None = None) -> FitResult:
    """Fit one galaxy's maps (or cube) with the forward model and NUTS.

    Steps: resolve and validate priors (ValueError before any sampling), pick the
    calibration branch (``branch="auto"``, see the module docstring), MAP with optax
    Adam + Newton from ``n_map_starts`` starts (after a first, scatter-free pass that sets
    the calibration-scatter variance, see :mod:`jaxgrad.inference.likelihood`), NUTS
    started at the MAP (further chains from the Laplace approximation) with the inverse
    Hessian as initial mass matrix, then diagnostics and an ArviZ InferenceData.

    Args:
        data: :class:`GalaxyData`.
        priors: name -> numpyro distribution, merged over
            :func:`~jaxgrad.inference.priors.default_priors` (None removes a default).
        fixed: name -> value of parameters held fixed (overrides ``data.known``).
        num_warmup, num_samples, num_chains: NUTS settings (chains run one after the
            other through one compiled sampler; two by default, so R-hat compares chains).
        seed: integer seed of the PRNG key.
        cal_scatter: calibration-scatter values (see :mod:`jaxgrad.inference.likelihood`).
        scatter_model: ``"pixel"`` or ``"coherent"`` (one sampled offset per line:
            see :mod:`jaxgrad.inference.likelihood`).
        branch: ``"auto"``, ``"lower"``, ``"upper"`` or ``"none"``.
        dense_mass: dense (default) or diagonal mass matrix.
        max_tree_depth, target_accept_prob: NUTS settings.
        n_map_starts: starts for the MAP (prior median + prior draws; plus one per
            branch when the branch is chosen automatically).
        segment: NUTS in compiled segments of this many iterations with a progress line
            after each (logger ``jaxgrad``, INFO); None: one call per chain.

    Returns:
        :class:`FitResult`. Divergences raise a
        :class:`~jaxgrad.inference.sampler.DivergenceWarning` and are counted in
        ``diagnostics["divergences"]`` and ``summary.attrs``.
    """
    if branch not in _pri.BRANCHES:
        raise ValueError(f"branch must be one of {_pri.BRANCHES}, got {branch!r}")
    for nm, v in (("num_warmup", num_warmup), ("num_samples", num_samples), ("num_chains", num_chains)):
        if int(v) != v or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    key = jax.random.key(seed)
    k_map, k_nuts = jax.random.split(key)
    spec = data.spec
    gm0 = build_galaxy_model(data, priors, fixed, cal_scatter, None, scatter_model=scatter_model)
    candidates = [None]
    if "logoh0" in gm0.priors:
        if branch == "auto" and _pri.turnover(spec) is not None and not _pri.branch_breaking(spec):
            candidates = ["lower", "upper"]
        elif branch in ("lower", "upper"):
            candidates = [branch]
    turn = _pri.turnover(spec)
    branch_values = ()
    if candidates != [None]:
        a, b = _pri.box_bounds(gm0.priors["logoh0"])
        branch_values = tuple(v for v in (0.5 * (a + turn), 0.5 * (turn + b)) if a < v < b)
    vg = gm0.vg()
    t0 = time.perf_counter()
    starts = _map_starts(gm0, k_map, n_map_starts, branch_values)
    _log.info("fit_galaxy %r: MAP from %d start(s) over %d parameters (compiling the model first)",
              data.name, len(starts), len(gm0.names))
    n_evals = 0
    if np.any(gm0.sigma_ln > 0):
        # pass 1: noise-only MAP -> reference model for the calibration-scatter variance
        obs_raw = gm0.data.obs()
        first = [find_map(lambda u: vg(u, obs_raw), s0) for s0 in starts]
        n_evals += sum(m.num_evals for m in first)
        ok1 = [m for m in first if np.isfinite(m.value)]
        if not ok1:
            raise RuntimeError(f"galaxy {data.name!r}: every MAP start gave a non-finite potential")
        best1 = min(ok1, key=lambda m: m.value)
        # cross-fitted reference (each checkerboard half's variance from a fit to the
        # other half), so no pixel's variance depends on its own noise
        halves = [find_map(lambda u, h=h: vg(u, h), best1.x, **POLISH) for h in checkerboard_halves(obs_raw)]
        n_evals += sum(m.num_evals for m in halves)
        on, off = (gm0.params_from(gm0.flat.constrain(jnp.asarray(h.x if np.isfinite(h.value) else best1.x),
                                                      obs_raw)) for h in halves)
        gm0 = gm0.with_reference(on, off)
        # pass 2 starts from the distinct pass-1 modes: the scatter term moves a mode by
        # about its width, which Newton steps cover (Adam from a mode only jitters)
        starts = distinct_rows([np.asarray(m.x) for m in sorted(ok1, key=lambda m: m.value)])
        polish = POLISH
    else:
        polish = {}
    obs = gm0.obs
    maps = [find_map(lambda u: vg(u, obs), s0, **polish) for s0 in starts]
    n_evals += sum(m.num_evals for m in maps)
    t_map = time.perf_counter() - t0
    ok = [m for m in maps if np.isfinite(m.value)]
    if not ok:
        raise RuntimeError(f"galaxy {data.name!r}: every MAP start gave a non-finite potential")
    best = {}
    for m in ok:
        z = float(gm0.flat.constrain(jnp.asarray(m.x), obs)["logoh0"]) if "logoh0" in gm0.names else None
        br = None if candidates == [None] else ("lower" if z <= turn else "upper")
        if br in candidates and (br not in best or m.value < best[br].value):
            best[br] = m
    if not best:  # a requested branch was never reached
        best = {candidates[0]: min(ok, key=lambda m: m.value)}
    chosen = min(best, key=lambda br: best[br].value)
    m = best[chosen]
    if len(best) == 2:
        dlp = abs(best["lower"].value - best["upper"].value)
        if dlp < 2.0:
            warnings.warn(
                f"galaxy {data.name!r}: the {chosen} branch is preferred by only Δlog p = {dlp:.2f}; "
                "add a branch-breaking line (e.g. [OII] or [NII]) or choose branch= explicitly",
                BranchWarning, stacklevel=2)
    if chosen is None:
        gm, u_map, cov = gm0, m.x, m.cov
    else:
        gm = replace(build_galaxy_model(data, priors, fixed, cal_scatter, chosen, scatter_model=scatter_model),
                     obs=obs)
        u_map, cov = _to_coords(gm0, gm, m.x, m.cov)
    u_map = jnp.asarray(u_map, gm.flat.u_init.dtype)
    _log.info("fit_galaxy %r: MAP done in %.1f s (%d evaluations); compiling NUTS, then %d chain(s) x (%d + %d)",
              data.name, t_map, n_evals, num_chains, num_warmup, num_samples)
    run = nuts_from_map(gm.flat, (obs,), key=k_nuts, u_map=u_map, cov=cov, num_warmup=num_warmup,
                        num_samples=num_samples, num_chains=num_chains, dense_mass=dense_mass,
                        max_tree_depth=max_tree_depth, target_accept_prob=target_accept_prob,
                        segment=segment)
    diag = diagnose(run, gm.names, max_tree_depth, key_param="grad_z" if "grad_z" in gm.names else None)
    map_vals = {k: float(v) for k, v in gm.flat.constrain(u_map, obs).items() if k in gm.names}
    diag.update({"branch": gm.branch, "map_evals": int(n_evals),
                 "map_s": t_map, "map_grad_norm": float(m.grad_norm), "map_potential": float(m.value),
                 "n_bad_masked": data.n_bad_masked,
                 "frac_z_out_of_range": _frac_out_of_range(gm, run.samples)})
    config = {"name": data.name, "kind": data.kind, "spec": _spec_dict(spec),
              "priors": {k: _dist_repr(v) for k, v in gm.priors.items()},
              "fixed": {k: float(np.asarray(v)) for k, v in gm.fixed.items()},
              "known": {k: float(np.asarray(v)) for k, v in data.known.items()},
              "cal_scatter": {k: list(v) for k, v in gm.scatter_used.items()},
              "scatter_model": scatter_model,
              "sampler": {"num_warmup": num_warmup, "num_samples": num_samples, "num_chains": num_chains,
                          "dense_mass": dense_mass, "max_tree_depth": max_tree_depth,
                          "target_accept_prob": target_accept_prob, "seed": seed},
              "branch": gm.branch, "map": map_vals}
    samples = {k: run.samples[k] for k in gm.names}
    summ = summary_table(samples, gm.names, diag)
    idata = _make_idata(gm, run, config, obs)
    return FitResult(idata, summ, diag, map_vals, samples, config, gm)


def _frac_out_of_range(gm: GalaxyModel, samples: dict) -> float:
    """Fraction of draws whose log Z(r) leaves the valid range within 2 R_e."""
    lo, hi = logoh_range(gm.data.spec)
    get = lambda k: np.asarray(samples[k]) if k in samples else float(np.asarray(getattr(gm.base, k)))  # noqa: E731
    z0, g, re = get("logoh0"), get("grad_z"), get("r_e")
    z2 = z0 + g * 2.0 * re
    bad = (np.minimum(z0, z2) < lo - 1e-6) | (np.maximum(z0, z2) > hi + 1e-6)
    return float(np.mean(np.broadcast_to(bad, np.shape(samples[next(iter(samples))]))))
