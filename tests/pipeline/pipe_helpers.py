"""Helpers shared by the pipeline tests: one mock field and one chain configuration.

Compilation dominates the cost of these tests on CPU, so every map-based test uses the
same field (48 x 48 pixels of 0.05", z = 5), the same lines and diagnostics and the same
static options; only traced values (data, PSF, radius cap, radius definition) change.
"""

import warnings

import numpy as np

import jaxgrad as jg
from jaxgrad.pipeline import batched_gradient_from_maps, measure_maps

LINES = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")
PIX = 0.05
NPIX = 48
Z = 5.0
CAL = "sanders24"


def self_consistent_diagnostics():
    """The diagnostics the forward model uses to make these lines (R3, O2, Ne3O2): with
    them the mocks are exactly consistent with the calibration (sanders24's O32 and R23
    are separate fits, not R3 - O2)."""
    return jg.calibrations.get(CAL).diagnostics_for_lines(LINES)


def make_maps(grad, logoh0, psf_fwhm, *, noise_frac=0.003, seed=0, inc=20.0, pa=30.0,
              flux_hb=300.0, r_e=2.0):
    """Noisy forward-model maps ``[B, L, ny, nx]`` and errors (constant per line, a fixed
    fraction of the central pixel, so S/N falls outwards)."""
    spec = jg.ModelSpec(lines=LINES, calibration=CAL, ny=NPIX, nx=NPIX, pixel_scale=PIX,
                        range_check="off")
    p = jg.make_params(grad_z=grad, logoh0=logoh0, psf_fwhm=psf_fwhm, z=Z, inc=inc, pa=pa,
                       flux_hb=flux_hb, r_e=r_e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
        maps = np.asarray(jg.batch_line_maps(p, spec), float)
    c = NPIX // 2
    err = np.broadcast_to(maps[:, :, c:c + 1, c:c + 1] * noise_frac, maps.shape).copy()
    rng = np.random.default_rng(seed)
    return maps + rng.normal(size=maps.shape) * err, err


COMMON = dict(diagnostics=None, max_radius_kpc=3.0, radius_mode="flux_weighted")


def run_batched(maps, err, psf_fwhm, **kw):
    """The one batched configuration the tests share (compiled once per batch size)."""
    opts = dict(calibration=CAL, **COMMON)
    opts["diagnostics"] = self_consistent_diagnostics()
    opts.update(kw)
    return batched_gradient_from_maps(maps, err, LINES, PIX, Z, psf_fwhm, **opts)


def run_single(maps, err, psf_fwhm=PIX, **kw):
    """The one single-galaxy configuration (measure_maps, annuli) the tests share."""
    opts = dict(COMMON, samplers=())
    opts["diagnostics"] = self_consistent_diagnostics()
    opts.update(kw)
    return measure_maps(maps, err, LINES, PIX, Z, psf_fwhm, CAL, **opts)
