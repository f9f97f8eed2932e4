"""One NUTS chain as a single ``lax.scan`` over NumPyro's functional ``hmc`` kernel.

Shared by :mod:`jaxgrad.stats`, :mod:`jaxgrad.pipeline.sampling` and the inference
sampler: warm-up (windowed adaptation of step size and diagonal/dense mass matrix) and
sampling run in one scan, so the NUTS kernel is compiled once, and because the data travel
as ``args`` of a module-level ``potential_gen``, later fits of new data of the same shapes
reuse the compiled code (``numpyro.infer.MCMC.run`` re-traces at every call).
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


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


def _output(state, traces, w: int, axis: int = 0) -> ChainOutput:
    """Draws after the ``w`` warm-up iterations (iterations along ``axis``: 1 for vmapped chains)."""
    z, steps, div, acc, pe, en = traces
    ad = state.adapt_state
    idx = (slice(None),) * axis

    def after(a):
        return a[idx + (slice(w, None),)]

    def warm(a):
        return a[idx + (slice(None, w),)].sum(axis)

    return ChainOutput(jax.tree_util.tree_map(after, z), after(steps), after(div), after(acc), after(pe),
                       after(en), warm(steps), warm(div), ad.step_size, ad.inverse_mass_matrix)


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


def _leaves_to_np(tree) -> list[np.ndarray]:
    """Leaves as NumPy arrays (PRNG keys as their raw key data)."""
    out = []
    for x in jax.tree_util.tree_leaves(tree):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out.append(np.asarray(x))
    return out


def _np_to_tree(like, arrays):
    """A pytree shaped like ``like`` from :func:`_leaves_to_np`'s arrays."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    if len(leaves) != len(arrays):
        raise ValueError("checkpoint does not match this sampler's state (another jaxgrad version?)")
    new = []
    for ref, a in zip(leaves, arrays, strict=True):
        if jnp.issubdtype(ref.dtype, jax.dtypes.prng_key):
            new.append(jax.random.wrap_key_data(jnp.asarray(a), impl=jax.random.key_impl(ref)))
        else:
            if a.shape != ref.shape:
                raise ValueError(f"checkpoint array of shape {a.shape} where the sampler has {ref.shape}")
            new.append(jnp.asarray(a, ref.dtype))
    return jax.tree_util.tree_unflatten(treedef, new)


def _fingerprint(*trees, settings) -> str:
    h = hashlib.sha256(repr(settings).encode())
    for t in trees:
        for a in _leaves_to_np(t):
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _segment_file(path: Path, chain: int, k: int) -> Path:
    """Where segment ``k`` of ``chain`` (-1: the vmapped chains) keeps its traces."""
    return path.with_name(f"{path.stem}.c{'v' if chain < 0 else chain}.s{k:05d}.npz")


def _atomic_savez(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _save_checkpoint(path: Path, fp: str, final_states: list, cur: int, done: int, state,
                     segment: tuple | None = None) -> None:
    """Write the newest segment's traces to their own file, then atomically the small head
    file: fingerprint, position, the current chain's state and the finished chains' final
    states. Each segment is written once, so a long run's I/O stays linear in its draws."""
    if segment is not None:
        k, tr = segment
        _atomic_savez(_segment_file(path, cur, k), {f"t{j}": a for j, a in enumerate(_leaves_to_np(tr))})
    arrays = {"fingerprint": np.asarray(fp), "current": np.asarray([cur, done, len(final_states)])}
    for i, st in enumerate(final_states):
        for j, a in enumerate(_leaves_to_np(st)):
            arrays[f"final{i}_{j}"] = a
    for j, a in enumerate(_leaves_to_np(state)):
        arrays[f"state_{j}"] = a
    _atomic_savez(path, arrays)


def _load_segments(path: Path, chain: int, done: int, segment: int, like) -> list:
    """The traces of a chain's first ``done`` iterations, one pytree per segment file."""
    parts = []
    for k in range(-(-done // segment)):
        f = _segment_file(path, chain, k)
        if not f.exists():
            raise ValueError(f"checkpoint {path}: its segment file {f.name} is missing")
        with np.load(f) as z:
            parts.append(_np_to_tree(like(min(segment, done - k * segment)), [z[f"t{j}"] for j in range(len(z.files))]))
    return parts


def remove_checkpoint(path: str | Path) -> None:
    """Delete a NUTS checkpoint: its head file and its segment files."""
    path = Path(path)
    for f in path.parent.glob(f"{path.stem}.c*.s*.npz"):
        f.unlink(missing_ok=True)
    path.unlink(missing_ok=True)


_COMPILED: dict = {}  # nuts_chains_segmented's programs, a few of the most recent


def nuts_chains_segmented(keys, init_params, args: tuple, *, potential_gen, num_warmup: int,
                          num_samples: int, segment: int, dense_mass: bool = True,
                          target_accept_prob: float = 0.8, max_tree_depth: int = 10,
                          inverse_mass_matrix=None, vectorize: bool = False,
                          on_segment: Callable[[int, int, int, float], None] | None = None,
                          checkpoint: str | Path | None = None, time_budget_s: float | None = None):
    """Chains run in compiled segments of ``segment`` iterations (the same draws as
    :func:`nuts_chain` for sequential chains), so a long run reports progress between
    segments and, with ``checkpoint``, writes what it has after each one and resumes
    from there when called again with the same inputs.

    Args:
        keys: PRNG keys ``[C]``; init_params: start points ``[C, d]``.
        args, potential_gen, num_warmup, num_samples, dense_mass, target_accept_prob,
            max_tree_depth, inverse_mass_matrix: as :func:`nuts_chain` (shared by the chains).
        segment: iterations per compiled call (warm-up + sampling are counted together).
        vectorize: vmap the chains (one call per segment) instead of one chain after another.
        on_segment: ``f(chain, iterations_done, total, seconds)`` after each segment
            (``chain`` is -1 when the chains are vmapped).
        checkpoint: a ``.npz`` path: a small head file rewritten atomically after every
            segment, each segment's traces in a file of their own beside it
            (``<stem>.c<chain>.s<k>.npz``); if it exists the run continues from it
            (ValueError if it was written for other keys, data or settings). Left in place
            at the end (:func:`remove_checkpoint` deletes it and its segment files).
        time_budget_s: seconds of running (after compilation) after which sampling stops
            at the end of a segment, keeping the draws made so far (sequential chains: an
            equal share each; warm-up always completes, so the budget can be overrun by
            it). Every chain then keeps as many draws as the shortest. Not combined with
            ``checkpoint``.

    Returns:
        ``(ChainOutput stacked over chains, {"compile_s", "run_s", "resumed_from",
        "num_samples"})`` (``num_samples``: draws kept per chain).
    """
    if time_budget_s is not None and checkpoint is not None:
        raise ValueError("time_budget_s and checkpoint cannot be combined (a checkpoint holds whole chains)")
    total = num_warmup + num_samples
    path = None if checkpoint is None else Path(checkpoint)
    fp = None
    if path is not None:
        # keys, data and settings; not the start points and initial mass matrix, which a
        # caller recomputes (e.g. a MAP) and which no longer matter once a chain has started
        fp = _fingerprint(jax.random.key_data(keys), args,
                          settings=("segment files", num_warmup, num_samples, segment, dense_mass,
                                    target_accept_prob, max_tree_depth, vectorize))
        if path.exists():
            try:
                with np.load(path) as z:
                    written_for = str(z["fingerprint"])
            except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
                # a truncated or damaged checkpoint (a kill mid-write of an older version,
                # a copy cut short): not trusted, and not a reason to lose the run
                warnings.warn(f"checkpoint {path} is damaged ({type(e).__name__}: {e}); starting the chains afresh",
                              UserWarning, stacklevel=3)
                remove_checkpoint(path)
                written_for = fp
            if written_for != fp:
                raise ValueError(f"checkpoint {path} was written for other data, seed or sampler "
                                 "settings; delete it or pass another path")
    v = jax.vmap if vectorize else (lambda f, in_axes=0: f)
    k0, u0 = (keys, init_params) if vectorize else (keys[0], init_params[0])
    t0 = time.perf_counter()
    # compiled programs are reused by later calls with the same potential_gen, settings and
    # shapes (a resumed run, or new data of the same shapes)
    ck = (potential_gen, num_warmup, dense_mass, target_accept_prob, max_tree_depth, vectorize,
          str(jax.tree_util.tree_map(lambda x: (jnp.shape(x), jnp.result_type(x)),
                                     (k0, u0, inverse_mass_matrix, args))))
    if ck not in _COMPILED:
        init, sample_kernel = _kernel(potential_gen, num_warmup, dense_mass, target_accept_prob, max_tree_depth)
        init_c = jax.jit(v(init, in_axes=(0, 0, None, None))).lower(k0, u0, inverse_mass_matrix, args).compile()
        while len(_COMPILED) >= 4:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[ck] = (sample_kernel, init_c, {})
    sample_kernel, init_c, seg_c = _COMPILED[ck]
    state0 = init_c(k0, u0, inverse_mass_matrix, args)  # also the shapes of the segment's state

    def seg(n):
        if n not in seg_c:
            f = jax.jit(v(lambda s, a: _steps(sample_kernel, s, a, n), in_axes=(0, None)))
            seg_c[n] = f.lower(state0, args).compile()
        return seg_c[n]

    seg(min(segment, total))
    t1 = time.perf_counter()
    runs = [-1] if vectorize else list(range(len(keys)))
    ax = 1 if vectorize else 0

    def cat(ps):  # a chain's segment traces joined along the iterations
        return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=ax), *ps)

    outs, final_states, cur, done, state, parts = [], [], runs[0], 0, state0, []
    resumed = None
    if path is not None and path.exists():
        def like(n):  # shapes of n iterations' traces
            return jax.eval_shape(v(lambda s, a: _steps(sample_kernel, s, a, n)[1], in_axes=(0, None)),
                                  state0, args)

        try:
            with np.load(path) as z:
                cur, done, n_fin = (int(x) for x in z["current"])
                nst = len(jax.tree_util.tree_leaves(state0))
                for i in range(n_fin):
                    st = _np_to_tree(state0, [z[f"final{i}_{j}"] for j in range(nst)])
                    final_states.append(st)
                    outs.append(_output(st, cat(_load_segments(path, runs[i], total, segment, like)),
                                            num_warmup, ax))
                state = _np_to_tree(state0, [z[f"state_{j}"] for j in range(nst)])
            if 0 < done < total:
                parts = _load_segments(path, cur, done, segment, like)
            resumed = {"chain": cur, "iterations_done": done, "chains_finished": len(outs)}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
            warnings.warn(f"checkpoint {path} (or one of its segment files) is damaged ({type(e).__name__}: {e}); "
                          "starting the chains afresh", UserWarning, stacklevel=2)
            remove_checkpoint(path)
            outs, final_states, cur, done, state, parts = [], [], runs[0], 0, state0, []
    start = runs.index(cur) + (1 if done >= total else 0)  # resumed after a finished chain: the next
    for i, c in enumerate(runs[start:]):
        if c != cur or done >= total:  # a fresh chain (the first one starts from state0)
            state, parts, done = init_c(keys[c], init_params[c], inverse_mass_matrix, args), [], 0
        cur = c
        t_end = None if time_budget_s is None else t1 + time_budget_s * (i + 1) / len(runs[start:])
        while done < total:
            n = min(segment, total - done)
            state, tr = seg(n)(state, args)
            parts.append(jax.block_until_ready(tr))
            if path is not None:
                # the chain's final state goes to the finished list, not the head's current state
                fin = done + n >= total
                _save_checkpoint(path, fp, final_states + ([state] if fin else []), c, done + n, state,
                                 (done // segment, tr))
                if fin:
                    final_states.append(state)
            done += n
            if on_segment is not None:
                on_segment(c, done, total, time.perf_counter() - t1)
            if t_end is not None and done > num_warmup and time.perf_counter() > t_end:
                break  # out of time: keep the draws so far
        outs.append(_output(state, cat(parts), num_warmup, ax))
    keep = min(int(o.num_steps.shape[-1]) for o in outs)
    timings = {"compile_s": t1 - t0, "run_s": time.perf_counter() - t1, "resumed_from": resumed,
               "num_samples": keep}
    if vectorize:
        return outs[0], timings
    draws = ("z", "num_steps", "diverging", "accept_prob", "potential_energy", "energy")
    outs = [o._replace(**{k: jax.tree_util.tree_map(lambda a: a[:keep], getattr(o, k)) for k in draws})
            for o in outs]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs), timings
