"""Session fixtures for the pipeline tests (compiled functions are reused).

XLA compilation dominates these tests on a CPU (the chain runs in milliseconds once
compiled, but compiles in ~10-20 s on a shared 2-core machine), so the pipeline tests run
with ``jax_disable_most_optimizations``: compilation is about twice as fast, execution a
little slower, and the results are the same to rounding (the tolerances are far above
it). The flag is set per test module and restored afterwards. It is a process-wide flag
that JAX does not include in its compilation cache key, so a function first compiled
here and reused later in the same session keeps its less-optimised executable (a speed
effect only).
"""

import warnings

import jax
import numpy as np
import pytest
from pipe_helpers import PIX, make_maps

import jaxgrad as jg


@pytest.fixture(scope="session")
def recovery_mocks():
    """Three galaxies, gradients -0.2, 0, +0.2 dex/kpc, negligible PSF (one pixel), high
    S/N; Z0 chosen so that 12+log(O/H) stays inside sanders24's [7.4, 8.3] out to 3 kpc."""
    grads = np.array([-0.2, 0.0, 0.2])
    z0 = np.array([8.15, 7.9, 7.6])
    maps, err = make_maps(grads, z0, PIX)
    return grads, z0, maps, err


@pytest.fixture(autouse=True, scope="module")
def _fast_compilation():
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(autouse=True)
def _no_unverified_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
        yield
