"""Priors of the single-galaxy model: defaults, overrides, range and branch checks.

Priors are a plain ``dict`` mapping :class:`~jaxgrad.forward.GalaxyParams` field names
to NumPyro distributions; a parameter is sampled iff it has a prior and is not in the
``fixed`` dict. User priors are merged over :func:`default_priors` (a value of ``None``
removes a default, i.e. fixes that parameter at its known value).

Defaults (units as in :mod:`jaxgrad.forward`; data-derived scales are computed once
from the data, see :meth:`GalaxyData.flux_scale` and :meth:`GalaxyData.radius_stats`):

====================  =============================================================
``logoh0``            :class:`SoftUniform` over the range where every diagnostic the
                      lines use is valid (:func:`~jaxgrad.inference.data.logoh_range`)
                      with Gaussian shoulders of 0.05 dex, restricted to one branch of
                      a double-valued calibration when no line breaks the degeneracy
                      (see :func:`branch_breaking`). Real support, so a posterior near
                      a range edge is not squeezed by a logit transform (a hard
                      Uniform gives NUTS a skewed, exponentially tailed coordinate).
``grad_z``            Normal(0, 0.5) dex/kpc (weakly informative: observed |∇Z| < 0.5).
``flux_hb``           LogNormal(ln F, 1) around the data's Hβ-flux scale F (sampled in
                      log space: additive with the log line ratios, so flux and
                      metallicity decouple).
``r_e``               LogNormal(ln R, 0.7) around the PSF-corrected moment radius R.
``sersic_n``          TruncatedNormal(1, 1, low=0.5, high=4).
``av``                HalfNormal(1) mag, only when ≥ 2 Balmer lines are modelled
                      (otherwise fixed: the data cannot separate A_V from log Z).
everything else       fixed at ``GalaxyData.known`` (log U, its slope, geometry, PSF,
                      kinematics, z). Add a prior to sample it, e.g.
                      ``{"logu": dist.Uniform(-3.5, -1.5), "psf_fwhm": dist.Uniform(0.15, 0.25)}``.
====================  =============================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions import truncated as _trunc

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines
from jaxgrad.forward import GalaxyParams, ModelSpec
from jaxgrad.inference.data import GalaxyData, data_scales, logoh_range

_TRUNCATED = (_trunc.LeftTruncatedDistribution, _trunc.RightTruncatedDistribution,
              _trunc.TwoSidedTruncatedDistribution)

__all__ = [
    "BRANCHES",
    "SoftUniform",
    "box_bounds",
    "branch_breaking",
    "default_priors",
    "prior_defaults",
    "restrict_branch",
    "resolve_priors",
    "support_bounds",
    "turnover",
]

BRANCHES = ("auto", "lower", "upper", "none")
SOFTNESS_DEX = 0.05


class SoftUniform(dist.Distribution):
    """Flat on [low, high] with Gaussian shoulders of width ``softness`` outside.

    log p(x) = −½ (d/s)² − log(high − low + s√(2π)), d = distance outside [low, high].
    Real support (no transform), continuous first derivative: a box prior NUTS can
    sample near its edges. Branch restrictions and valid ranges use this form.
    """

    arg_constraints = {"low": constraints.real, "high": constraints.real,
                       "softness": constraints.positive}
    support = constraints.real
    reparametrized_params = ["low", "high", "softness"]

    def __init__(self, low, high, softness=SOFTNESS_DEX, *, validate_args=None):
        self.low, self.high, self.softness = jnp.broadcast_arrays(
            jnp.asarray(low, float), jnp.asarray(high, float), jnp.asarray(softness, float))
        super().__init__(batch_shape=jnp.shape(self.low), validate_args=validate_args)

    @property
    def _norm(self):
        return self.high - self.low + self.softness * math.sqrt(2 * math.pi)

    def log_prob(self, value):
        d = jnp.maximum(jnp.maximum(self.low - value, value - self.high), 0.0)
        return -0.5 * (d / self.softness) ** 2 - jnp.log(self._norm)

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        k1, k2, k3 = jax.random.split(key, 3)
        w = self.high - self.low
        u = jax.random.uniform(k1, shape) * self._norm
        below = jax.random.uniform(k2, shape) < 0.5
        h = jnp.abs(jax.random.normal(k3, shape)) * self.softness
        return jnp.where(u < w, self.low + u, jnp.where(below, self.low - h, self.high + h))

    @property
    def mean(self):
        return 0.5 * (self.low + self.high)

    def icdf(self, q):
        if not np.allclose(np.asarray(q), 0.5):
            raise NotImplementedError("SoftUniform.icdf is implemented for the median only")
        return self.mean


@jax.jit
def prior_medians(priors: dict, key=None) -> dict:
    """Median of each prior (arrays for batched priors; traceable). Where the icdf is not
    implemented: the mean, or with ``key`` the median of 31 draws. Compiled once per
    kinds and shapes of priors (NumPyro distributions are pytree arguments); eagerly,
    NumPyro's icdf of e.g. a TruncatedNormal runs op by op, ~40 small compilations
    (1.4 s) in a fresh process."""
    out = {}
    for k, d in priors.items():
        try:
            out[k] = d.icdf(np.full(d.batch_shape, 0.5))
        except (NotImplementedError, AttributeError):
            out[k] = d.mean if key is None else jnp.median(d.sample(key, (31,)), axis=0)
    return out


def medians(priors: dict) -> dict[str, np.ndarray]:
    """:func:`prior_medians` (mean fallback) as NumPy arrays."""
    return {k: np.asarray(v) for k, v in prior_medians(priors).items()}


def box_bounds(d) -> tuple[float, float]:
    """The flat part of a :class:`SoftUniform`, else :func:`support_bounds`."""
    if isinstance(d, SoftUniform):
        return float(np.asarray(d.low)), float(np.asarray(d.high))
    return support_bounds(d)


def turnover(spec: ModelSpec) -> float | None:
    """Lowest turnover (12+log(O/H)) of the diagnostics the spec's lines use, or None."""
    cal = _cal.get(spec.calibration)
    turns = [cal.turnover(d) for d in cal.diagnostics_for_lines(spec.lines)]
    turns = [t for t in turns if t is not None]
    return min(turns) if turns else None


def branch_breaking(spec: ModelSpec) -> bool:
    """True if some line of the spec is predicted by a diagnostic that is monotonic
    over its search range (e.g. O2 = [OII]/Hβ in Sanders+24, O32, N2), so the data
    themselves pick the branch of a double-valued one such as R3."""
    cal = _cal.get(spec.calibration)
    diags = cal.diagnostics_for_lines(spec.lines)
    return any(cal.turnover(d) is None for d in diags)


def default_priors(data: GalaxyData) -> dict:
    """Default priors for ``data`` (see the module docstring)."""
    flux, r_e, _ = data_scales([data])
    return prior_defaults(data.spec, float(flux[0]), float(r_e[0]))


def prior_defaults(spec: ModelSpec, flux_scale, r_e_guess) -> dict:
    """The default priors given data scales; with arrays ``[n]`` the flux and R_e priors
    are batched (one per galaxy, for the hierarchy)."""
    lo, hi = logoh_range(spec)
    pri = {
        "logoh0": SoftUniform(lo, hi, SOFTNESS_DEX),
        "grad_z": dist.Normal(0.0, 0.5),
        "flux_hb": dist.LogNormal(jnp.log(jnp.asarray(flux_scale, float)), 1.0),
        "r_e": dist.LogNormal(jnp.log(jnp.asarray(r_e_guess, float)), 0.7),
        "sersic_n": dist.TruncatedNormal(1.0, 1.0, low=0.5, high=4.0),
    }
    balmer = [n for n in spec.lines if n in _lines.CASE_B]
    if len(balmer) >= 2:
        pri["av"] = dist.HalfNormal(1.0)
    return pri


def support_bounds(d) -> tuple[float, float]:
    """(lower, upper) of a scalar distribution's support (±inf where unbounded)."""
    s = d.support
    if isinstance(s, constraints.independent):
        s = s.base_constraint
    lo = getattr(s, "lower_bound", -math.inf)
    hi = getattr(s, "upper_bound", math.inf)
    return float(np.asarray(lo)), float(np.asarray(hi))


def resolve_priors(data: GalaxyData, priors: Mapping | None, fixed: Mapping | None):
    """Merge user priors over the defaults and apply ``fixed``; validate before sampling.

    Returns:
        (priors dict of the sampled parameters, fixed-values dict).

    Raises:
        ValueError: an unknown parameter name, a non-distribution prior, a parameter both
            fixed and given a prior by the user, or a ``logoh0`` prior outside the
            calibration's valid range (see :func:`check_logoh_prior`).
    """
    priors = dict(priors or {})
    fixed = dict(fixed or {})
    for k in list(priors) + list(fixed):
        if k not in GalaxyParams._fields:
            raise ValueError(f"unknown parameter {k!r}; valid: {GalaxyParams._fields}")
    both = [k for k in fixed if priors.get(k) is not None]
    if both:
        raise ValueError(f"parameter(s) {both} are both fixed and given a prior; choose one")
    merged = default_priors(data)
    for k, v in priors.items():
        if v is None:
            merged.pop(k, None)
        elif not isinstance(v, dist.Distribution):
            raise ValueError(f"prior of {k!r} must be a numpyro Distribution (or None), got {type(v).__name__}")
        elif v.batch_shape or v.event_shape:
            raise ValueError(f"prior of {k!r} must be scalar, got batch {v.batch_shape} event {v.event_shape}")
        else:
            merged[k] = v
    for k in fixed:
        merged.pop(k, None)
    if "logoh0" in merged:
        merged["logoh0"] = check_logoh_prior(merged["logoh0"], data.spec)
    return merged, fixed


def check_logoh_prior(prior, spec: ModelSpec, tol: float = 1e-6):
    """Validate a 12+log(O/H) prior against the calibration's valid range.

    A prior with bounded support (or the box of a :class:`SoftUniform`) must lie inside
    the range; another unbounded one must have its median inside and is truncated to
    the range (Z0 outside it is an extrapolation of the calibration polynomials).

    Raises:
        ValueError: naming the prior, its support and the valid range.
    """
    lo, hi = logoh_range(spec)
    a, b = box_bounds(prior)
    where = f"the valid range [{lo}, {hi}] of {spec.calibration} for the lines {spec.lines}"
    if math.isfinite(a) and math.isfinite(b):
        if a < lo - tol or b > hi + tol:
            raise ValueError(f"logoh0 prior support [{a}, {b}] extends outside {where}")
        return prior
    med = float(medians({"logoh0": prior})["logoh0"])
    if not (lo <= med <= hi):
        raise ValueError(f"logoh0 prior (median {med:.3f}) lies outside {where}")
    if isinstance(prior, (dist.Normal, dist.Cauchy, dist.Laplace, dist.Logistic, dist.StudentT)):
        return dist.TruncatedDistribution(prior, low=lo, high=hi)
    raise ValueError(
        f"logoh0 prior {type(prior).__name__} has unbounded support; give one inside {where} "
        "(e.g. Uniform or TruncatedNormal)"
    )


def restrict_branch(prior, spec: ModelSpec, branch: str):
    """The logoh0 prior restricted to the ``"lower"`` or ``"upper"`` branch of the spec's
    double-valued diagnostic (below / above its turnover)."""
    t = turnover(spec)
    if t is None or branch not in ("lower", "upper"):
        return prior
    a, b = box_bounds(prior)
    lo, hi = (a, min(b, t)) if branch == "lower" else (max(a, t), b)
    if not lo < hi:
        raise ValueError(f"the logoh0 prior [{a}, {b}] has no support on the {branch} branch (turnover {t:.3f})")
    if isinstance(prior, SoftUniform):
        return SoftUniform(lo, hi, prior.softness)
    if isinstance(prior, dist.Uniform):
        return dist.Uniform(lo, hi)
    base = prior.base_dist if isinstance(prior, _TRUNCATED) else prior
    try:
        return dist.TruncatedDistribution(base, low=lo, high=hi)
    except (TypeError, ValueError, AttributeError):
        raise ValueError(
            f"cannot restrict a {type(prior).__name__} logoh0 prior to one branch; use "
            "Uniform/TruncatedNormal, or branch='none'"
        ) from None
