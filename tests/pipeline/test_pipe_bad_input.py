"""Bad input: masked NaN/inf pixels, missing lines, nothing measurable, invalid errors."""

import warnings

import numpy as np
import pytest
from pipe_helpers import CAL, LINES, PIX, Z, run_batched, run_single

from jaxgrad.pipeline import batched_gradient_from_cubes, measure_cube, measure_maps


def test_nan_and_inf_pixels_are_masked_not_propagated(recovery_mocks):
    grads, _, maps, err = recovery_mocks
    clean = run_single(maps[0], err[0])
    m = maps[0].copy()
    rng = np.random.default_rng(5)
    iy, ix = rng.integers(0, m.shape[1], 40), rng.integers(0, m.shape[2], 40)
    m[1, iy[:20], ix[:20]] = np.nan
    m[3, iy[20:], ix[20:]] = np.inf
    e = err[0].copy()
    e[0, 10, 10] = np.nan
    r = run_single(m, e)
    assert r.measurable
    assert np.isfinite(r.method1["grad"]) and np.isfinite(r.method2["grad"])
    assert r.method1["grad"] == pytest.approx(clean.method1["grad"], abs=0.01)
    assert all(np.isfinite(r.bins["flux_Hb"][r.bins["valid"]]))


def test_missing_line_drops_only_the_diagnostics_that_need_it(recovery_mocks):
    grads, _, maps, err = recovery_mocks
    m = maps[0].copy()
    m[LINES.index("NeIII_3870")] = np.nan
    with pytest.warns(UserWarning, match=r"NeIII_3870 missing.*Ne3O2 \(needs NeIII_3870\)"):
        r = run_single(m, err[0])
    assert r.dropped_lines == ("NeIII_3870",)
    assert set(r.dropped_diagnostics) == {"Ne3O2"}
    assert any("Ne3O2" in msg for msg in r.messages)
    assert not r.per_diagnostic["Ne3O2"]["used"]
    assert r.per_diagnostic["R3"]["used"] and r.per_diagnostic["O2"]["used"]
    assert r.measurable
    # R3 + O2 alone constrain Z far less (R3 turns over at 7.92, O2 scatters by 0.22 dex)
    assert abs(r.method1["grad"] - grads[0]) < 2 * r.method1["grad_err"]
    # dict input with the line absent behaves the same
    d = {n: maps[0][i] for i, n in enumerate(LINES) if n != "NeIII_3870"}
    de = {n: err[0][i] for i, n in enumerate(LINES) if n != "NeIII_3870"}
    with pytest.warns(UserWarning, match="Ne3O2"):
        r2 = measure_maps(d, de, LINES, PIX, Z, PIX, CAL, diagnostics=r.diagnostics,
                          max_radius_kpc=3.0, radius_mode="flux_weighted", samplers=())
    assert r2.method1["grad"] == pytest.approx(r.method1["grad"], abs=1e-5)


def test_all_lines_below_snr_give_a_flag_not_a_crash(recovery_mocks):
    _, _, maps, err = recovery_mocks
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r = run_single(maps[0], err[0] * 1e5, samplers=("nuts", "emcee"))
    assert not r.measurable
    assert np.isnan(r.method1["grad"]) and np.isnan(r.method2["grad"])
    assert any("no metallicity measurable" in m for m in r.messages)
    assert any("samplers skipped" in m for m in r.messages)
    assert r.idata is None
    assert not r.bins["measurable"].any()


def test_batched_core_handles_bad_galaxies_without_affecting_good_ones(recovery_mocks):
    grads, _, maps, err = recovery_mocks
    good = run_batched(maps, err, PIX)
    m, e = maps.copy(), err.copy()
    m[0, :, :5, :] = np.nan                      # galaxy 0: a masked strip
    m[1, LINES.index("OII_3727_30")] = np.nan    # galaxy 1: [OII] missing (only R3 left)
    e[2] *= 1e5                                  # galaxy 2: nothing detected
    res = run_batched(m, e, PIX)
    assert res.grad[0] == pytest.approx(good.grad[0], abs=0.01)
    assert res.measurable[1]
    d = list(res.diagnostics)
    assert np.isnan(res.grad_diag[1, d.index("O2")]) and np.isnan(res.grad_diag[1, d.index("Ne3O2")])
    assert not res.measurable[2] and np.isnan(res.grad[2]) and res.n_bins[2] == 0


def test_non_positive_errors_raise(recovery_mocks):
    _, _, maps, err = recovery_mocks
    e = err[0].copy()
    e[2, 4, 4] = 0.0
    with pytest.raises(ValueError, match=r"errs must be > 0 where finite"):
        measure_maps(maps[0], e, LINES, PIX, Z, PIX, CAL, samplers=())
    e[2, 4, 4] = -1.0
    with pytest.raises(ValueError, match=r"errs must be > 0"):
        run_batched(maps, np.broadcast_to(e, maps.shape), PIX)
    cube = np.ones((50, 8, 8))
    cerr = np.ones_like(cube)
    cerr[3, 2, 2] = 0.0
    wav = np.linspace(2.2, 3.1, 50)
    with pytest.raises(ValueError, match=r"err must be > 0"):
        measure_cube(cube, cerr, wav, Z, LINES, PIX, PIX, CAL, samplers=())
    with pytest.raises(ValueError, match=r"errs must be > 0"):
        batched_gradient_from_cubes(cube[None], cerr[None], wav, LINES, PIX, Z, PIX)


def test_other_invalid_arguments_are_named(recovery_mocks):
    _, _, maps, err = recovery_mocks
    with pytest.raises(ValueError, match="mode"):
        measure_maps(maps[0], err[0], LINES, PIX, Z, PIX, CAL, mode="rings")
    with pytest.raises(ValueError, match="maps must have shape"):
        measure_maps(maps[0][:3], err[0][:3], LINES, PIX, Z, PIX, CAL)
    with pytest.raises(ValueError, match="psf_fwhm"):
        measure_maps(maps[0], err[0], LINES, PIX, Z, -0.1, CAL)
    with pytest.raises(ValueError, match="radius_mode"):
        measure_maps(maps[0], err[0], LINES, PIX, Z, PIX, CAL, radius_mode="centre")
    with pytest.raises(ValueError, match="unknown calibration"):
        measure_maps(maps[0], err[0], LINES, PIX, Z, PIX, "nonsense")
    with pytest.raises(ValueError, match="wavelengths_um"):
        measure_cube(np.ones((5, 4, 4)), None, np.array([3.0, 2.0, 2.5, 2.6, 2.7]), Z,
                     LINES, PIX, PIX, CAL)
    with pytest.raises(ValueError, match="outside the cube"):
        batched_gradient_from_cubes(np.ones((1, 5, 4, 4)), None, np.linspace(2.2, 2.3, 5),
                                    LINES, PIX, Z, PIX)
