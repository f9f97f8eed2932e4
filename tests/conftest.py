
import warnings

import jax
import pytest

from jaxgrad.calibrations import UnverifiedCalibrationWarning  # noqa: E402

# XLA compilation is most of the suite's time on a CPU (356 of 586 s measured on the
# 2-core machine: ~1700 programs, each compiled once), so test modules run with
# ``jax_disable_most_optimizations``: compilation is about twice as fast, execution a
# little slower, results the same to rounding (the tolerances are far above it); the
# whole suite ran ~13 % faster. Modules whose time is execution (long NUTS runs) or that
# assert bit-for-bit equality between two differently structured programs keep XLA's
# optimisations. The flag is process-wide and JAX does not include it in its
# compilation cache key, so a function first compiled under it and reused later in the
# session keeps its less-optimised executable (a speed effect only).
OPTIMISED_MODULES = ("test_inf_sampler.py", "test_inf_sbc.py", "test_stats.py")


@pytest.fixture(autouse=True, scope="module")
def _fast_compilation(request):
    if request.path.name in OPTIMISED_MODULES:
        yield
        return
    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(autouse=True)
def _quiet_unverified():
    """Unverified-calibration warnings are tested explicitly; silence them elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedCalibrationWarning)
        yield


def pytest_collection_modifyitems(config, items):
    if jax.default_backend() != "gpu":
        skip = pytest.mark.skip(reason="needs a GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
