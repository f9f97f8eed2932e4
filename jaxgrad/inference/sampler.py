"""Functional NUTS runner, flat model potentials and sampler diagnostics.

A NumPyro model becomes a :class:`FlatModel`: a pure potential ``U(u, *args)`` of a flat
unconstrained vector (``-log p``, Jacobians included) and a ``constrain(u, *args)`` map
back to named constrained values (deterministic sites included). Everything downstream
works on that one function, so NUTS, the MAP fit and emcee (:mod:`.emcee_ref`) see the
identical log density.

:func:`make_nuts` wraps :func:`jaxgrad._nuts.nuts_chain` (NumPyro's functional ``hmc(algo="NUTS")`` init/sample kernels)
in one jit-able function ``run(key, u0, inv_mass, args)`` (warm-up and sampling as two
``lax.scan``\\ s): compiled once per shape, reusable across data sets, and ``vmap``-able
over chains or over data sets (the SBC runs many fits in one call).
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_median
from numpyro.infer.util import constrain_fn, potential_energy

from jaxgrad._nuts import ChainOutput, nuts_chain, nuts_chains_segmented

_log = logging.getLogger(__name__)

__all__ = [
    "ConvergenceWarning",
    "DivergenceWarning",
    "HEALTH",
    "health_problems",
    "FlatModel",
    "NutsOutput",
    "SamplerRun",
    "diagnose",
    "ess_bulk",
    "flatten_model",
    "make_nuts",
    "nuts_from_map",
    "rhat_rank",
    "run_nuts",
    "run_nuts_many",
    "sample_flat",
]


class ConvergenceWarning(UserWarning):
    """A fit failed a health check (R-hat, ESS, divergences, tree depth): see
    ``diagnostics["problems"]``; its numbers are not yet a measurement."""


class DivergenceWarning(ConvergenceWarning):
    """NUTS reported divergent transitions: the posterior summaries may be biased."""


PROGRESS_EVERY_S = 5.0  # seconds between NUTS progress lines (first and last always shown)

# health thresholds (Vehtari et al. 2021: R-hat < 1.01, bulk ESS > 100 per chain)
HEALTH = {"r_hat_max": 1.01, "ess_bulk_per_chain": 100.0, "divergent_fraction": 0.0,
          "frac_max_treedepth": 0.05}


def health_problems(d: dict, thresholds: dict | None = None) -> list[str]:
    """The health checks a fit's diagnostics fail, one sentence each (empty: healthy).

    Checks (``thresholds`` overrides :data:`HEALTH`): max R-hat, min bulk ESS per chain,
    divergent transitions, fraction of draws at the maximum tree depth.
    """
    t = {**HEALTH, **(thresholds or {})}
    out = []
    rh = d.get("r_hat_max", np.nan)
    if not np.isfinite(rh) or rh > t["r_hat_max"]:
        out.append(f"max R-hat {rh:.3f} > {t['r_hat_max']}")
    need = t["ess_bulk_per_chain"] * d.get("num_chains", 1)
    ess = d.get("ess_bulk_min", np.nan)
    if not np.isfinite(ess) or ess < need:
        out.append(f"min bulk ESS {ess:.0f} < {need:.0f} ({t['ess_bulk_per_chain']:.0f} per chain)")
    if d.get("divergent_fraction", 0.0) > t["divergent_fraction"]:
        out.append(f"{d['divergences']} divergent transitions")
    if d.get("frac_max_treedepth", 0.0) > t["frac_max_treedepth"]:
        out.append(f"{100 * d['frac_max_treedepth']:.0f}% of draws at the maximum tree depth")
    return out


class FlatModel(NamedTuple):
    """A NumPyro model as functions of a flat unconstrained vector.

    Attributes:
        potential: ``U(u, *args)`` = −log density (unconstrained, with Jacobians).
        constrain: ``constrain(u, *args)`` -> dict of constrained sample and
            deterministic sites.
        unravel: flat ``[d]`` -> dict of unconstrained site values.
        u_init: the init strategy's start point ``[d]``.
        names: sampled site names, in flat order (sorted, as ``ravel_pytree``).
    """

    potential: Callable
    constrain: Callable
    unravel: Callable
    u_init: jax.Array
    names: tuple[str, ...]

    @property
    def dim(self) -> int:
        return int(self.u_init.shape[0])

    def labels(self) -> tuple[str, ...]:
        """A label per flat coordinate: ``name`` for scalars, ``name[i]`` for arrays."""
        out = []
        tree = self.unravel(self.u_init)
        for k in self.names:
            shape = np.shape(tree[k])
            if shape == ():
                out.append(k)
            else:
                out += [f"{k}[{','.join(map(str, np.unravel_index(j, shape)))}]" for j in range(int(np.prod(shape)))]
        return tuple(out)


def _latent_unconstrained(model, key, model_args, strategy):
    """Unconstrained values of the latent sample sites of a seeded trace (init strategy)."""
    m = handlers.substitute(handlers.seed(model, key), substitute_fn=strategy)
    tr = handlers.trace(m).get_trace(*model_args)
    out = {}
    for name, site in tr.items():
        if site["type"] == "sample" and not site["is_observed"] and not site["fn"].support.is_discrete:
            if site.get("infer", {}).get("is_auxiliary"):
                continue
            out[name] = biject_to(site["fn"].support).inv(site["value"])
    return out


def flatten_model(model, model_args: tuple, key=None, init_strategy=None) -> FlatModel:
    """Turn ``model(*model_args)`` into a :class:`FlatModel` (args stay dynamic).

    Nothing is executed eagerly (NumPyro's ``initialize_model`` runs the model op by op,
    which compiles hundreds of tiny kernels for the forward model): the site structure
    comes from ``jax.eval_shape`` and the start point from a jitted trace of the init
    strategy (default: prior medians), in which the likelihood is dead code.
    The potential is :func:`numpyro.infer.util.potential_energy`, the constraining map
    :func:`numpyro.infer.util.constrain_fn` (deterministic sites included).
    """
    key = jax.random.key(0) if key is None else key
    strategy = init_strategy or init_to_median(num_samples=15)
    z0 = jax.jit(lambda k, *a: _latent_unconstrained(model, k, a, strategy))(key, *model_args)
    flat0, unravel = ravel_pytree(z0)

    def potential(u, *args):
        return potential_energy(model, args, {}, unravel(u))

    # jitted: called eagerly (MAP bookkeeping), NumPyro would run the model op by op,
    # each op a compilation of its own (0.75 s per call for a 64x64 galaxy)
    @jax.jit
    def constrain(u, *args):
        return constrain_fn(model, args, {}, unravel(u), return_deterministic=True)

    return FlatModel(potential, constrain, unravel, flat0, tuple(sorted(z0)))


NutsOutput = ChainOutput  # per-chain output of make_nuts's run function (see jaxgrad._nuts)


@functools.lru_cache(maxsize=16)
def _potential_gen(potential):
    """NumPyro's ``potential_fn_gen`` for ``U(u, *args)``: one object per potential, so
    segmented runs of the same model reuse their compiled programs."""

    def gen(*args):
        return lambda u: potential(u, *args)

    return gen


def make_nuts(potential, *, num_warmup: int, num_samples: int, dense_mass: bool = True,
              max_tree_depth: int = 8, target_accept_prob: float = 0.8):
    """A pure NUTS run function ``run(key, u0, inv_mass, args) -> NutsOutput``.

    Warm-up uses NumPyro's windowed adaptation (dual-averaging step size, Welford
    diagonal or dense mass matrix), starting from ``inv_mass`` (e.g. the Laplace
    covariance at the MAP; ``None`` for identity). Not jitted: jit/vmap it at the edge.

    Args:
        potential: ``U(u, *args)`` of a flat vector.
        num_warmup, num_samples: iterations (static).
        dense_mass: dense (True) or diagonal mass matrix.
        max_tree_depth: NUTS tree-depth cap (2^depth − 1 leapfrog steps at most).
        target_accept_prob: dual-averaging target.
    """
    gen = _potential_gen(potential)

    def run(key, u0, inv_mass, args):
        out = nuts_chain(key, u0, args, potential_gen=gen, num_warmup=num_warmup, num_samples=num_samples,
                         dense_mass=dense_mass, target_accept_prob=target_accept_prob,
                         max_tree_depth=max_tree_depth, inverse_mass_matrix=inv_mass)
        return out

    return run


class SamplerRun(NamedTuple):
    """What :func:`run_nuts` returns (NumPy arrays, leading axes [chains, draws]).

    Attributes:
        samples: constrained values by site name ``[C, S, ...]``.
        u: unconstrained draws ``[C, S, d]``.
        stats: ``num_steps``, ``diverging``, ``accept_prob``, ``potential_energy``,
            ``energy`` ``[C, S]``; ``step_size`` ``[C]``; ``warmup_steps``,
            ``warmup_divergences`` ``[C]``.
        inverse_mass_matrix: adapted matrices ``[C, d(, d)]``.
        timings: ``compile_s`` and ``run_s`` (warm-up + sampling, after compilation).
    """

    samples: dict
    u: np.ndarray
    stats: dict
    inverse_mass_matrix: np.ndarray
    timings: dict


def run_nuts(flat: FlatModel, args: tuple, u0, *, key, inv_mass=None, num_warmup: int = 500,
             num_samples: int = 1000, dense_mass: bool = True, max_tree_depth: int = 8,
             target_accept_prob: float = 0.8, vectorize: bool = False,
             segment: int | None = None, checkpoint=None, time_budget_s: float | None = None) -> SamplerRun:
    """Run NUTS chains on a :class:`FlatModel`, one per row of ``u0``.

    The single-chain run function is compiled once ahead of time
    (``lower().compile()``, timed as ``compile_s``) and called per chain, so
    ``timings["run_s"]`` is warm-up + sampling only. With ``vectorize=True`` the chains
    are vmapped into one call instead (worth it on accelerators; on a CPU the batched
    program compiles slower and runs no faster).

    Args:
        flat: the model.
        args: dynamic model arguments (the data).
        u0: start points ``[C, d]``.
        key: PRNG key.
        inv_mass: initial inverse mass matrix ``[d]`` / ``[d, d]`` or None.
        num_warmup, num_samples, dense_mass, max_tree_depth, target_accept_prob: as
            :func:`make_nuts`.
        vectorize: vmap the chains.
        segment: run in compiled segments of this many iterations, logging progress
            (logger ``jaxgrad.inference.sampler`` at INFO) after each: the same draws for
            sequential chains; long runs say where they are. None: one call per chain.
        checkpoint: ``.npz`` path written after every segment (segments of 100 unless
            ``segment`` says otherwise); a run given an existing checkpoint of the same
            keys, data and settings resumes from it, with the same draws as an
            uninterrupted run (see :func:`jaxgrad._nuts.nuts_chains_segmented`).
        time_budget_s: stop sampling after about this many seconds of running, keeping
            the draws so far (segments of 100 unless ``segment`` says otherwise; warm-up
            always completes). ``timings["num_samples"]`` says how many were kept.
    """
    u0 = jnp.atleast_2d(jnp.asarray(u0))
    n_chains = u0.shape[0]
    if inv_mass is not None:
        inv_mass = jnp.asarray(inv_mass, u0.dtype)
    keys = jax.random.split(key, n_chains)
    if (checkpoint is not None or time_budget_s is not None) and segment is None:
        segment = 100
    if segment is not None:
        last = {}

        def progress(c, done, total, sec):
            # the first segment, the last, and between them at most one line per
            # PROGRESS_EVERY_S seconds (a fast chain printed 20 lines in one second)
            if done == total or c not in last or sec - last[c] >= PROGRESS_EVERY_S:
                last[c] = sec
                _log.info("NUTS %s: %d/%d iterations (%s) at %.1f s",
                          "chains" if c < 0 else f"chain {c + 1}/{n_chains}",
                          done, total, "warm-up" if done <= num_warmup else "sampling", sec)

        out, timings = nuts_chains_segmented(
            keys, u0, args, potential_gen=_potential_gen(flat.potential),
            num_warmup=num_warmup, num_samples=num_samples, segment=int(segment), dense_mass=dense_mass,
            target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
            inverse_mass_matrix=inv_mass, vectorize=vectorize, on_segment=progress, checkpoint=checkpoint,
            time_budget_s=time_budget_s)
        if timings["num_samples"] < num_samples:
            _log.warning("NUTS stopped at its time budget (%.0f s): %d of %d draws per chain kept",
                         time_budget_s, timings["num_samples"], num_samples)
        if timings["resumed_from"]:
            _log.info("NUTS resumed from %s: %s", checkpoint, timings["resumed_from"])
        return _collect(flat, args, out, timings)
    run = make_nuts(flat.potential, num_warmup=num_warmup, num_samples=num_samples,
                    dense_mass=dense_mass, max_tree_depth=max_tree_depth,
                    target_accept_prob=target_accept_prob)
    t0 = time.perf_counter()
    if vectorize:
        compiled = jax.jit(jax.vmap(run, in_axes=(0, 0, None, None))).lower(keys, u0, inv_mass, args).compile()
    else:
        compiled = jax.jit(run).lower(keys[0], u0[0], inv_mass, args).compile()
    t1 = time.perf_counter()
    if vectorize:
        out = jax.block_until_ready(compiled(keys, u0, inv_mass, args))
    else:
        outs = []
        for c in range(n_chains):
            outs.append(jax.block_until_ready(compiled(keys[c], u0[c], inv_mass, args)))
            _log.info("NUTS chain %d/%d done at %.1f s", c + 1, n_chains, time.perf_counter() - t1)
        out = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
    t2 = time.perf_counter()
    return _collect(flat, args, out, {"compile_s": t1 - t0, "run_s": t2 - t1})


def _collect(flat: FlatModel, args: tuple, out: NutsOutput, timings: dict,
             per_chain_args: bool = False) -> SamplerRun:
    """Constrain the draws (args shared, or one set per chain) and gather the stats."""
    if per_chain_args:
        constrain = jax.jit(jax.vmap(lambda z, a: jax.vmap(lambda u: flat.constrain(u, *a))(z)))
        cons = constrain(out.z, args)
    else:
        cons = jax.jit(jax.vmap(jax.vmap(lambda u: flat.constrain(u, *args))))(out.z)
    stats = {k: np.asarray(getattr(out, k)) for k in (
        "num_steps", "diverging", "accept_prob", "potential_energy", "energy", "step_size",
        "warmup_steps", "warmup_divergences")}
    return SamplerRun({k: np.asarray(v) for k, v in cons.items()}, np.asarray(out.z), stats,
                      np.asarray(out.inverse_mass_matrix), timings)


# ----------------------------------------------------------------- diagnostics
def _per_component(x, fn):
    """Apply ``fn`` to draws ``[C, S, ...]`` of the components that vary (NaN for
    constant ones or fewer than 4 draws): a float for ``[C, S]``, else an array ``[...]``."""
    x = np.asarray(x, float)
    out = np.full(x.shape[2:], np.nan)
    if x.shape[1] >= 4:
        flat = x.reshape(x.shape[:2] + (-1,))
        ok = np.ptp(flat, axis=(0, 1)) > 0
        if ok.any():
            out.reshape(-1)[ok] = fn(flat[..., ok])
    return float(out) if out.ndim == 0 else out


def _arviz(x, fn: str, method: str):
    """ArviZ's ``fn`` (``"rhat"`` or ``"ess"``) of draws ``[C, S, K]``, one per component."""
    import arviz as az

    x = np.asarray(x, float)
    if fn == "rhat" and x.shape[0] == 1:  # ArviZ needs two chains: one chain's two halves
        h = x.shape[1] // 2
        x = np.stack([x[0, :h], x[0, x.shape[1] - h:]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = az.convert_to_dataset({"x": x})
        return np.asarray(getattr(az, fn)(ds, method=method)["x"].values, float)


def ess_bulk(x):
    """Bulk effective sample size of draws ``[C, S]`` (or ``[C, S, ...]``, one per
    trailing component): ArviZ's ``ess(method="bulk")`` — split chains, rank-normalised
    (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021). NaN for a constant component."""
    return _per_component(x, lambda x: _arviz(x, "ess", "bulk"))


def rhat_rank(x):
    """Rank-normalised split R-hat of draws ``[C, S]`` (or ``[C, S, ...]``, one per trailing
    component): ArviZ's ``rhat(method="rank")``, the larger of the bulk and the folded
    (tail/scale) R-hat of Vehtari et al. 2021, so chains that differ only in spread are
    caught too. A single chain is passed to ArviZ as its two halves. NaN for a constant
    component."""
    return _per_component(x, lambda x: _arviz(x, "rhat", "rank"))


def _components(samples: dict, names) -> tuple[list[str], np.ndarray]:
    """Labels ``name[index]`` and draws ``[C, S, K]`` of every scalar component of the
    named sites."""
    labels, cols = [], []
    for k in names:
        v = np.asarray(samples[k])
        if v.ndim == 2:
            labels.append(k)
            cols.append(v[..., None])
        else:
            cols.append(v.reshape(v.shape[0], v.shape[1], -1))
            labels += [f"{k}[{','.join(map(str, idx))}]" for idx in np.ndindex(*v.shape[2:])]
    return labels, np.concatenate(cols, axis=-1)


def diagnose(run: SamplerRun, names, max_tree_depth: int, key_param: str | None = None,
             warn: bool = True) -> dict:
    """Convergence and efficiency diagnostics of a :class:`SamplerRun`.

    Returns a dict: ``divergences`` (sampling phase), ``divergent_fraction``,
    ``warmup_divergences``, ``r_hat`` / ``ess_bulk`` per scalar component,
    ``r_hat_max``, ``ess_bulk_min`` (over the sampled parameters), ``ess_key``
    (``key_param``'s bulk ESS, e.g. ∇Z), ``mean_steps_per_draw`` (leapfrog steps =
    gradient evaluations), ``frac_max_treedepth``, ``grad_evals_warmup``,
    ``grad_evals_sampling``, ``ess_per_grad`` (min ESS / sampling gradient
    evaluations), ``ess_per_grad_total`` (incl. warm-up), ``e_bfmi_min``,
    ``step_size``, ``compile_s``, ``run_s``, ``ess_per_s`` (min ESS / run_s),
    ``problems`` (the failed health checks, :func:`health_problems`) and ``healthy``.

    With divergences a :class:`DivergenceWarning`, with any failed health check a
    :class:`ConvergenceWarning` is emitted (if ``warn``).
    """
    st = run.stats
    labels, draws = _components(run.samples, names)  # every component, in one vectorised pass
    ess = dict(zip(labels, ess_bulk(draws).tolist(), strict=True))
    rhat = dict(zip(labels, rhat_rank(draws).tolist(), strict=True))
    fin_ess = [v for v in ess.values() if np.isfinite(v)]
    fin_rhat = [v for v in rhat.values() if np.isfinite(v)]
    steps = st["num_steps"]
    n_div = int(np.sum(st["diverging"]))
    grad_s = float(np.sum(steps))
    grad_w = float(np.sum(st["warmup_steps"]))
    ess_min = float(min(fin_ess)) if fin_ess else float("nan")
    en = st["energy"]
    ebfmi = np.sum(np.diff(en, axis=1) ** 2, axis=1) / np.maximum(
        np.sum((en - en.mean(axis=1, keepdims=True)) ** 2, axis=1), 1e-300)
    d = {
        "num_chains": int(steps.shape[0]),
        "num_samples": int(steps.shape[1]),
        "divergences": n_div,
        "divergent_fraction": n_div / steps.size,
        "warmup_divergences": int(np.sum(st["warmup_divergences"])),
        "r_hat": rhat,
        "ess_bulk": ess,
        "r_hat_max": float(max(fin_rhat)) if fin_rhat else float("nan"),
        "ess_bulk_min": ess_min,
        "ess_key": float(ess.get(key_param, np.nan)) if key_param else float("nan"),
        "mean_steps_per_draw": float(np.mean(steps)),
        "frac_max_treedepth": float(np.mean(steps >= 2**max_tree_depth - 1)),
        "grad_evals_warmup": grad_w,
        "grad_evals_sampling": grad_s,
        "ess_per_grad": ess_min / grad_s if grad_s else float("nan"),
        "ess_per_grad_total": ess_min / (grad_s + grad_w) if grad_s + grad_w else float("nan"),
        "e_bfmi_min": float(np.min(ebfmi)),
        "step_size": [float(s) for s in np.ravel(st["step_size"])],
        "compile_s": float(run.timings["compile_s"]),
        "run_s": float(run.timings["run_s"]),
    }
    d["ess_per_s"] = ess_min / d["run_s"] if d["run_s"] > 0 else float("nan")
    d["problems"] = health_problems(d)
    d["healthy"] = not d["problems"]
    if warn and d["problems"]:
        # one warning per fit: a DivergenceWarning (a ConvergenceWarning) when it diverged
        lead = (f"NUTS reported {n_div} divergent transition(s) out of {steps.size} draws "
                f"({100 * d['divergent_fraction']:.1f}%): the posterior may be biased; "
                "raise target_accept_prob, reparametrise, or tighten the priors. " if n_div else "")
        warnings.warn(lead + "The fit is not trustworthy yet: " + "; ".join(d["problems"])
                      + " — run longer chains (num_warmup, num_samples, num_chains) or reparametrise",
                      DivergenceWarning if n_div else ConvergenceWarning, stacklevel=3)
    return d


def nuts_from_map(flat: FlatModel, args: tuple, *, key, u_map, cov, num_warmup: int = 500,
                  num_samples: int = 1000, num_chains: int = 1, dense_mass: bool = True,
                  max_tree_depth: int = 8, target_accept_prob: float = 0.8,
                  vectorize: bool = False, segment: int | None = None, checkpoint=None,
                  time_budget_s: float | None = None) -> SamplerRun:
    """NUTS started at a MAP with its Laplace covariance as the initial inverse mass matrix.

    Chain 0 starts at ``u_map``; further chains start at draws from N(u_map, cov), so
    R-hat compares chains from dispersed starts. ``cov``: ``[d, d]``, or the variances
    ``[d]`` of a diagonal one (no d × d matrix: at d = 4×10⁴ a dense one is 13 GB and
    its Cholesky factor a minute of CPU).
    """
    k_init, k_run = jax.random.split(key)
    u_map = np.asarray(u_map)
    d = u_map.shape[-1]
    cov = np.asarray(cov, float)
    diag = cov.ndim == 1
    u0 = np.repeat(u_map[None], num_chains, axis=0)
    if num_chains > 1:
        eps = np.asarray(jax.random.normal(k_init, (num_chains - 1, d)), float)
        if diag:
            u0[1:] = u_map[None] + eps * np.sqrt(cov)
        else:
            u0[1:] = u_map[None] + eps @ np.linalg.cholesky(cov + 1e-12 * np.eye(d)).T
    if dense_mass:
        inv_mass = np.diag(cov) if diag else cov
    else:
        inv_mass = cov if diag else np.diag(cov)
    return run_nuts(flat, args, jnp.asarray(u0, flat.u_init.dtype), key=k_run, inv_mass=inv_mass,
                    num_warmup=num_warmup, num_samples=num_samples, dense_mass=dense_mass,
                    max_tree_depth=max_tree_depth, target_accept_prob=target_accept_prob,
                    vectorize=vectorize, segment=segment, checkpoint=checkpoint, time_budget_s=time_budget_s)


def sample_flat(flat: FlatModel, args: tuple, *, seed: int = 0, num_warmup: int = 500,
                num_samples: int = 1000, num_chains: int = 1, dense_mass: bool = True,
                max_tree_depth: int = 8, target_accept_prob: float = 0.8, n_starts: int = 3,
                key_param: str | None = None):
    """MAP (optax, several starts) → NUTS from the MAP → diagnostics, for any FlatModel.

    Returns:
        (SamplerRun, diagnostics dict, MapResult of the best start).
    """
    from jaxgrad.inference.optim import find_map

    key = jax.random.key(seed)
    k_start, k_run = jax.random.split(key)
    vg = jax.jit(jax.value_and_grad(lambda u: flat.potential(u, *args)))
    u_init = np.asarray(flat.u_init)
    starts = [u_init] + [u_init + np.asarray(jax.random.normal(k, u_init.shape), u_init.dtype)
                         for k in jax.random.split(k_start, max(n_starts - 1, 0))]
    t0 = time.perf_counter()
    maps = [find_map(vg, s) for s in starts]
    t_map = time.perf_counter() - t0
    best = min(maps, key=lambda m: m.value if np.isfinite(m.value) else np.inf)
    run = nuts_from_map(flat, args, key=k_run, u_map=best.x, cov=best.cov, num_warmup=num_warmup,
                        num_samples=num_samples, num_chains=num_chains, dense_mass=dense_mass,
                        max_tree_depth=max_tree_depth, target_accept_prob=target_accept_prob)
    diag = diagnose(run, flat.names, max_tree_depth, key_param=key_param)
    diag["map_s"] = t_map
    diag["map_evals"] = int(sum(m.num_evals for m in maps))
    return run, diag, best


def run_nuts_many(flat: FlatModel, args_batch: tuple, u0, inv_mass, *, key, num_warmup: int = 500,
                  num_samples: int = 1000, dense_mass: bool = True, max_tree_depth: int = 8,
                  target_accept_prob: float = 0.8) -> SamplerRun:
    """One NUTS chain per data set, vmapped: ``args_batch`` leaves, ``u0`` ``[B, d]`` and
    ``inv_mass`` ``[B, d(, d)]`` carry a leading data-set axis. The run is compiled once;
    the returned :class:`SamplerRun` has the data sets in place of chains (so per-chain
    diagnostics are per data set)."""
    run = make_nuts(flat.potential, num_warmup=num_warmup, num_samples=num_samples,
                    dense_mass=dense_mass, max_tree_depth=max_tree_depth,
                    target_accept_prob=target_accept_prob)
    u0 = jnp.asarray(u0)
    keys = jax.random.split(key, u0.shape[0])
    inv_mass = jnp.asarray(inv_mass, u0.dtype)
    f = jax.jit(jax.vmap(run, in_axes=(0, 0, 0, 0)))
    t0 = time.perf_counter()
    compiled = f.lower(keys, u0, inv_mass, args_batch).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, u0, inv_mass, args_batch))
    t2 = time.perf_counter()
    return _collect(flat, args_batch, out, {"compile_s": t1 - t0, "run_s": t2 - t1}, per_chain_args=True)
