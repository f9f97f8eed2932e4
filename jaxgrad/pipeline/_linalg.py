"""Small symmetric positive (semi-)definite solves for the pipeline's normal equations.

The line fit and the geometry fit solve thousands of tiny systems inside vmapped code.
Up to :data:`UNROLL_MAX` unknowns (the line fit's profiled grid, 4-6; the geometry fit, 6)
a Cholesky written out in array operations, batched by ``vmap`` across all systems at
once, is ~10 % faster per line fit than LAPACK ``potrf``/``trsm`` custom calls with their
per-matrix overhead (A/B in one process), but its program grows as P², so its compile
time does too (P = 14: ~2-4 s against 0.2 s): larger systems go through
:mod:`jax.scipy.linalg` (Cholesky also compiles several times faster than
``jnp.linalg.solve``/``inv``). Both give NaN for a matrix that is not positive definite
after the ridge.

A ridge of ``eps`` times the largest diagonal entry keeps a singular direction (e.g. a
line with no usable channel) finite: that parameter gets a huge variance instead of NaN.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve

# systems up to this size use the written-out Cholesky (program size grows as P²)
UNROLL_MAX = 8


def _regularise(N, eps):
    d = jnp.diagonal(N, axis1=-2, axis2=-1)
    tiny = eps * jnp.maximum(jnp.max(jnp.abs(d), axis=-1, keepdims=True), 1e-30)
    P = N.shape[-1]
    return N + jnp.eye(P, dtype=N.dtype) * tiny[..., None]


def _cholesky_columns(N):
    """Columns of the lower Cholesky factor of ``N [P, P]`` (list of ``[P]``; zeros above)."""
    P = N.shape[-1]
    idx = jnp.arange(P)
    cols = []
    for j in range(P):
        v = N[..., :, j]
        for k in range(j):
            v = v - cols[k] * cols[k][..., j:j + 1]
        d = jnp.sqrt(v[..., j:j + 1])
        cols.append(jnp.where(idx >= j, v / d, 0.0))
    return cols


def _solve_columns(cols, b):
    """x with L Lᵀ x = b for the Cholesky columns of L; ``b [P]`` or ``[P, K]`` (an entry
    of L is a scalar, so the same steps serve a vector and a matrix right-hand side)."""
    P = len(cols)
    y = [b[j] for j in range(P)]
    # forward: L y = b (column-oriented)
    for j in range(P):
        y[j] = y[j] / cols[j][j]
        for i in range(j + 1, P):
            y[i] = y[i] - cols[j][i] * y[j]
    # backward: Lᵀ x = y (row j of Lᵀ is column j of L)
    x = [None] * P
    for j in reversed(range(P)):
        acc = y[j]
        for i in range(j + 1, P):
            acc = acc - cols[j][i] * x[i]
        x[j] = acc / cols[j][j]
    return jnp.stack(x)


def spd_solve(N, b, eps: float = 1e-12):
    """x with N x = b for a symmetric positive (semi-)definite ``N [P, P]``, ``b [P]`` or
    ``[P, K]``."""
    N = _regularise(N, eps)
    if N.shape[-1] <= UNROLL_MAX and N.ndim == 2:
        return _solve_columns(_cholesky_columns(N), b)
    return cho_solve(cho_factor(N, lower=True), b)


def spd_inv(N, eps: float = 1e-12):
    """Inverse of a symmetric positive (semi-)definite ``N [P, P]``."""
    return spd_solve(N, jnp.eye(N.shape[-1], dtype=N.dtype), eps)
