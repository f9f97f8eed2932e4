"""Median stacking (Paper B): exact properties of the pieces, a mock population whose
stack recovers the population's median gradient, and bad input."""

import warnings

import numpy as np
import pytest

import jaxgrad as jg
from jaxgrad import stacking as st
from jaxgrad.physics.cosmology import kpc_per_arcsec

LINES = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")
PIX = 0.05


def _gauss(ny, nx, x0, y0, s=2.0):
    y, x = np.mgrid[0:ny, 0:nx]
    return np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * s**2))


# ----------------------------------------------------------------------------- pieces
@pytest.mark.parametrize("dx,dy", [(0.3, -1.7), (-2.0, 0.0), (1.5, 2.25)])
def test_shift_conserves_flux_and_moves_the_centroid_exactly(dx, dy):
    img = _gauss(40, 42, 20.2, 19.6)
    out = st.shift_image(img, dx, dy)
    assert out.sum() == pytest.approx(img.sum(), rel=1e-10)  # nothing leaves the field
    cx, cy = st.centroid(img)
    cx2, cy2 = st.centroid(out)
    assert (cx2 - cx, cy2 - cy) == (pytest.approx(dx, abs=1e-9), pytest.approx(dy, abs=1e-9))
    # integer shifts are exact copies; variances move with squared weights
    np.testing.assert_array_equal(st.shift_image(img, 2, -1)[:-1, 2:], img[1:, :-2])
    f = dx - np.floor(dx)
    g = dy - np.floor(dy)
    var_sum = ((1 - f) ** 2 + f**2) * ((1 - g) ** 2 + g**2) * img.sum()
    assert st.shift_image(img, dx, dy, square=True).sum() == pytest.approx(var_sum, rel=1e-6)


@pytest.mark.parametrize("n", [7, 8])
def test_resampled_medians_match_nanmedian(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 3, 4, 5))
    x[rng.random(x.shape) < 0.25] = np.nan
    x[:, 0, 0, 0] = np.nan  # a pixel nobody covers
    idx = rng.integers(0, n, size=(30, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.stack([np.nanmedian(x[i], axis=0) for i in idx])
    got = st.resampled_medians(x, idx, chunk=7)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=0, atol=0)


def test_stack_of_one_galaxy_at_integer_offsets_is_that_galaxy():
    ny = nx = 41
    base = np.stack([_gauss(ny, nx, 20, 20, 2.0), 0.3 * _gauss(ny, nx, 20, 20, 3.0)])
    offs = [(0, 0), (2, -1), (-3, 2), (1, 3)]
    maps = [np.roll(3.0 * (i + 1) * base, (oy, ox), axis=(1, 2)) for i, (ox, oy) in enumerate(offs)]
    errs = [np.full_like(m, 1e-3) for m in maps]
    s = st.stack_maps(maps, errs, ("Hb", "OIII_5008"), weights="Hb", n_boot=20)
    np.testing.assert_allclose(s.centers, [(20 + ox, 20 + oy) for ox, oy in offs], atol=1e-9)
    np.testing.assert_allclose(s.norms, [3.0 * (i + 1) * base[0].sum() for i in range(4)], rtol=1e-12)
    # away from the edges the shifted copies are identical, so stack = normalised galaxy
    ref = base / base[0].sum()
    inner = (slice(None), slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(s.maps[inner], ref[inner], rtol=1e-10, atol=1e-15)
    assert np.nanmax(s.err[inner]) < 1e-12  # every bootstrap stack is the same
    assert s.n_used[inner].min() == 4


def test_profile_annulus_sums_of_a_flat_stack_are_areas():
    n = 40
    ones = np.ones((2, n, n))
    s = st.Stack(maps=ones, err=0 * ones, boot=np.stack([ones, 2 * ones]), noise_err=0 * ones,
                 n_used=ones, lines=("Hb", "OIII_5008"), centers=np.zeros((1, 2)), norms=np.ones(1),
                 weights=None)
    p = st.stack_profile(s, None, 0.05, 6.0, n_annuli=5, r_max_arcsec=0.9)
    r_pix = np.linspace(0, 0.9, 6) / 0.05
    area = np.pi * (r_pix[1:] ** 2 - r_pix[:-1] ** 2)
    np.testing.assert_allclose(p.area_pix, area, rtol=0.01)  # 8×8 sub-sampling
    np.testing.assert_allclose(p.flux, np.stack([p.area_pix] * 2))
    np.testing.assert_allclose(p.r_kpc, 6.0 * 0.5 * (np.linspace(0, 0.9, 6)[1:] + np.linspace(0, 0.9, 6)[:-1]))
    np.testing.assert_allclose(p.err, np.stack([p.area_pix] * 2) / np.sqrt(2), rtol=1e-12)  # std of (A, 2A)


# ----------------------------------------------------------------------------- mock population
@pytest.fixture(scope="module")
def population():
    """30 face-on galaxies, z ~ U(4, 6), ∇Z ~ N(−0.1, 0.03) dex/kpc, sub-pixel offsets, noise."""
    n = 30
    rng = np.random.default_rng(1)
    grads = rng.normal(-0.1, 0.03, n)
    zs = rng.uniform(4.0, 6.0, n)
    x0, y0 = rng.uniform(-0.1, 0.1, (2, n))  # arcsec: up to ±2 pixels
    spec = jg.ModelSpec(lines=LINES, calibration="sanders24", ny=32, nx=32, pixel_scale=PIX,
                        range_check="off")
    p = jg.make_params(logoh0=np.full(n, 8.2), grad_z=grads, z=zs, x0=x0, y0=y0, inc=np.zeros(n),
                       r_e=np.full(n, 1.5), psf_fwhm=np.full(n, 0.08), flux_hb=np.full(n, 100.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
        maps = np.asarray(jg.batch_line_maps(p, spec), float)
    sigma = maps[:, 3].max(axis=(1, 2)) / 100.0  # S/N 100 at the [OIII] peak
    noisy = maps + sigma[:, None, None, None] * rng.normal(size=maps.shape)
    errs = np.broadcast_to(sigma[:, None, None, None], maps.shape)
    stack = st.stack_maps(noisy, errs, LINES, weights="OIII_5008", n_boot=100, seed=0)
    # the stack is in arcsec: one kpc/arcsec, that of the sample's median redshift
    prof = st.stack_profile(stack, None, PIX, float(kpc_per_arcsec(np.median(zs))))
    return dict(grads=grads, x0=x0, y0=y0, stack=stack, prof=prof)


def test_stack_centres_on_the_emission_centroid(population):
    s = population["stack"]
    truth = np.c_[15.5 + population["x0"] / PIX, 15.5 + population["y0"] / PIX]
    np.testing.assert_allclose(s.centers, truth, atol=0.2)  # pixels; noise in the S/N ≥ 3 mask
    np.testing.assert_allclose(np.nansum(s.maps[3]), 1.0, rtol=0.02)  # [OIII]-normalised
    yy, xx = np.mgrid[0:32, 0:32]
    w = np.nan_to_num(s.maps[3])
    assert (w * xx).sum() / w.sum() == pytest.approx(15.5, abs=0.05)
    assert (w * yy).sum() / w.sum() == pytest.approx(15.5, abs=0.05)


@pytest.mark.parametrize("method", ["invert", "auto"])
def test_stack_recovers_the_population_median_gradient(population, method):
    g = st.stack_gradient(population["prof"], "sanders24", method=method)
    median = float(np.median(population["grads"]))
    assert g.valid.all()
    assert np.all(np.diff(g.logoh) < 0)  # a falling profile
    assert 0 < g.grad_err < 0.03
    assert abs(g.grad - median) < max(0.03, 2 * g.grad_err), (g.grad, g.grad_err, median)
    assert np.isfinite(g.boot_grad).sum() >= 95
    if method == "invert":
        assert g.diagnostics == ("O32",)
    else:  # the pipeline's Method I grid is present in this tree
        assert g.method == ("method1" if st._method1_available() else "invert")


# ----------------------------------------------------------------------------- bad input
def test_stacking_bad_input():
    m = np.ones((2, 2, 8, 8))
    e = np.full_like(m, 0.01)
    with pytest.raises(ValueError, match="unknown line 'OIII'"):
        st.stack_maps(m, e, ("Hb", "OIII"))
    with pytest.raises(ValueError, match="weights line 'OIII_5008' is not among"):
        st.stack_maps(m, e, ("Hb", "Ha"))
    with pytest.raises(ValueError, match="at least two galaxies"):
        st.stack_maps(m[:1], e[:1], ("Hb", "OIII_5008"))
    with pytest.raises(ValueError, match="galaxy 1: maps"):
        st.stack_maps([m[0], m[1, :, :7]], e, ("Hb", "OIII_5008"))
    z = m.copy()
    z[1, 1] = 0.0
    with pytest.raises(ValueError, match="galaxy 1: .*no pixel"):
        st.stack_maps(z, e, ("Hb", "OIII_5008"))
    with pytest.raises(ValueError, match="galaxy 1: total OIII_5008 flux"):
        st.stack_maps(z, e, ("Hb", "OIII_5008"), center="none")
    with pytest.raises(ValueError, match="center must be"):
        st.stack_maps(m, e, ("Hb", "OIII_5008"), center="middle")
    with pytest.raises(ValueError, match=r"shape \[n_gal=2, 2\]"):
        st.stack_maps(m, e, ("Hb", "OIII_5008"), center=np.zeros((3, 2)))
    s = st.stack_maps(m, e, ("Hb", "OIII_5008"), n_boot=5)
    with pytest.raises(ValueError, match="exceeds the half-width"):
        st.stack_profile(s, None, 0.05, 6.0, r_max_arcsec=0.42)
    with pytest.raises(ValueError, match=r"\['Ha'\] are not in the stack"):
        st.stack_profile(s, ["Ha"], 0.05, 6.0, r_max_arcsec=0.2)
    with pytest.raises(ValueError, match="kpc_per_arcsec must be finite"):
        st.stack_profile(s, None, 0.05, -1.0, r_max_arcsec=0.2)
    p = st.stack_profile(s, None, 0.05, 6.0, r_max_arcsec=0.2)
    with pytest.raises(ValueError, match="method must be"):
        st.stack_gradient(p, method="bayes")
    with pytest.raises(ValueError, match="O32 needs line"):
        st.stack_gradient(p, method="invert", diagnostic="O32")
