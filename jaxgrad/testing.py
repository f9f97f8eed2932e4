"""Test helpers: dtype-aware tolerances for arrays and pytrees (public, like tinygp's)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def default_tol(dtype) -> float:
    """5e-7 relative in float64, 5e-4 in float32 (cf. jaxoplanet/tinygp)."""
    return 5e-7 if jnp.dtype(dtype) == jnp.float64 else 5e-4


def assert_allclose(actual, desired, rtol=None, atol=0.0, err_msg=""):
    """np.testing.assert_allclose over pytrees with a dtype-aware default rtol."""
    a_leaves, a_tree = jax.tree_util.tree_flatten(actual)
    d_leaves, d_tree = jax.tree_util.tree_flatten(desired)
    if a_tree != d_tree:
        raise AssertionError(f"pytree structures differ: {a_tree} vs {d_tree}")
    for a, d in zip(a_leaves, d_leaves, strict=True):
        tol = rtol if rtol is not None else default_tol(jnp.result_type(a))
        np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=tol, atol=atol, err_msg=err_msg)
