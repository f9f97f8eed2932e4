
import warnings

import jax
import pytest


from jaxgrad.calibrations import UnverifiedCalibrationWarning  # noqa: E402


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
