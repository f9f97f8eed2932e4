"""One NUTS chain as a single ``lax.scan`` over NumPyro's functional ``hmc`` kernel.

Shared by :mod:`jaxgrad.stats`, :mod:`jaxgrad.pipeline.sampling` and the inference
sampler: warm-up (windowed adaptation of step size and diagonal/dense mass matrix) and
sampling run in one scan, so the NUTS kernel is compiled once, and because the data travel
as ``args`` of a module-level ``potential_gen``, later fits of new data of the same shapes
reuse the compiled code (``numpyro.infer.MCMC.run`` re-traces at every call).
"""

from __future__ import annotations

from typing import NamedTuple

import jax


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
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
    state = init_kernel(init_params, num_warmup, inverse_mass_matrix=inverse_mass_matrix,
                        dense_mass=dense_mass, target_accept_prob=target_accept_prob,
                        max_tree_depth=max_tree_depth, model_args=args, rng_key=key)

    def step(s, _):
        s = sample_kernel(s, model_args=args)
        return s, (s.z, s.num_steps, s.diverging, s.accept_prob, s.potential_energy, s.energy)

    state, (z, steps, div, acc, pe, en) = jax.lax.scan(step, state, None, length=num_warmup + num_samples)
    w = num_warmup
    ad = state.adapt_state
    return ChainOutput(jax.tree_util.tree_map(lambda a: a[w:], z), steps[w:], div[w:], acc[w:], pe[w:], en[w:],
                       steps[:w].sum(), div[:w].sum(), ad.step_size, ad.inverse_mass_matrix)
