"""Small symmetric positive (semi-)definite solves for the pipeline's normal equations.

Cholesky (LAPACK ``potrf`` through :mod:`jax.scipy.linalg`) compiles several times faster
than ``jnp.linalg.solve``/``inv`` on CPU, which matters because the line fit and the
geometry fit solve tiny systems at several places inside vmapped code. A ridge of
``eps`` times the largest diagonal entry keeps a singular direction (e.g. a line with no
usable channel) finite: that parameter gets a huge variance instead of NaN.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve


def _regularise(N, eps):
    d = jnp.diagonal(N, axis1=-2, axis2=-1)
    tiny = eps * jnp.maximum(jnp.max(jnp.abs(d), axis=-1, keepdims=True), 1e-30)
    P = N.shape[-1]
    return N + jnp.eye(P, dtype=N.dtype) * tiny[..., None]


def spd_solve(N, b, eps: float = 1e-12):
    """x with N x = b for a symmetric positive (semi-)definite ``N [P, P]``."""
    c = cho_factor(_regularise(N, eps), lower=True)
    return cho_solve(c, b)


def spd_inv(N, eps: float = 1e-12):
    """Inverse of a symmetric positive (semi-)definite ``N [P, P]``."""
    P = N.shape[-1]
    c = cho_factor(_regularise(N, eps), lower=True)
    return cho_solve(c, jnp.eye(P, dtype=N.dtype))
