"""One NUTS chain as a single ``lax.scan`` over NumPyro's functional ``hmc`` kernel.

Shared by :mod:`jaxgrad.stats`, :mod:`jaxgrad.pipeline.sampling` and the inference
sampler: warm-up (windowed adaptation of step size and diagonal/dense mass matrix) and
sampling run in one scan, so the NUTS kernel is compiled once, and because the data travel
as ``args`` of a module-level ``potential_gen``, later fits of new data of the same shapes
reuse the compiled code (``numpyro.infer.MCMC.run`` re-traces at every call).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class ChainOutput(NamedTuple):
    """Per-draw NUTS output after warm-up (leading axis ``num_samples``) and adaptation.

    Fields: z (pytree like the initial point), num_steps, diverging, accept_prob,
    potential_energy, energy ``[S]``; warmup_steps and warmup_divergences (sums over the
    warm-up); step_size and inverse_mass_matrix (adapted).
    """

    z: object
    num_steps: jax.Array
    diverging: jax.Array
    accept_prob: jax.Array
    potential_energy: jax.Array
    energy: jax.Array
    warmup_steps: jax.Array
    warmup_divergences: jax.Array
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def _kernel(potential_gen, num_warmup, dense_mass, target_accept_prob, max_tree_depth):
    """``(init(key, u0, inv_mass, args) -> state, sample_kernel)`` of one NumPyro ``hmc``
    closure (its sample kernel needs the settings the init call stores in it)."""
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")

    def init(key, init_params, inverse_mass_matrix, args):
        return init_kernel(init_params, num_warmup, inverse_mass_matrix=inverse_mass_matrix,
                           dense_mass=dense_mass, target_accept_prob=target_accept_prob,
                           max_tree_depth=max_tree_depth, model_args=args, rng_key=key)

    return init, sample_kernel


def _steps(sample_kernel, state, args, length: int):
    def step(s, _):
        s = sample_kernel(s, model_args=args)
        return s, (s.z, s.num_steps, s.diverging, s.accept_prob, s.potential_energy, s.energy)

    return jax.lax.scan(step, state, None, length=length)


def _output(state, traces, w: int) -> ChainOutput:
    z, steps, div, acc, pe, en = traces
    ad = state.adapt_state
    return ChainOutput(jax.tree_util.tree_map(lambda a: a[w:], z), steps[w:], div[w:], acc[w:], pe[w:], en[w:],
                       steps[:w].sum(), div[:w].sum(), ad.step_size, ad.inverse_mass_matrix)


def nuts_chain(key, init_params, args: tuple, *, potential_gen, num_warmup: int, num_samples: int,
               dense_mass: bool = True, target_accept_prob: float = 0.8, max_tree_depth: int = 10,
               inverse_mass_matrix=None) -> ChainOutput:
    """Run one chain (traceable: jit/vmap it at the edge).

    Args:
        key: PRNG key.
        init_params: starting point in the unconstrained space (array or pytree).
        args: data passed as ``potential_gen(*args)``.
        potential_gen: returns the potential (negative log density) of the parameters.
        num_warmup, num_samples: iterations (static).
        dense_mass: dense (True) or diagonal mass matrix.
        target_accept_prob: dual-averaging target.
        max_tree_depth: at most 2^depth − 1 leapfrog steps per draw.
        inverse_mass_matrix: initial inverse mass matrix (None: identity).
    """
    init, sample_kernel = _kernel(potential_gen, num_warmup, dense_mass, target_accept_prob, max_tree_depth)
    state = init(key, init_params, inverse_mass_matrix, args)
    state, traces = _steps(sample_kernel, state, args, num_warmup + num_samples)
    return _output(state, traces, num_warmup)


def nuts_chains_segmented(keys, init_params, args: tuple, *, potential_gen, num_warmup: int,
                          num_samples: int, segment: int, dense_mass: bool = True,
                          target_accept_prob: float = 0.8, max_tree_depth: int = 10,
                          inverse_mass_matrix=None, vectorize: bool = False,
                          on_segment: Callable[[int, int, int, float], None] | None = None):
    """Chains run in compiled segments of ``segment`` iterations (the same draws as
    :func:`nuts_chain`), so a long run can report progress (and a caller can save what it
    has) between segments.

    Args:
        keys: PRNG keys ``[C]``; init_params: start points ``[C, d]``.
        args, potential_gen, num_warmup, num_samples, dense_mass, target_accept_prob,
            max_tree_depth, inverse_mass_matrix: as :func:`nuts_chain` (shared by the chains).
        segment: iterations per compiled call (warm-up + sampling are counted together).
        vectorize: vmap the chains (one call per segment) instead of one chain after another.
        on_segment: ``f(chain, iterations_done, total, seconds)`` after each segment
            (``chain`` is -1 when the chains are vmapped).

    Returns:
        ``(ChainOutput stacked over chains, {"compile_s", "run_s"})``.
    """
    init, sample_kernel = _kernel(potential_gen, num_warmup, dense_mass, target_accept_prob, max_tree_depth)
    total = num_warmup + num_samples
    lengths = [min(segment, total - i) for i in range(0, total, segment)]
    v = jax.vmap if vectorize else (lambda f, in_axes=0: f)
    init_j = jax.jit(v(init, in_axes=(0, 0, None, None)))
    seg_j = {n: jax.jit(v(lambda s, a, n=n: _steps(sample_kernel, s, a, n), in_axes=(0, None)))
             for n in set(lengths)}
    k0, u0 = (keys, init_params) if vectorize else (keys[0], init_params[0])
    t0 = time.perf_counter()
    init_c = init_j.lower(k0, u0, inverse_mass_matrix, args).compile()
    state0 = init_c(k0, u0, inverse_mass_matrix, args)  # also the shapes of the segment's state
    seg_c = {n: f.lower(state0, args).compile() for n, f in seg_j.items()}
    t1 = time.perf_counter()
    outs = []
    for c in ([-1] if vectorize else range(len(keys))):
        state = state0 if c <= 0 else init_c(keys[c], init_params[c], inverse_mass_matrix, args)
        parts, done = [], 0
        for n in lengths:
            state, tr = seg_c[n](state, args)
            parts.append(jax.block_until_ready(tr))
            done += n
            if on_segment is not None:
                on_segment(c, done, total, time.perf_counter() - t1)
        ax = 1 if vectorize else 0
        traces = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=ax), *parts)
        if vectorize:
            w = num_warmup
            z, steps, div, acc, pe, en = traces
            ad = state.adapt_state
            out = ChainOutput(jax.tree_util.tree_map(lambda a: a[:, w:], z), steps[:, w:], div[:, w:],
                              acc[:, w:], pe[:, w:], en[:, w:], steps[:, :w].sum(1), div[:, :w].sum(1),
                              ad.step_size, ad.inverse_mass_matrix)
            return out, {"compile_s": t1 - t0, "run_s": time.perf_counter() - t1}
        outs.append(_output(state, traces, num_warmup))
    out = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
    return out, {"compile_s": t1 - t0, "run_s": time.perf_counter() - t1}
