"""MAP fits with optax on flat unconstrained potentials, and the Laplace curvature there.

Everything here drives one *compiled* ``value_and_grad`` function from Python: optax
Adam (cosine-decayed step) to get near the mode, then a few damped Newton steps with a
finite-difference Hessian (central differences of the compiled gradient, 2d calls) to
polish it. Compiling only the gradient — not an optimiser loop, a line search and a
Hessian, each of which would inline the forward model again — keeps the MAP's
compilation cost to one gradient, which on a CPU dominates the whole fit.

The same code runs batched: with ``vg`` vmapped over a leading axis (galaxies or
simulated data sets), ``x0`` is ``[B, d]`` and every step acts on all rows at once.

Used to initialise NUTS (start point, inverse mass matrix = Laplace covariance), to pick
the branch of a double-valued calibration, and to set per-galaxy centring and
preconditioning in the hierarchical model.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["POLISH", "MapResult", "distinct_rows", "fd_hessian", "find_map", "psd_inverse"]


class MapResult(NamedTuple):
    """Result of :func:`find_map` (NumPy arrays; a leading batch axis if batched).

    Attributes:
        x: mode ``[..., d]`` in unconstrained coordinates.
        value: potential (−log density) at ``x`` ``[...]``.
        grad_norm: gradient norm at ``x`` ``[...]``.
        cov: Laplace covariance (PSD inverse of the FD Hessian) ``[..., d, d]``.
        num_evals: gradient evaluations used.
    """

    x: np.ndarray
    value: np.ndarray
    grad_norm: np.ndarray
    cov: np.ndarray
    num_evals: int


def psd_inverse(h, floor: float = 1e-8, cap: float = 1e2) -> np.ndarray:
    """Inverse of a symmetrised Hessian ``[..., d, d]`` with its variances clipped to
    [floor, cap]: non-positive or float32-noise curvature becomes a wide (``cap``)
    direction. In the unconstrained coordinates used here (dex, log flux, log radius,
    logits) no posterior is wider than ~10, so cap = 100 is generous; a larger cap lets
    one ill-measured galaxy put a 1e8 entry into NUTS's initial mass matrix (seen: every
    draw at the maximum tree depth for 1000 galaxies)."""
    h = np.asarray(h, float)
    h = 0.5 * (h + np.swapaxes(h, -1, -2))
    w, v = np.linalg.eigh(h)
    w = np.clip(np.where(np.isfinite(w), w, 1.0 / cap), 1.0 / cap, 1.0 / floor)
    return np.einsum("...ij,...j,...kj->...ik", v, 1.0 / w, v)


def fd_hessian(vg, x, step: float = 1e-2) -> np.ndarray:
    """Central finite-difference Hessian of a potential from its gradient.

    Args:
        vg: ``x -> (value, grad)`` (compiled; batched over leading axes of x is fine).
        x: point ``[..., d]``.
        step: difference step in unconstrained units (posterior widths there are
            typically 0.01–1; the Hessian only sets start scales, so 1e-2 is ample).

    Returns:
        ``[..., d, d]`` (symmetrised).
    """
    x = np.asarray(x)
    d = x.shape[-1]
    cols = []
    for j in range(d):
        e = np.zeros(d, x.dtype)
        e[j] = step
        gp = np.asarray(vg(jnp.asarray(x + e))[1], float)
        gm = np.asarray(vg(jnp.asarray(x - e))[1], float)
        cols.append((gp - gm) / (2 * step))
    h = np.stack(cols, axis=-1)
    return 0.5 * (h + np.swapaxes(h, -1, -2))


# find_map settings for a start that is already (near) a mode of a closely related
# potential, e.g. the same data with the calibration-scatter variance added, or half the
# pixels: Newton steps only (each 2d + 1 gradient calls, stopping at a Newton decrement
# below decrement_tol) instead of 300 Adam steps, which from a mode only jitter about it.
POLISH = {"adam_steps": 0, "newton_steps": 6}


def distinct_rows(xs, tol: float = 1e-2) -> np.ndarray:
    """The points of ``xs`` (a sequence of ``[d]`` arrays) that differ from every earlier
    kept one by more than ``tol`` in some coordinate, stacked ``[k, d]`` (order kept)."""
    kept: list[np.ndarray] = []
    for x in xs:
        x = np.asarray(x)
        if all(np.max(np.abs(x - k)) > tol for k in kept):
            kept.append(x)
    return np.stack(kept)


def find_map(vg, x0, *, adam_steps: int = 300, lr: float = 0.1, newton_steps: int = 3,
             tol: float = 1e-3, decrement_tol: float = 1e-2) -> MapResult:
    """Mode of a potential: optax Adam, then damped Newton steps; Laplace covariance.

    Args:
        vg: compiled ``x -> (value, grad)`` of the potential (−log density), possibly
            batched over leading axes of ``x``.
        x0: start ``[..., d]``.
        adam_steps: Adam iterations (cosine-decayed step ``lr`` → ``lr``/1000); stops
            early once every gradient norm is below ``tol``.
        lr: initial Adam step (unconstrained units).
        newton_steps: Newton polishing steps (each 2d+1 gradient calls); a step that
            raises the potential is halved (up to 4 times) or dropped.
        tol: gradient-norm tolerance of the Adam phase.
        decrement_tol: Newton stops when the Newton decrement sqrt(gᵀ H⁻¹ g) — the
            distance to the mode in posterior standard deviations — is below this
            (a float32 gradient is too noisy for an absolute gradient test).
    """
    x = jnp.asarray(x0)
    sched = optax.cosine_decay_schedule(lr, max(adam_steps, 1), alpha=1e-3)
    opt = optax.adam(sched)
    update = jax.jit(opt.update)
    state = opt.init(x)
    n = 0
    best_x = np.asarray(x)
    best_v = np.full(x.shape[:-1], np.inf)
    for _ in range(adam_steps):
        v, g = vg(x)
        n += 1
        v_np = np.asarray(v)
        better = np.isfinite(v_np) & (v_np < best_v)
        best_x = np.where(better[..., None], np.asarray(x), best_x)
        best_v = np.where(better, v_np, best_v)
        gn = np.linalg.norm(np.asarray(g), axis=-1)
        if np.all(gn < tol):
            break
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        upd, state = update(g, state)
        x = optax.apply_updates(x, upd)
    v, g = vg(jnp.asarray(best_x))
    x, v, g = best_x, np.asarray(v, float), np.asarray(g, float)
    n += 1
    h = None
    for _ in range(newton_steps):
        h = fd_hessian(vg, x)
        n += 2 * x.shape[-1]
        cov = psd_inverse(h)
        dx = -np.einsum("...ij,...j->...i", cov, g)
        # cap the step at 3 in unconstrained units (far steps come from flat directions)
        scale = np.minimum(1.0, 3.0 / np.maximum(np.max(np.abs(dx), axis=-1), 1e-30))
        dx = dx * scale[..., None]
        done = np.zeros(v.shape, bool)
        for _half in range(5):
            xn = (x + dx).astype(x.dtype)
            vn, gnew = vg(jnp.asarray(xn))
            n += 1
            vn, gnew = np.asarray(vn, float), np.asarray(gnew, float)
            ok = np.isfinite(vn) & (vn <= v + 1e-6 * np.abs(v)) & ~done
            x = np.where(ok[..., None], xn, x)
            v = np.where(ok, vn, v)
            g = np.where(ok[..., None], gnew, g)
            done |= ok
            if np.all(done):
                break
            dx = dx * 0.5
        # Newton decrement sqrt(g' H^-1 g): distance to the mode in posterior sigmas
        if np.all(np.sqrt(np.einsum("...i,...ij,...j->...", g, cov, g)) < decrement_tol):
            break
    h = fd_hessian(vg, x)
    n += 2 * x.shape[-1]
    return MapResult(np.asarray(x), v, np.linalg.norm(g, axis=-1), psd_inverse(h), n)
