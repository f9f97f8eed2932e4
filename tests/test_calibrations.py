"""Calibrations: published test vectors, inversion round trips, branches, flags."""

import json
import warnings
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxgrad as jg
from jaxgrad.calibrations import UnverifiedCalibrationWarning, ionisation

RAW = json.loads(resources.files("jaxgrad.calibrations").joinpath("calibrations.json").read_text())


def _vectors():
    for cname, c in RAW["calibrations"].items():
        for dname, d in c["diagnostics"].items():
            if not d.get("coeffs"):
                continue
            for tv in d.get("test_vectors", []):
                yield cname, dname, tv["12+log(O/H)"], tv["log_ratio"]


@pytest.mark.parametrize("cname,dname,z,expected", list(_vectors()))
def test_published_test_vectors(cname, dname, z, expected):
    cal = jg.calibrations.get(cname)
    got = float(cal.predict(dname, jnp.float32(z)))
    if cname == "bian18" and dname in ("R3", "O32"):
        # test vectors are for Bian's own [OIII]4960+5008 definition; jaxgrad converts
        got -= -np.log10(1 + 1 / 2.98)
    assert got == pytest.approx(expected, abs=2e-4)


def test_available_and_public_api():
    names = jg.calibrations.available()
    for n in ("sanders24", "sanders25", "bian18", "curti20", "nakajima22", "maiolino08"):
        assert n in names
    cal = jg.calibrations.get("sanders24")
    assert cal.diagnostics == ("R3", "O2", "R23", "O32", "Ne3O2")
    assert cal.valid_range("R3") == (7.4, 8.3)


def test_sanders24_r3_inversion_example():
    cal = jg.calibrations.get("sanders24")
    assert cal.invert("R3", 0.79, branch="lower") == pytest.approx(7.599, abs=1e-3)
    assert cal.invert("R3", 0.78, branch="lower") == pytest.approx(7.566, abs=1e-3)
    assert cal.invert("R3", 0.79, branch="upper") == pytest.approx(8.242, abs=1e-3)
    roots = cal.invert("R3", 0.79)
    np.testing.assert_allclose(roots, [7.599, 8.242], atol=1e-3)
    # above the turnover there is no root
    assert np.isnan(cal.invert("R3", 0.9, branch="lower"))
    assert len(cal.invert("R3", 0.9)) == 0
    assert cal.turnover("R3") == pytest.approx(7.921, abs=1e-3)


def test_missing_coefficients_are_left_out_not_guessed():
    cal = jg.calibrations.get("sanders25")
    assert set(cal.missing) == {"N2", "Ne3O2", "S2"}
    for d in cal.missing:
        with pytest.raises(ValueError, match="not found"):
            cal.predict(d, 8.0)


def test_unverified_flag_and_warning():
    cal = jg.calibrations.get("sanders24")
    assert cal.verified("R3") and not cal.verified("O32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedCalibrationWarning)
        cal.predict("R3", 8.0)  # verified: no warning
        with pytest.raises(UnverifiedCalibrationWarning):
            cal.predict("O32", 8.0)


def test_scatter():
    assert jg.calibrations.get("sanders25").scatter("R3") == 0.13
    assert jg.calibrations.get("curti20").scatter("N2") == 0.16
    assert jg.calibrations.get("maiolino08").scatter("R3") is None
    with pytest.warns(UnverifiedCalibrationWarning):
        assert jg.calibrations.get("sanders24").scatter("R3") == 0.09


def test_bad_names():
    with pytest.raises(ValueError, match="unknown calibration"):
        jg.calibrations.get("nope")
    with pytest.raises(ValueError, match="no diagnostic"):
        jg.calibrations.get("sanders24").predict("N2", 8.0)
    with pytest.raises(ValueError, match="branch"):
        jg.calibrations.get("sanders24").invert("R3", 0.8, branch="middle")


def _all_diags():
    for cname in jg.calibrations.available():
        cal = jg.calibrations.get(cname)
        for d in cal.diagnostics:
            yield cname, d


@pytest.mark.parametrize("cname,dname", list(_all_diags()))
def test_invert_round_trips_predict(cname, dname):
    cal = jg.calibrations.get(cname)
    lo, hi = cal.search_range(dname)
    zs = np.linspace(lo + 1e-3, hi - 1e-3, 15)
    with jax.enable_x64(True):
        for z in zs:
            y = float(cal.predict(dname, jnp.float64(z)))
            roots = cal.invert(dname, y)
            assert np.min(np.abs(roots - z)) < 1e-8, (z, roots)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(list(_all_diags())), st.floats(0.0, 1.0))
def test_property_round_trip(cd, u):
    cname, dname = cd
    cal = jg.calibrations.get(cname)
    lo, hi = cal.search_range(dname)
    z = lo + u * (hi - lo)
    with jax.enable_x64(True):
        y = float(cal.predict(dname, jnp.float64(z)))
    roots = cal.invert(dname, y)
    assert np.min(np.abs(roots - z)) < 1e-8
    turn = cal.turnover(dname)
    branch = "lower" if (turn is None or z <= turn) else "upper"
    assert cal.invert(dname, y, branch=branch) == pytest.approx(z, abs=1e-8)


def test_predict_is_jittable_vmappable_differentiable():
    cal = jg.calibrations.get("curti20")
    z = jnp.linspace(7.7, 8.8, 7)
    f = jax.jit(lambda z: cal.predict("R3", z, logu=-2.3))
    np.testing.assert_allclose(f(z), jax.vmap(lambda zz: cal.predict("R3", zz, logu=-2.3))(z), rtol=1e-6)
    g = jax.grad(lambda z: cal.predict("R3", z))(8.2)
    coeffs = np.array(cal.diagnostic("R3").coeffs)
    x = 8.2 - 8.69
    expected = sum(i * c * x ** (i - 1) for i, c in enumerate(coeffs) if i > 0)
    assert float(g) == pytest.approx(expected, rel=1e-5)


def test_line_log_ratios_follow_diagnostics():
    cal = jg.calibrations.get("sanders24")
    z = jnp.array([7.6, 8.0])
    lines = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008", "OIII_4960", "Ha")
    r = cal.line_log_ratios(lines, z)
    np.testing.assert_allclose(r[3], cal.predict("R3", z), rtol=1e-6)
    np.testing.assert_allclose(r[0], cal.predict("O2", z), rtol=1e-6)
    np.testing.assert_allclose(r[1] - r[0], cal.predict("Ne3O2", z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r[3] - r[4], np.log10(2.98), rtol=1e-6)
    np.testing.assert_allclose(r[5], np.log10(2.86), rtol=1e-6)
    np.testing.assert_allclose(r[2], 0.0, atol=0)
    with pytest.raises(ValueError, match="cannot predict"):
        cal.line_log_ratios(("NII_6585",), z)
    with pytest.raises(ValueError, match="unknown line"):
        cal.line_log_ratios(("OIII_5007",), z)


def test_ionisation_surfaces_reproduce_grid():
    """The shipped log U surfaces match the NebulaBayes grid within their stated residuals,
    and the extracted slice reproduces the spot values read off the FITS file."""
    g = ionisation.grid_slices()
    s = ionisation.surfaces()
    spot = g[np.isclose(g[:, 0], 6.2) & np.isclose(g[:, 1], -2.5) & np.isclose(g[:, 2], 8.605)][0]
    np.testing.assert_allclose(spot[3], 0.350, atol=5e-4)  # [OIII]5007/Hβ
    np.testing.assert_allclose(spot[4], 0.375, atol=5e-4)  # [OII]/Hβ
    np.testing.assert_allclose(spot[6], -0.839, atol=5e-4)  # [NII]/Hα
    np.testing.assert_allclose(spot[5] - spot[4], -1.080, atol=5e-4)  # Ne3O2
    fit = g[np.isclose(g[:, 0], s["log_pk"]) & (g[:, 2] <= s["logoh_range"][1] + 1e-6)]
    for j, sp in enumerate(ionisation.SPECIES):
        y = fit[:, 3 + j]
        ref = {z: v for (u, z, v) in zip(fit[:, 1], fit[:, 2], y, strict=True) if np.isclose(u, -2.5)}
        delta = y - np.array([ref[z] for z in fit[:, 2]])
        with jax.enable_x64(True):
            model = np.asarray(ionisation.species_delta(sp, jnp.asarray(fit[:, 2]), jnp.asarray(fit[:, 1])))
        resid = model - delta
        assert np.max(np.abs(resid)) <= s["species"][sp]["max_abs_dex"] + 1e-6
        assert np.sqrt(np.mean(resid**2)) == pytest.approx(s["species"][sp]["rms_dex"], rel=1e-3)


def test_ionisation_term_direction_and_zero_point():
    cal = jg.calibrations.get("sanders24")
    z = 7.8
    assert float(cal.predict("O32", z, logu=-2.5)) == pytest.approx(float(cal.predict("O32", z)), abs=1e-6)
    # higher U -> higher O32 and Ne3O2 (more highly ionised gas)
    assert float(cal.predict("O32", z, logu=-2.0)) > float(cal.predict("O32", z, logu=-3.0)) + 0.3
    assert float(cal.predict("Ne3O2", z, logu=-2.0)) > float(cal.predict("Ne3O2", z, logu=-3.0))
    with pytest.raises(ValueError, match="sum of lines"):
        cal.predict("R23", z, logu=-2.0)
    with pytest.raises(ValueError, match="outside"):
        jg.calibrations.check_logu(-0.5)
