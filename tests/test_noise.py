"""The fast normal sampler: bit for bit jax.random.normal, and Threefry's published answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgrad.instrument import noise


@pytest.mark.parametrize(("key", "count", "expected"), [
    # Random123's known-answer vectors for Threefry-2x32 with 20 rounds (kat_vectors)
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry_known_answers(key, count, expected):
    k = [jnp.uint32(v) for v in key]
    c = [jnp.asarray([v], jnp.uint32) for v in count]
    out = noise._threefry2x32(k[0], k[1], c[0], c[1])
    assert [int(o[0]) for o in out] == list(expected)


@pytest.mark.parametrize("shape", [(1,), (2,), (3,), (7, 5), (3, 3, 3), (48, 64, 64)])
def test_standard_normal_equals_jax_random_normal(shape):
    for seed in (0, 1, 12345):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 7)
        with jax.threefry_partitionable(False):
            ref = np.asarray(jax.random.normal(key, shape, jnp.float32))
        got = np.asarray(noise.standard_normal(key, shape))
        jitted = np.asarray(jax.jit(noise.standard_normal, static_argnums=1)(key, shape))
        assert got.shape == shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(jitted, ref)


def test_standard_normal_vmapped_and_fallbacks():
    keys = jax.random.split(jax.random.PRNGKey(3), 5)
    with jax.threefry_partitionable(False):
        ref = jax.vmap(lambda k: jax.random.normal(k, (11, 4)))(keys)
    got = jax.vmap(lambda k: noise.standard_normal(k, (11, 4)))(keys)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
    # a typed key and float64 fall back to jax.random.normal (same layout)
    tk = jax.random.key(4)
    with jax.threefry_partitionable(False):
        ref_t = jax.random.normal(tk, (6,))
    np.testing.assert_array_equal(np.asarray(noise.standard_normal(tk, (6,))), np.asarray(ref_t))
    # the draws are standard normal: moments of 2e5 of them
    x = np.asarray(noise.standard_normal(jax.random.PRNGKey(9), (200_000,)), np.float64)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1.0) < 0.01
