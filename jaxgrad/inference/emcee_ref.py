"""emcee on the identical log density NUTS samples: a like-for-like reference.

:func:`run_emcee` takes a :class:`~jaxgrad.inference.sampler.FlatModel` (or a
:class:`~jaxgrad.inference.galaxy.GalaxyModel`, or a NumPyro model function plus its
arguments) and samples ``log p(u) = −U(u, *args)`` in the same unconstrained
coordinates, with the same Jacobians, as :func:`~jaxgrad.inference.sampler.run_nuts`.
The log density is one jitted function vmapped over walkers (emcee's
``vectorize=True``); it is always called with half the ensemble (the stretch move's
batch), so it compiles once.

Effective sample size comes from emcee's integrated autocorrelation time τ:
ESS = n_kept_steps × n_walkers / τ per parameter. Runs shorter than 50 τ are flagged
``converged=False`` (emcee's own reliability rule for τ).

emcee is imported lazily (it is a test/bench extra, absent on GPU machines).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.inference.sampler import FlatModel, flatten_model

__all__ = ["EmceeResult", "run_emcee"]


class EmceeResult(NamedTuple):
    """What :func:`run_emcee` returns.

    Attributes:
        samples: constrained values by site name ``[n_walkers, n_kept, ...]`` (walkers
            in place of chains, as ArviZ expects).
        u: unconstrained chain ``[n_kept, n_walkers, d]`` after burn-in.
        tau: integrated autocorrelation time per unconstrained coordinate (steps).
        ess: n_kept × n_walkers / tau per flat coordinate (``FlatModel.labels()``).
        ess_min: minimum ESS.
        converged: n_kept ≥ 50 max(tau).
        acceptance: mean acceptance fraction.
        n_steps, n_burn, n_walkers: run lengths.
        timings: ``compile_s``, ``run_s`` (all steps incl. burn-in, excl. compile),
            ``log_prob_evals``.
    """

    samples: dict
    u: np.ndarray
    tau: np.ndarray
    ess: dict
    ess_min: float
    converged: bool
    acceptance: float
    n_steps: int
    n_burn: int
    n_walkers: int
    timings: dict


def _as_flat(target, args):
    from jaxgrad.inference.galaxy import GalaxyModel

    if isinstance(target, FlatModel):
        return target, tuple(args)
    if isinstance(target, GalaxyModel):
        return target.flat, tuple(args) or (target.data.obs(),)
    if callable(target):
        return flatten_model(target, tuple(args)), tuple(args)
    raise TypeError(f"run_emcee needs a FlatModel, GalaxyModel or NumPyro model function, got {type(target).__name__}")


def run_emcee(target, args=(), *, init=None, init_cov=None, n_walkers: int | None = None,
              n_steps: int | None = 2000, max_time_s: float | None = None, burn: float = 0.25,
              seed: int = 0, check_every: int = 50) -> EmceeResult:
    """Sample a model's unconstrained log density with emcee (stretch move, vectorised).

    Args:
        target: :class:`FlatModel`, :class:`GalaxyModel` or a NumPyro model function.
        args: dynamic model arguments (for a GalaxyModel defaults to its data).
        init: start ``[d]`` (walkers drawn around it) or ``[n_walkers, d]``; default
            the model's init point.
        init_cov: covariance ``[d, d]`` of the walker cloud around ``init`` (e.g. the
            Laplace covariance of the MAP); default 1e-4 × identity (a tight ball).
        n_walkers: ensemble size; default max(64, 2 × dim) (rounded up to even).
        n_steps: number of steps (ignored when ``max_time_s`` is given).
        max_time_s: wall-time budget (after compilation), e.g. NUTS's run time; steps
            are taken until it is spent.
        burn: fraction of the steps discarded as burn-in.
        seed: seed of emcee's NumPy generator and of the initial cloud.
        check_every: steps between time checks.
    """
    import emcee

    flat, args = _as_flat(target, args)
    d = flat.dim
    nw = n_walkers or max(64, 2 * d)
    nw += nw % 2
    half = nw // 2
    dtype = flat.u_init.dtype
    rng = np.random.default_rng(seed)
    if init is not None and np.ndim(init) == 2:
        p0 = np.asarray(init, float)
        if p0.shape != (nw, d):
            raise ValueError(f"init must have shape (n_walkers, d) = {(nw, d)}, got {p0.shape}")
    else:
        center = np.asarray(flat.u_init if init is None else init, float)
        cov = np.eye(d) * 1e-4 if init_cov is None else np.asarray(init_cov, float)
        p0 = rng.multivariate_normal(center, cov, size=nw)

    logp_b = jax.jit(jax.vmap(lambda u: -flat.potential(u, *args)))
    t0 = time.perf_counter()
    logp_c = logp_b.lower(jax.ShapeDtypeStruct((half, d), dtype)).compile()
    compile_s = time.perf_counter() - t0
    n_evals = [0]

    def log_prob(x):
        x = np.asarray(x)
        out = []
        for i in range(0, len(x), half):
            chunk = x[i:i + half]
            m = len(chunk)
            if m < half:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], half - m, axis=0)])
            v = np.asarray(logp_c(jnp.asarray(chunk, dtype)), float)[:m]
            out.append(v)
        n_evals[0] += len(x)
        v = np.concatenate(out)
        return np.where(np.isfinite(v), v, -np.inf)

    sampler = emcee.EnsembleSampler(nw, d, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    t1 = time.perf_counter()
    if max_time_s is None:
        if not n_steps or n_steps < 4:
            raise ValueError(f"n_steps must be >= 4, got {n_steps!r}")
        sampler.run_mcmc(p0, int(n_steps), progress=False)
    else:
        state = p0
        while True:
            state = sampler.run_mcmc(state, check_every, progress=False)
            if time.perf_counter() - t1 >= max_time_s:
                break
    run_s = time.perf_counter() - t1
    n_total = sampler.iteration
    n_burn = int(burn * n_total)
    chain = sampler.get_chain(discard=n_burn)  # [n_kept, nw, d]
    n_kept = chain.shape[0]
    tau = np.asarray(emcee.autocorr.integrated_time(chain, tol=0, quiet=True), float)
    ess_vec = n_kept * nw / np.maximum(tau, 1.0)
    converged = bool(n_kept >= 50 * np.max(tau))
    u = np.swapaxes(chain, 0, 1)  # [nw, n_kept, d]
    constrain = jax.jit(jax.vmap(jax.vmap(lambda v: flat.constrain(v, *args))))
    samples = {k: np.asarray(v) for k, v in constrain(jnp.asarray(u, dtype)).items()}
    ess = {k: float(v) for k, v in zip(flat.labels(), ess_vec, strict=True)}
    return EmceeResult(samples, chain, tau, ess, float(np.min(ess_vec)), converged,
                       float(np.mean(sampler.acceptance_fraction)), n_total, n_burn, nw,
                       {"compile_s": compile_s, "run_s": run_s, "log_prob_evals": n_evals[0]})
