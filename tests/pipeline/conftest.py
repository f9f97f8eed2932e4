"""Session fixtures for the pipeline tests (compiled functions are reused)."""

import warnings

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


@pytest.fixture(autouse=True)
def _no_unverified_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
        yield
