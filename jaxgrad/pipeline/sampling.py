"""MCMC versions of the pipeline's estimators (NumPyro NUTS, and emcee as in Paper A).

This is the only pipeline module that imports NumPyro or emcee (both lazily), in the
spirit of tinygp's ``numpyro_support``: the grid/WLS estimators in
:mod:`~jaxgrad.pipeline.metallicity` and :mod:`~jaxgrad.pipeline.gradient` are the
vectorised workhorses; these samplers give the same posteriors by MCMC for comparison
and for the tidy per-galaxy result (ArviZ InferenceData).

* :func:`method1_numpyro` — Method I per bin (all bins of a galaxy in one model, one
  independent 12+log(O/H) per bin; the same likelihood, diagnostics and support as
  :func:`~jaxgrad.pipeline.metallicity.method1_grid`).
* :func:`paper_b_numpyro` — Paper B's joint (Z, A_V, f_Hβ) per bin.
* :func:`fit_gradient_numpyro` — straight line through the bins with NUTS, flat priors.
* :func:`fit_gradient_emcee` — Paper A: emcee, 64 walkers × 2000 steps, first 500
  discarded, flat priors, walkers started in a tiny ball around the least-squares
  solution.

Random numbers: NumPyro functions take a JAX PRNG key first; emcee takes an integer seed
for a ``numpy.random.Generator`` (emcee's own state is seeded from it).
"""

from __future__ import annotations

import warnings
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import calibrations as _cal
from jaxgrad.pipeline import gradient as _grad
from jaxgrad.pipeline import metallicity as _met

__all__ = ["SamplerResult", "method1_numpyro", "paper_b_numpyro", "fit_gradient_numpyro",
           "fit_gradient_emcee", "to_inference_data"]

GRAD_BOUNDS = (-5.0, 5.0)   # dex/kpc, flat prior of the gradient fits
Z0_BOUNDS = (5.0, 11.0)     # dex, flat prior of Z0


class SamplerResult(NamedTuple):
    """Posterior samples and summaries.

    Fields:
        samples: dict name -> array ``[chains, draws, ...]`` (post warm-up / burn-in).
        median, lo, hi: dicts of the 50/16/84th percentiles per parameter.
        std: dict of posterior standard deviations.
        ess: dict of ArviZ bulk effective sample sizes (minimum over elements).
        wall_s: sampling wall time in seconds (compilation included for NumPyro).
        extra: sampler-specific information (acceptance fraction, autocorrelation...).
    """

    samples: dict
    median: dict
    lo: dict
    hi: dict
    std: dict
    ess: dict
    wall_s: float
    extra: dict


def _summarise(samples: dict, wall: float, extra: dict) -> SamplerResult:
    import arviz as az

    med, lo, hi, sd, ess = {}, {}, {}, {}, {}
    for k, v in samples.items():
        v = np.asarray(v)
        flat = v.reshape((-1,) + v.shape[2:])
        med[k] = np.median(flat, axis=0)
        lo[k], hi[k] = np.percentile(flat, [15.865525393145707, 84.13447460685429], axis=0)
        sd[k] = np.std(flat, axis=0)
        try:
            e = az.ess(az.convert_to_dataset({k: v}))[k].values
            ess[k] = float(np.nanmin(e)) if np.size(e) else float("nan")
        except Exception:  # pragma: no cover - ESS is a diagnostic only
            ess[k] = float("nan")
    return SamplerResult(samples, med, lo, hi, sd, ess, wall, extra)


def to_inference_data(results: dict[str, SamplerResult], n_bins: int | None = None):
    """Merge sampler results into one ArviZ ``InferenceData`` posterior group.

    Variables are prefixed by the result's key (e.g. ``"method1_logoh"``); per-bin
    variables get the dimension ``bin``. Chains must agree in number; draws may differ,
    so results are put in separate groups when needed (``posterior`` for the first,
    ``<key>`` groups for the others).
    """
    import arviz as az

    groups = {}
    for key, res in results.items():
        if res is None:
            continue
        post = {f"{key}_{k}": np.asarray(v) for k, v in res.samples.items()}
        dims = {name: ["bin"] for name, v in post.items() if v.ndim == 3}
        coords = {"bin": np.arange(next(v.shape[2] for v in post.values() if v.ndim == 3))} if dims else None
        groups[key] = az.from_dict(posterior=post, dims=dims, coords=coords)
    if not groups:
        return None
    keys = list(groups)
    idata = groups[keys[0]]
    for k in keys[1:]:
        other = groups[k]
        try:
            idata = az.concat(idata, other, dim=None)
        except Exception:
            idata.add_groups({k: other.posterior})
    return idata


@lru_cache(maxsize=32)
def _mcmc(model, num_warmup: int, num_samples: int, num_chains: int, target_accept: float):
    """A cached NumPyro MCMC object for a module-level model taking its data as arguments.

    With ``jit_model_args=True`` NumPyro compiles the sampler once per argument shapes and
    reuses it for new data: repeated fits (many galaxies, benchmarks) skip compilation.
    """
    from numpyro.infer import MCMC, NUTS

    return MCMC(NUTS(model, target_accept_prob=target_accept), num_warmup=num_warmup,
                num_samples=num_samples, num_chains=num_chains, progress_bar=False,
                chain_method="sequential", jit_model_args=True)


def _run_nuts(key, model, num_warmup, num_samples, num_chains, *args, target_accept=0.8):
    import time

    mcmc = _mcmc(model, int(num_warmup), int(num_samples), int(num_chains), float(target_accept))
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
        mcmc.run(key, *args, extra_fields=("diverging",))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    wall = time.perf_counter() - t
    extra = mcmc.get_extra_fields(group_by_chain=True)
    div = int(np.sum(np.asarray(extra.get("diverging", 0))))
    return {k: np.asarray(v) for k, v in samples.items()}, wall, {"divergences": div}


@partial(jax.jit, static_argnames=("potential_gen", "num_warmup", "num_samples",
                                   "dense_mass", "target_accept"))
def _functional_nuts(keys, init_params, args, *, potential_gen, num_warmup: int,
                     num_samples: int, dense_mass: bool, target_accept: float):
    """NUTS chains (one per key) through NumPyro's functional ``hmc`` kernel.

    Warm-up and sampling run in one ``lax.scan``; the data travel as ``args`` and
    ``potential_gen`` is a cached module-level function, so this compiles once per
    (potential, shapes, settings) and later fits of new data reuse it — unlike
    ``MCMC.run``, which re-initialises (and re-traces) at every call.

    Returns:
        (draws ``[chains, num_samples, ...]`` in the unconstrained space, diverging
        ``[chains, num_samples]``).
    """
    from jaxgrad._nuts import nuts_chain

    def one(key):
        out = nuts_chain(key, init_params, args, potential_gen=potential_gen, num_warmup=num_warmup,
                         num_samples=num_samples, dense_mass=dense_mass, target_accept_prob=target_accept)
        return out.z, out.diverging

    return jax.vmap(one)(keys)


def _bounded(u, lo, hi):
    """x = lo + (hi − lo) sigmoid(u) and log |dx/du| (flat prior on [lo, hi])."""
    sig = jax.nn.sigmoid(u)
    return lo + (hi - lo) * sig, jnp.log(hi - lo) + jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u)


def _unbounded(x, lo, hi):
    t = jnp.clip((x - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return jnp.log(t) - jnp.log1p(-t)


def _run_functional(key, potential_gen, init_u, args, num_warmup, num_samples, num_chains,
                    dense_mass, target_accept=0.8):
    import time

    keys = jax.random.split(key, int(num_chains))
    t = time.perf_counter()
    draws, div = _functional_nuts(keys, init_u, args, potential_gen=potential_gen,
                                  num_warmup=int(num_warmup), num_samples=int(num_samples),
                                  dense_mass=bool(dense_mass), target_accept=float(target_accept))
    jax.block_until_ready(draws)
    return draws, time.perf_counter() - t, {"divergences": int(np.sum(np.asarray(div)))}


# --------------------------------------------------------------------------- Method I
def method1_numpyro(key, flux, err, spec: _met.MetallicitySpec, *, av_fallback=0.0,
                    num_warmup: int = 500, num_samples: int = 1000, num_chains: int = 1):
    """Sample Method I's per-bin 12+log(O/H) with NUTS.

    The diagnostics used and the flat-prior support of each bin are those of
    :func:`~jaxgrad.pipeline.metallicity.method1_grid` (its two-pass valid-range rule),
    so the two posteriors are the same density.

    Args:
        key: JAX PRNG key.
        flux, err: ``[K, L]`` line fluxes and 1σ per bin (ordered as ``spec.lines``).
        spec: :class:`~jaxgrad.pipeline.metallicity.MetallicitySpec`.
        av_fallback: A_V (mag) for bins without a Balmer decrement (scalar or ``[K]``).
        num_warmup, num_samples, num_chains: NUTS settings.

    Returns:
        :class:`SamplerResult` with ``samples["logoh"]`` of shape ``[chains, draws, K]``
        (unmeasurable bins are sampled from their prior and flagged in
        ``extra["measurable"]``).
    """
    flux = jnp.atleast_2d(jnp.asarray(flux))
    err = jnp.atleast_2d(jnp.asarray(err))
    K = flux.shape[0]
    avf = jnp.broadcast_to(jnp.asarray(av_fallback, flux.dtype), (K,))
    m1 = _method1_grid_batch(spec)(flux, err, avf)
    meas = np.asarray(m1.measurable)
    lo = jnp.where(m1.measurable, m1.support[:, 0], spec.grid[0])
    hi = jnp.where(m1.measurable, m1.support[:, 1], spec.grid[1])
    use = m1.used & m1.measurable[:, None]
    scat2 = jnp.asarray(spec.scatter, flux.dtype) ** 2
    var = m1.sy**2 + scat2[None]
    init = _unbounded(jnp.where(m1.measurable, m1.median, 0.5 * (lo + hi)), lo, hi)
    draws, wall, extra = _run_functional(key, _method1_potential(spec), init,
                                         (m1.y, var, use, lo, hi), num_warmup, num_samples,
                                         num_chains, dense_mass=False)
    z, _ = _bounded(draws, lo, hi)
    extra["measurable"] = meas
    return _summarise({"logoh": np.asarray(z)}, wall, extra)


@lru_cache(maxsize=32)
def _method1_grid_batch(spec):
    return jax.jit(jax.vmap(lambda f, e, a: _met.method1_grid(f, e, spec, a)))


@lru_cache(maxsize=32)
def _method1_potential(spec):
    """Potential generator of Method I (flat prior on each bin's support, unconstrained)."""
    cal = _cal.get(spec.calibration)

    def gen(y, var, use, lo, hi):
        def potential(u):
            z, logj = _bounded(u, lo, hi)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", _cal.UnverifiedCalibrationWarning)
                pred = jnp.stack([cal.predict(d, z) for d in spec.diagnostics], axis=-1)
            chi2 = jnp.sum(jnp.where(use, (y - pred) ** 2 / var, 0.0))
            return 0.5 * chi2 - jnp.sum(logj)

        return potential

    return gen


# --------------------------------------------------------------------------- Paper B
def paper_b_numpyro(key, flux, err, spec: _met.MetallicitySpec, *, av_max: float = 4.0,
                    normalised: bool = False, num_warmup: int = 500, num_samples: int = 1000,
                    num_chains: int = 1):
    """Sample Paper B's joint (12+log(O/H), A_V, f_Hβ) per bin with NUTS.

    Priors: flat in 12+log(O/H) over the calibration grid, flat A_V in [0, av_max] mag,
    flat f_Hβ in (0, 20 F_max) with F_max the bin's largest used flux. The likelihood is
    :func:`~jaxgrad.pipeline.metallicity.paper_b_loglike` (``normalised`` passed on).

    Returns:
        :class:`SamplerResult` with ``logoh``, ``av`` and ``f_hb`` (flux unit of the
        input), each ``[chains, draws, K]``.
    """
    flux = jnp.atleast_2d(jnp.asarray(flux))
    err = jnp.atleast_2d(jnp.asarray(err))
    used = _met.line_used(flux, err, spec.snr_min)
    fmax = jnp.max(jnp.where(used, flux, 0.0), axis=1)
    scale = jnp.where(fmax > 0, fmax, 1.0)
    fn = flux / scale[:, None]
    en = err / scale[:, None]
    samples, wall, extra = _run_nuts(key, _paper_b_model(spec, float(av_max), bool(normalised)),
                                     num_warmup, num_samples, num_chains, fn, en)
    samples["f_hb"] = samples.pop("f_hb_norm") * np.asarray(scale)[None, None, :]
    return _summarise(samples, wall, extra)


@lru_cache(maxsize=32)
def _paper_b_model(spec, av_max, normalised):
    import numpyro
    import numpyro.distributions as dist

    zlo, zhi, _ = spec.grid

    def model(fn, en):
        with numpyro.plate("bin", fn.shape[0]):
            z = numpyro.sample("logoh", dist.Uniform(zlo, zhi))
            av = numpyro.sample("av", dist.Uniform(0.0, av_max))
            fh = numpyro.sample("f_hb_norm", dist.Uniform(0.0, 20.0))
        ll = jax.vmap(lambda a, b, c, f, e: _met.paper_b_loglike(a, b, c, f, e, spec, normalised))(
            z, av, fh, fn, en)
        numpyro.factor("like", jnp.sum(ll))

    return model


# --------------------------------------------------------------------------- gradient
def _clean(r, logoh, err, mask):
    r, y, e = (np.asarray(a, float) for a in (r, logoh, err))
    m = np.asarray(mask, bool) & np.isfinite(r) & np.isfinite(y) & np.isfinite(e) & (e > 0)
    if m.sum() < 2:
        raise ValueError(f"a gradient fit needs at least 2 valid bins, got {int(m.sum())}")
    return r[m], y[m], e[m]


def fit_gradient_numpyro(key, r, logoh, err, mask=None, *, num_warmup: int = 1000,
                         num_samples: int = 2000, num_chains: int = 1, dense_mass: bool = True,
                         z0_bounds=Z0_BOUNDS, grad_bounds=GRAD_BOUNDS) -> SamplerResult:
    """Straight-line gradient fit with NUTS: flat priors, Gaussian errors.

    NumPyro's functional NUTS kernel, compiled once per number of bins (masked bins keep
    the shape) and started at the least-squares solution. Z0 and ∇Z are strongly
    correlated, so a dense mass matrix is adapted by default.

    Args:
        key: JAX PRNG key.
        r: radii ``[K]`` kpc; logoh, err: 12+log(O/H) and 1σ ``[K]``; mask: ``[K]`` bool.
        num_warmup, num_samples, num_chains: NUTS settings (chains are vmapped).
        dense_mass: adapt a dense mass matrix.
        z0_bounds, grad_bounds: flat-prior bounds (dex, dex/kpc).

    Returns:
        :class:`SamplerResult` with ``z0`` and ``grad`` samples ``[chains, draws]``.
    """
    if mask is None:
        mask = np.ones(np.shape(r), bool)
    _clean(r, logoh, err, mask)  # validation: at least two usable bins
    r, y, e = (np.asarray(a, float) for a in (r, logoh, err))
    m = np.asarray(mask, bool) & np.isfinite(r) & np.isfinite(y) & np.isfinite(e) & (e > 0)
    rj, yj, ej, mj = (jnp.asarray(np.where(m, r, 0.0)), jnp.asarray(np.where(m, y, 0.0)),
                      jnp.asarray(np.where(m, e, 1.0)), jnp.asarray(m))
    lo = jnp.asarray([z0_bounds[0], grad_bounds[0]], rj.dtype)
    hi = jnp.asarray([z0_bounds[1], grad_bounds[1]], rj.dtype)
    fit = _grad.wls_gradient(rj, yj, ej, mj)
    init = _unbounded(jnp.stack([fit.z0, fit.grad]), lo, hi)
    draws, wall, extra = _run_functional(key, _gradient_potential, init, (rj, yj, ej, mj, lo, hi),
                                         num_warmup, num_samples, num_chains,
                                         dense_mass=dense_mass)
    x, _ = _bounded(draws, lo, hi)
    x = np.asarray(x)
    return _summarise({"z0": x[..., 0], "grad": x[..., 1]}, wall, extra)


def _gradient_potential(r, y, e, m, lo, hi):
    """Potential generator of the straight-line fit (flat priors within [lo, hi])."""
    def potential(u):
        (z0, g), logj = _bounded(u, lo, hi)
        chi2 = jnp.sum(jnp.where(m, (y - z0 - g * r) ** 2 / e**2, 0.0))
        return 0.5 * chi2 - jnp.sum(logj)

    return potential


def fit_gradient_emcee(r, logoh, err, mask=None, *, n_walkers: int = 64, n_steps: int = 2000,
                       burn: int = 500, seed: int = 0, init_scale: float = 1e-2,
                       z0_bounds=Z0_BOUNDS, grad_bounds=GRAD_BOUNDS,
                       vectorize: bool = True) -> SamplerResult:
    """Paper A's gradient fit: emcee with flat priors started at the least-squares fit.

    Defaults are Paper A's: 64 walkers × 2000 steps, the first 500 discarded. The
    walkers start at the weighted least-squares solution plus ``init_scale`` times its
    1σ errors times N(0, 1). The log-probability is NumPy (vectorised over walkers
    when ``vectorize``), as a user script would write it.

    Returns:
        :class:`SamplerResult` with ``z0`` and ``grad`` samples ``[n_walkers, n_steps −
        burn]`` (walkers play the role of chains for ArviZ); ``extra`` has the mean
        acceptance fraction and emcee's integrated autocorrelation times.
    """
    import time

    import emcee

    if burn >= n_steps:
        raise ValueError(f"burn ({burn}) must be smaller than n_steps ({n_steps})")
    if n_walkers < 4:
        raise ValueError(f"n_walkers must be >= 4 for emcee with 2 parameters, got {n_walkers}")
    if mask is None:
        mask = np.ones(np.shape(r), bool)
    r, y, e = _clean(r, logoh, err, mask)
    w = 1.0 / e**2
    (zlo, zhi), (glo, ghi) = z0_bounds, grad_bounds

    def log_prob(theta):
        theta = np.atleast_2d(theta)
        z0, g = theta[:, 0], theta[:, 1]
        chi2 = np.sum(w[None] * (y[None] - z0[:, None] - g[:, None] * r[None]) ** 2, axis=1)
        inside = (z0 > zlo) & (z0 < zhi) & (g > glo) & (g < ghi)
        lp = np.where(inside, -0.5 * chi2, -np.inf)
        return lp if vectorize else float(lp[0])

    fit = _grad.wls_gradient(jnp.asarray(r), jnp.asarray(y), jnp.asarray(e),
                             jnp.ones(len(r), bool))
    centre = np.array([float(fit.z0), float(fit.grad)])
    scale = np.array([float(fit.z0_err), float(fit.grad_err)])
    rng = np.random.default_rng(seed)
    p0 = centre + init_scale * scale * rng.standard_normal((n_walkers, 2))
    sampler = emcee.EnsembleSampler(n_walkers, 2, log_prob, vectorize=vectorize)
    # emcee's proposals use its own RandomState: seed it from our generator
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    t = time.perf_counter()
    sampler.run_mcmc(p0, n_steps, progress=False)
    wall = time.perf_counter() - t
    chain = sampler.get_chain(discard=burn)  # [steps, walkers, 2]
    samples = {"z0": np.ascontiguousarray(chain[:, :, 0].T),
               "grad": np.ascontiguousarray(chain[:, :, 1].T)}
    try:
        tau = sampler.get_autocorr_time(discard=burn, quiet=True)
    except Exception:  # pragma: no cover
        tau = np.full(2, np.nan)
    extra = {"acceptance": float(np.mean(sampler.acceptance_fraction)),
             "autocorr_time": np.asarray(tau)}
    return _summarise(samples, wall, extra)

