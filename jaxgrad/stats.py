"""Population statistics for samples of metallicity gradients (docs/science.md §8).

Median with a bootstrap error, Kendall's τ with bootstrap and jack-knife intervals, 1D and
2D Kolmogorov–Smirnov tests, the Theil–Sen slope, linear regression with errors on both
axes and intrinsic scatter (Kelly 2007, "linmix") and Paper B's double power law for the
redshift evolution of the gradient.

The rank statistics and the KS tests are NumPy/SciPy (float64, deterministic given the
seed). Only the two Bayesian fits use JAX: ``linmix`` is a small NumPyro model sampled with
NUTS, and ``fit_double_power_law`` evaluates one jitted log density for both NUTS and
emcee. Random numbers come from ``numpy.random.default_rng(seed)`` or
``jax.random.key(seed)``; nothing touches a global RNG.

Units follow the data: gradients in dex/kpc, redshift dimensionless.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import scipy.optimize
import scipy.special
import scipy.stats
from numpyro.infer.util import potential_energy

from jaxgrad._nuts import nuts_chain

__all__ = [
    "bootstrap_median",
    "kendall_tau",
    "ks_2samp",
    "ks_2d",
    "theil_sen",
    "linmix",
    "fit_double_power_law",
]


# --------------------------------------------------------------------------- validation


def _as_1d(name: str, values, min_size: int = 1) -> np.ndarray:
    """Return ``values`` as a finite 1-D float64 array or raise a ValueError naming it."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name}: expected at least {min_size} values, got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{name}: expected finite values, got {arr[bad[0]]} at index {bad[0]} "
            f"({bad.size} non-finite value(s) in total)"
        )
    return arr


def _same_length(**arrays: np.ndarray) -> None:
    sizes = {k: v.size for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"expected arrays of equal length, got sizes {sizes}")


def _positive_int(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------- bootstrap median


def bootstrap_median(values, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Sample median and its bootstrap standard error.

    Args:
        values: sample, shape [n_obs], any unit. NaNs are rejected, not skipped.
        n: number of bootstrap resamples (with replacement, size n_obs each).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``(median, err)`` in the unit of ``values``: the median of the sample and the
        standard deviation (ddof=1) of the ``n`` bootstrap medians.

    Raises:
        ValueError: if ``values`` is not 1-D, is empty or holds a NaN/inf, or ``n`` < 2.
    """
    x = _as_1d("values", values)
    n = _positive_int("n", n)
    if n < 2:
        raise ValueError(f"n: expected at least 2 bootstrap resamples, got {n}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n, x.size))
    medians = np.median(x[idx], axis=1)
    return float(np.median(x)), float(np.std(medians, ddof=1))


# ------------------------------------------------------------------------ Kendall's tau


def _tau_b_batch(
    x: np.ndarray, y: np.ndarray, max_elements: int = 4_000_000
) -> np.ndarray:
    """Kendall's tau-b of each row pair of ``x`` and ``y``, both shape [n_sets, n].

    tau_b = Σ_{i<j} sgn(Δx) sgn(Δy) / sqrt(N_x N_y), where N_x (N_y) is the number of
    pairs not tied in x (y); this is the statistic of ``scipy.stats.kendalltau``. Rows
    with every x (or y) tied give NaN. Work is chunked to ``max_elements`` pair entries.
    """
    n_sets, n = x.shape
    iu, ju = np.triu_indices(n, k=1)
    out = np.empty(n_sets)
    chunk = max(1, max_elements // max(iu.size, 1))
    for start in range(0, n_sets, chunk):
        sx = np.sign(x[start : start + chunk, iu] - x[start : start + chunk, ju])
        sy = np.sign(y[start : start + chunk, iu] - y[start : start + chunk, ju])
        s = np.sum(sx * sy, axis=1)
        denom = np.sqrt(np.sum(sx != 0, axis=1) * np.sum(sy != 0, axis=1).astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = np.where(denom > 0, s / denom, np.nan)
    return out


def kendall_tau(x, y, n_boot: int = 1000, seed: int = 0) -> dict:
    """Kendall's rank correlation (tau-b) with bootstrap and jack-knife intervals.

    ``tau`` and ``p`` are those of ``scipy.stats.kendalltau`` (default method: exact
    p-value for small samples without ties, asymptotic otherwise). The bootstrap resamples
    (x, y) pairs with replacement ``n_boot`` times; the jack-knife leaves out one pair at a
    time and uses the standard error sqrt((n-1)/n Σ (τ_(i) − mean τ_(·))²).

    Args:
        x: first variable, shape [n], n >= 3.
        y: second variable, shape [n].
        n_boot: number of bootstrap resamples.
        seed: seed of ``numpy.random.default_rng`` for the bootstrap.

    Returns:
        dict with ``tau``, ``p`` (two-sided), ``tau_lo``/``tau_hi`` (16th/84th percentile
        of the bootstrap taus), ``tau_jk_lo``/``tau_jk_hi`` (tau ∓ 1σ jack-knife) and
        ``tau_boot_sd`` (std of the bootstrap taus). Resamples in which every x or every y
        is tied have no tau and are left out of the bootstrap summaries.

    Raises:
        ValueError: on non-finite values, unequal lengths or fewer than 3 pairs.
    """
    x = _as_1d("x", x, min_size=3)
    y = _as_1d("y", y, min_size=3)
    _same_length(x=x, y=y)
    n_boot = _positive_int("n_boot", n_boot)
    res = scipy.stats.kendalltau(x, y)
    n = x.size

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boot = _tau_b_batch(x[idx], y[idx])
    boot = boot[np.isfinite(boot)]
    if boot.size < 2:
        raise ValueError(
            "x, y: every bootstrap resample is fully tied; tau is undefined"
        )

    keep = ~np.eye(n, dtype=bool)
    loo = np.broadcast_to(np.arange(n), (n, n))[keep].reshape(n, n - 1)
    jk = _tau_b_batch(x[loo], y[loo])
    jk_sd = math.sqrt((n - 1) / n * np.nansum((jk - np.nanmean(jk)) ** 2))

    tau = float(res.statistic)
    lo, hi = np.percentile(boot, [16.0, 84.0])
    return {
        "tau": tau,
        "p": float(res.pvalue),
        "tau_lo": float(lo),
        "tau_hi": float(hi),
        "tau_jk_lo": tau - jk_sd,
        "tau_jk_hi": tau + jk_sd,
        "tau_boot_sd": float(np.std(boot, ddof=1)),
    }


# ---------------------------------------------------------------------------- KS tests


def ks_2samp(a, b) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test; a thin wrapper of ``scipy.stats.ks_2samp``.

    Args:
        a: first sample, shape [n_a].
        b: second sample, shape [n_b].

    Returns:
        ``(D, p)``: the KS statistic and the two-sided p-value (SciPy's default method).
    """
    res = scipy.stats.ks_2samp(_as_1d("a", a), _as_1d("b", b))
    return float(res.statistic), float(res.pvalue)


def _quadrant_fractions(ox, oy, x, y, max_elements: int = 4_000_000) -> np.ndarray:
    """Fractions of the points (x, y) in the four quadrants around each origin (ox, oy).

    As ``quadct`` in Numerical Recipes: a point counts as "above" if y > oy and as
    "right" if x > ox, so ties (and the origin itself) go to the lower/left side.

    Returns:
        array, shape [n_origins, 4]: (upper-right, upper-left, lower-left, lower-right).
    """
    n = x.size
    out = np.empty((ox.size, 4))
    chunk = max(1, max_elements // n)
    for s in range(0, ox.size, chunk):
        above = y[None, :] > oy[s : s + chunk, None]
        right = x[None, :] > ox[s : s + chunk, None]
        na = np.sum(above & right, axis=1)
        nb = np.sum(above & ~right, axis=1)
        nd = np.sum(~above & right, axis=1)
        nc = n - na - nb - nd
        out[s : s + chunk] = np.stack([na, nb, nc, nd], axis=1) / n
    return out


def _pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; 0 for a sample with no spread in x or y (as NR ``pearsn`` with TINY)."""
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = np.sum(dx * dx), np.sum(dy * dy)
    if sxx == 0.0 or syy == 0.0:
        return 0.0
    return float(np.sum(dx * dy) / math.sqrt(sxx * syy))


def ks_2d(x1, y1, x2, y2) -> tuple[float, float]:
    """Two-dimensional two-sample Kolmogorov–Smirnov test.

    The statistic is that of Peacock (1983) in the form of Fasano & Franceschini (1987):
    each point of either sample in turn is the origin of four quadrants; D1 (D2) is the
    largest difference between the two samples' fractions in any quadrant over the origins
    taken from sample 1 (2), and D = (D1 + D2) / 2. The p-value is the approximation of
    Press et al., Numerical Recipes (``ks2d2s``):

        p = Q_KS( D sqrt(N) / (1 + sqrt(1 − (r1² + r2²)/2) (0.25 − 0.75/sqrt(N))) ),

    with N = n1 n2 / (n1 + n2), r1, r2 the Pearson correlations of the two samples and
    Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} exp(−2 j² λ²) (``scipy.special.kolmogorov``). NR warn
    that it is accurate for N ≳ 20 and p ≲ 0.2; larger p-values are only indicative.

    Args:
        x1, y1: first sample, shape [n1] each.
        x2, y2: second sample, shape [n2] each.

    Returns:
        ``(D, p)``.

    Raises:
        ValueError: on non-finite values or mismatched x/y lengths.
    """
    x1, y1 = _as_1d("x1", x1), _as_1d("y1", y1)
    x2, y2 = _as_1d("x2", x2), _as_1d("y2", y2)
    _same_length(x1=x1, y1=y1)
    _same_length(x2=x2, y2=y2)
    d1 = np.max(
        np.abs(
            _quadrant_fractions(x1, y1, x1, y1) - _quadrant_fractions(x1, y1, x2, y2)
        )
    )
    d2 = np.max(
        np.abs(
            _quadrant_fractions(x2, y2, x1, y1) - _quadrant_fractions(x2, y2, x2, y2)
        )
    )
    d = 0.5 * (d1 + d2)
    n1, n2 = x1.size, x2.size
    sqen = math.sqrt(n1 * n2 / (n1 + n2))
    r1, r2 = _pearson_r(x1, y1), _pearson_r(x2, y2)
    rr = math.sqrt(1.0 - 0.5 * (r1 * r1 + r2 * r2))
    p = scipy.special.kolmogorov(d * sqen / (1.0 + rr * (0.25 - 0.75 / sqen)))
    return float(d), float(p)


# -------------------------------------------------------------------------- Theil–Sen


def theil_sen(x, y, confidence: float = 0.95) -> dict:
    """Theil–Sen slope (median of pairwise slopes), as ``scipy.stats.theilslopes``.

    Args:
        x: independent variable, shape [n], n >= 2, not all equal.
        y: dependent variable, shape [n].
        confidence: two-sided confidence level of the slope interval (Sen 1968).

    Returns:
        dict with ``slope`` (unit of y per unit of x), ``intercept`` (unit of y; median of
        y − slope·x, SciPy's default), and ``slope_lo``/``slope_hi``, the bounds of the
        ``confidence`` interval on the slope.

    Raises:
        ValueError: on non-finite values, unequal lengths, constant x or a confidence
            outside (0, 1).
    """
    x = _as_1d("x", x, min_size=2)
    y = _as_1d("y", y, min_size=2)
    _same_length(x=x, y=y)
    if np.all(x == x[0]):
        raise ValueError("x: expected at least two distinct values, got a constant")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence}")
    res = scipy.stats.theilslopes(y, x, alpha=confidence)
    return {
        "slope": float(res.slope),
        "intercept": float(res.intercept),
        "slope_lo": float(res.low_slope),
        "slope_hi": float(res.high_slope),
    }


# ----------------------------------------------------------------------- NUTS driver


@partial(
    jax.jit,
    static_argnames=("potential_gen", "num_warmup", "num_samples", "dense_mass"),
)
def _run_nuts(
    key,
    init_params,
    args: tuple,
    *,
    potential_gen,
    num_warmup: int,
    num_samples: int,
    dense_mass: bool,
):
    """One NUTS chain (target acceptance 0.9) through NumPyro's functional ``hmc``
    kernel, warm-up and sampling in a single ``lax.scan``.

    The data travel as ``args`` and ``potential_gen`` is a module-level function, so
    this compiles once per (potential, data shapes, num_warmup, num_samples) and is
    reused by later calls (e.g. repeated fits of simulated data sets).

    Args:
        key: JAX PRNG key.
        init_params: starting point in the unconstrained space (array or pytree).
        args: data arrays passed to ``potential_gen``.
        potential_gen: ``potential_gen(*args)`` returns the potential energy function
            (negative log density in the unconstrained space).
        num_warmup: adaptation iterations (discarded).
        num_samples: draws kept.
        dense_mass: adapt a dense (True) or diagonal (False) mass matrix.

    Returns:
        (draws: pytree like ``init_params`` with a leading axis [num_samples];
        diverging: bool, shape [num_samples]).
    """
    out = nuts_chain(key, init_params, args, potential_gen=potential_gen, num_warmup=num_warmup,
                     num_samples=num_samples, dense_mass=dense_mass, target_accept_prob=0.9)
    return out.z, out.diverging


# ------------------------------------------------------------------------------ linmix


def _linmix_model(x_obs, y_obs, xerr, yerr):
    """Kelly (2007) regression with one Gaussian for the true x, in standardised units.

    Priors (the data are standardised, so these are weak): population of true x
    ~ N(mu_x, sigma_x) with mu_x ~ N(0, 10), sigma_x ~ HalfCauchy(5); intercept and slope
    ~ N(0, 10); intrinsic scatter in y ~ HalfCauchy(5). The true y is marginalised
    analytically: y_obs ~ N(alpha + beta x_true, sqrt(scatter² + yerr²)).
    """
    mu_x = numpyro.sample("mu_x", dist.Normal(0.0, 10.0))
    sigma_x = numpyro.sample("sigma_x", dist.HalfCauchy(5.0))
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0))
    scatter = numpyro.sample("scatter", dist.HalfCauchy(5.0))
    with numpyro.plate("data", x_obs.shape[0]):
        x_true = numpyro.sample("x_true", dist.Normal(mu_x, sigma_x))
        numpyro.sample("x_obs", dist.Normal(x_true, xerr), obs=x_obs)
        y_sd = jnp.sqrt(scatter**2 + yerr**2)
        numpyro.sample("y_obs", dist.Normal(alpha + beta * x_true, y_sd), obs=y_obs)


def _linmix_potential_gen(x_obs, y_obs, xerr, yerr):
    """Potential energy of ``_linmix_model`` over its unconstrained sites (positive sites
    as their log), for the given standardised data."""
    args = (x_obs, y_obs, xerr, yerr)
    return lambda params: potential_energy(_linmix_model, args, {}, params)


def linmix(
    x,
    y,
    xerr,
    yerr,
    seed: int = 0,
    num_warmup: int = 1000,
    num_samples: int = 2000,
) -> dict:
    """Linear regression with errors in x and y and intrinsic scatter (Kelly 2007).

    Model: y_true = intercept + slope · x_true + ε, ε ~ N(0, scatter²); the true x are
    latent and drawn from one Gaussian population (Kelly's mixture with K = 1);
    x_obs ~ N(x_true, xerr²), y_obs ~ N(y_true, yerr²), measurement errors independent.
    x and y are standardised internally (sample mean and std) and the samples are
    transformed back, so every result is in the units of the inputs. Sampled with NumPyro's
    NUTS kernel (one chain, diagonal mass matrix, started at the observed x); priors are
    listed in ``_linmix_model``.

    Args:
        x: measured x, shape [n], n >= 3.
        y: measured y, shape [n].
        xerr: 1σ errors on x, shape [n] or scalar, > 0 (use a tiny value for exact x).
        yerr: 1σ errors on y, shape [n] or scalar, >= 0.
        seed: seed of the JAX PRNG key.
        num_warmup: NUTS warm-up iterations.
        num_samples: posterior draws kept.

    Returns:
        dict with posterior medians ``slope`` (unit y / unit x), ``intercept`` (unit y),
        ``scatter`` (unit y), their posterior standard deviations ``slope_sd``,
        ``intercept_sd``, ``scatter_sd``, ``samples`` (dict of arrays of shape
        [num_samples] for ``slope``, ``intercept``, ``scatter``) and ``divergences``.

    Raises:
        ValueError: on non-finite values, unequal lengths, non-positive xerr, negative
            yerr, or x/y without spread.
    """
    x = _as_1d("x", x, min_size=3)
    y = _as_1d("y", y, min_size=3)
    xerr = _as_1d("xerr", np.broadcast_to(np.asarray(xerr, float), x.shape))
    yerr = _as_1d("yerr", np.broadcast_to(np.asarray(yerr, float), y.shape))
    _same_length(x=x, y=y, xerr=xerr, yerr=yerr)
    if np.any(xerr <= 0):
        i = int(np.flatnonzero(xerr <= 0)[0])
        raise ValueError(f"xerr: expected errors > 0, got {xerr[i]} at index {i}")
    if np.any(yerr < 0):
        i = int(np.flatnonzero(yerr < 0)[0])
        raise ValueError(f"yerr: expected errors >= 0, got {yerr[i]} at index {i}")
    mx, sx, my, sy = x.mean(), x.std(), y.mean(), y.std()
    for name, s in (("x", sx), ("y", sy)):
        if s == 0:
            raise ValueError(
                f"{name}: expected values with some spread, got a constant"
            )

    num_warmup = _positive_int("num_warmup", num_warmup)
    num_samples = _positive_int("num_samples", num_samples)
    args = tuple(
        jnp.asarray(a) for a in ((x - mx) / sx, (y - my) / sy, xerr / sx, yerr / sy)
    )
    zero = jnp.zeros((), dtype=args[0].dtype)
    init = {
        "mu_x": zero,
        "sigma_x": zero,  # log(1): positive sites are sampled as their log
        "alpha": zero,
        "beta": zero,
        "scatter": zero + jnp.log(0.5),
        "x_true": args[0],
    }
    draws, diverging = _run_nuts(
        jax.random.key(seed),
        init,
        args,
        potential_gen=_linmix_potential_gen,
        num_warmup=num_warmup,
        num_samples=num_samples,
        dense_mass=False,
    )
    post = {k: np.asarray(v, dtype=np.float64) for k, v in draws.items()}
    post["scatter"] = np.exp(post["scatter"])
    slope = post["beta"] * sy / sx
    samples = {
        "slope": slope,
        "intercept": my + sy * post["alpha"] - slope * mx,
        "scatter": sy * post["scatter"],
    }
    out: dict = {}
    for k, v in samples.items():
        out[k] = float(np.median(v))
        out[f"{k}_sd"] = float(np.std(v))
    out["samples"] = samples
    out["divergences"] = int(np.sum(diverging))
    return out


# ------------------------------------------------------------------ double power law

#: Flat-prior box of (γ0, γ1, γ2, γ3, γ4), Paper B; shape [5, 2] = (low, high).
_DPL_BOUNDS = np.array(
    [[-10.0, 10.0], [-1.0, 1.0], [0.0, 10.0], [-10.0, 10.0], [-10.0, 10.0]]
)
_DPL_NAMES = ("gamma0", "gamma1", "gamma2", "gamma3", "gamma4")


def _double_power_law(gamma, z):
    """∇Z(z) = γ0 (1+z)^γ1 / (1 + ((1+z)/γ2)^γ3) − γ4; gamma shape [5], z shape [n]."""
    zp = 1.0 + z
    return gamma[0] * zp ** gamma[1] / (1.0 + (zp / gamma[2]) ** gamma[3]) - gamma[4]


def _dpl_log_density_single(gamma, z, grad, grad_err):
    """Log posterior (up to a constant) of the double power law: flat priors in the box
    ``_DPL_BOUNDS`` and a Gaussian likelihood. −inf outside the box or where the model is
    not finite. gamma shape [5]; z, grad, grad_err shape [n]."""
    lo, hi = _DPL_BOUNDS[:, 0], _DPL_BOUNDS[:, 1]
    inside = jnp.all((gamma >= lo) & (gamma <= hi)) & (gamma[2] > 0)
    safe = jnp.where(inside, gamma, jnp.asarray((lo + hi) / 2, dtype=gamma.dtype))
    resid = (grad - _double_power_law(safe, z)) / grad_err
    loglike = -0.5 * jnp.sum(resid * resid)
    ok = inside & jnp.isfinite(loglike)
    return jnp.where(ok, loglike, -jnp.inf)


#: The one log density shared by both samplers: jitted, vectorised over a batch of
#: parameter vectors gamma of shape [n_batch, 5] (emcee walkers, or a batch of one).
_dpl_log_density = jax.jit(
    jax.vmap(_dpl_log_density_single, in_axes=(0, None, None, None))
)


def _to_gamma(u):
    """Unconstrained u (shape [..., 5]) -> gamma in the prior box, and log|dγ/du|."""
    lo, hi = _DPL_BOUNDS[:, 0], _DPL_BOUNDS[:, 1]
    s = jax.nn.sigmoid(u)
    log_jac = jnp.sum(
        jnp.log(hi - lo) + jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u), -1
    )
    return lo + (hi - lo) * s, log_jac


def _to_u(gamma: np.ndarray) -> np.ndarray:
    """Inverse of ``_to_gamma`` (NumPy): γ strictly inside the box -> u, shape [5]."""
    lo, hi = _DPL_BOUNDS[:, 0], _DPL_BOUNDS[:, 1]
    return scipy.special.logit((gamma - lo) / (hi - lo))


def _dpl_potential(u, z, grad, grad_err):
    """NUTS potential in the unconstrained space: −(log density(γ(u)) + log|dγ/du|)."""
    gamma, log_jac = _to_gamma(u)
    return -(_dpl_log_density(gamma[None, :], z, grad, grad_err)[0] + log_jac)


def _dpl_potential_gen(z, grad, grad_err):
    """Potential of u for the given data (NumPyro's ``potential_fn_gen`` protocol)."""
    return lambda u: _dpl_potential(u, z, grad, grad_err)


def _dpl_start(z, grad, grad_err, rng: np.random.Generator, n_starts: int = 16):
    """Bounded least-squares solution (SciPy trust-region reflective, float64 NumPy) from
    ``n_starts`` random starts in the prior box; the common starting point of both
    samplers, returned as γ (shape [5]) strictly inside the box."""
    lo, hi = _DPL_BOUNDS[:, 0], _DPL_BOUNDS[:, 1]
    lo_open = lo + 1e-6 * (hi - lo)
    hi_open = hi - 1e-6 * (hi - lo)

    def resid(gamma):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            r = (grad - _double_power_law(gamma, z)) / grad_err
        return np.where(np.isfinite(r), r, 1e10)

    best, best_cost = None, np.inf
    for g0 in rng.uniform(lo_open, hi_open, size=(n_starts, 5)):
        res = scipy.optimize.least_squares(resid, g0, bounds=(lo_open, hi_open))
        if res.cost < best_cost:
            best, best_cost = res.x, res.cost
    return np.clip(best, lo_open, hi_open)


def fit_double_power_law(
    z,
    grad,
    grad_err,
    seed: int = 0,
    method: str = "nuts",
    num_warmup: int = 1000,
    num_samples: int = 2000,
    n_walkers: int = 32,
) -> dict:
    """Fit Paper B's double power law for the redshift evolution of the gradient.

    Model: ∇Z(z) = γ0 (1+z)^γ1 / (1 + ((1+z)/γ2)^γ3) − γ4, flat priors γ0 ∈ U(−10, 10),
    γ1 ∈ U(−1, 1), γ2 ∈ U(0, 10), γ3 ∈ U(−10, 10), γ4 ∈ U(−10, 10), Gaussian likelihood
    with the given errors. Both samplers evaluate the same jitted log density
    (``_dpl_log_density``) and start from the same point, the best of 16 bounded
    least-squares fits from random starts (Paper A starts emcee at the least-squares
    solution too):

    * ``"nuts"``: NumPyro NUTS, one chain, on u with γ = low + (high − low)·sigmoid(u)
      (the log-Jacobian is added to the log density); ``num_samples`` draws kept.
    * ``"emcee"``: the affine-invariant ensemble sampler, ``n_walkers`` walkers in a tiny
      ball around the start; ``num_warmup`` steps discarded, then ``num_samples`` steps
      kept per walker (``n_walkers * num_samples`` draws).

    The posterior can be multi-modal or bounded by the prior box when the data do not
    cover the turnover; check ``samples``.

    Args:
        z: redshifts, shape [n].
        grad: gradients, shape [n], dex/kpc.
        grad_err: 1σ errors on ``grad``, shape [n] or scalar, dex/kpc, > 0.
        seed: seed of the JAX key (NUTS), of the emcee RandomState and of the starts.
        method: ``"nuts"`` or ``"emcee"`` (needs the optional ``emcee`` package).
        num_warmup: NUTS warm-up iterations, or emcee burn-in steps.
        num_samples: NUTS draws, or emcee steps kept per walker.
        n_walkers: emcee walkers (>= 10, the dimension is 5).

    Returns:
        dict with posterior medians ``gamma0`` … ``gamma4`` and standard deviations
        ``gamma0_sd`` … ``gamma4_sd`` (γ0, γ4 in dex/kpc; γ1, γ3 dimensionless; γ2 in
        units of 1+z), ``samples`` (shape [n_draws, 5]), ``method``, and ``divergences``
        (NUTS) or ``acceptance_fraction`` (emcee, mean over walkers).

    Raises:
        ValueError: on bad inputs or an unknown ``method``.
    """
    z = _as_1d("z", z, min_size=5)
    grad = _as_1d("grad", grad, min_size=5)
    grad_err = _as_1d(
        "grad_err", np.broadcast_to(np.asarray(grad_err, float), grad.shape)
    )
    _same_length(z=z, grad=grad, grad_err=grad_err)
    if np.any(z <= -1):
        raise ValueError(f"z: expected redshifts > -1, got min {z.min()}")
    if np.any(grad_err <= 0):
        i = int(np.flatnonzero(grad_err <= 0)[0])
        raise ValueError(
            f"grad_err: expected errors > 0, got {grad_err[i]} at index {i}"
        )
    if method not in ("nuts", "emcee"):
        raise ValueError(f"method: expected 'nuts' or 'emcee', got {method!r}")
    num_warmup = _positive_int("num_warmup", num_warmup)
    num_samples = _positive_int("num_samples", num_samples)

    start = _dpl_start(z, grad, grad_err, np.random.default_rng(seed))
    data = tuple(jnp.asarray(a) for a in (z, grad, grad_err))
    out: dict = {"method": method}
    if method == "nuts":
        draws, diverging = _run_nuts(
            jax.random.key(seed),
            jnp.asarray(_to_u(start), dtype=data[0].dtype),
            data,
            potential_gen=_dpl_potential_gen,
            num_warmup=num_warmup,
            num_samples=num_samples,
            dense_mass=True,
        )
        samples = np.asarray(_to_gamma(draws)[0], dtype=np.float64)
        out["divergences"] = int(np.sum(diverging))
    else:
        n_walkers = _positive_int("n_walkers", n_walkers)
        if n_walkers < 10:
            raise ValueError(
                f"n_walkers: expected >= 10 (2 × 5 parameters), got {n_walkers}"
            )
        import emcee  # optional dependency (the ``test``/``bench`` extras)

        rng = np.random.default_rng(seed)
        width = _DPL_BOUNDS[:, 1] - _DPL_BOUNDS[:, 0]
        p0 = start + 1e-4 * width * rng.standard_normal((n_walkers, 5))
        p0 = np.clip(
            p0, _DPL_BOUNDS[:, 0] + 1e-6 * width, _DPL_BOUNDS[:, 1] - 1e-6 * width
        )

        def log_prob(gammas):
            return np.asarray(_dpl_log_density(gammas, *data), dtype=np.float64)

        sampler = emcee.EnsembleSampler(n_walkers, 5, log_prob, vectorize=True)
        sampler.random_state = np.random.RandomState(seed).get_state()
        sampler.run_mcmc(p0, num_warmup + num_samples, progress=False)
        samples = sampler.get_chain(discard=num_warmup, flat=True)
        out["acceptance_fraction"] = float(np.mean(sampler.acceptance_fraction))

    for i, name in enumerate(_DPL_NAMES):
        out[name] = float(np.median(samples[:, i]))
        out[f"{name}_sd"] = float(np.std(samples[:, i]))
    out["samples"] = samples
    return out
