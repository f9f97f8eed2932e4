"""Forward model: analytic properties, transformations, gradients and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad as jg
from jaxgrad.forward import model as fm

LINES = ("OII_3727_30", "Hb", "OIII_5008", "Ha")


def _spec(**kw):
    base = dict(lines=LINES, calibration="sanders24", ny=24, nx=24, pixel_scale=0.1,
                range_check="off")
    base.update(kw)
    return jg.ModelSpec(**base)


def test_psf_conserves_flux_on_large_field():
    spec = _spec(ny=48, nx=48, pixel_scale=0.1)
    p = jg.make_params(r_e=0.8, psf_fwhm=0.4, z=2.0)
    before = fm.intrinsic_maps_kernel(p, spec).sum(axis=(1, 2))
    after = jg.line_maps(p, spec).sum(axis=(1, 2))
    np.testing.assert_allclose(after, before, rtol=1e-5)
    for model in ("elliptical", "moffat"):
        s2 = spec.replace(psf_model=model)
        p2 = p._replace(psf_axis_ratio=jnp.float32(0.6), psf_pa=jnp.float32(30.0), psf_beta=jnp.float32(10.0))  # β=10: Moffat wings inside the field
        np.testing.assert_allclose(jg.line_maps(p2, s2).sum(axis=(1, 2)), before, rtol=1e-5)


def test_lsf_and_psf_conserve_flux_in_cube():
    spec = jg.default_channels(_spec(ny=40, nx=40, lines=("Hb", "OIII_4960", "OIII_5008")), 2.0, dv_kms=60.0)
    p = jg.make_params(r_e=0.8, psf_fwhm=0.4, z=2.0, lsf_sigma=150.0, sigma0=60.0)
    maps = fm.intrinsic_maps_kernel(p, spec)
    cube = jg.cube(p, spec)
    assert float(cube.sum()) == pytest.approx(float(maps.sum()), rel=1e-5)
    # the velocity field moves flux between channels but not between lines
    np.testing.assert_allclose(cube.sum(axis=0), jg.line_maps(p, spec).sum(axis=0), rtol=2e-4, atol=1e-6 * float(maps.max()))


def test_flat_gradient_gives_flat_ratio_maps():
    spec = _spec()
    p = jg.make_params(grad_z=0.0, av=0.4, av_grad=0.0, logu=-2.3, logu_grad=0.0, inc=40.0, pa=20.0, z=2.0)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), p)
        m = np.asarray(jg.line_maps(p64, spec))
    r3 = m[2] / m[1]
    o2 = m[0] / m[1]
    assert np.ptp(np.log10(r3)) < 1e-6
    assert np.ptp(np.log10(o2)) < 1e-6


def test_face_on_circular_psf_keeps_symmetry():
    spec = _spec()
    p = jg.make_params(inc=0.0, grad_z=-0.1, z=2.0)
    m = np.asarray(jg.line_maps(p, spec))
    for img in m:
        np.testing.assert_allclose(img, img.T, rtol=1e-5, atol=1e-7 * img.max())
        np.testing.assert_allclose(img, img[::-1, :], rtol=1e-5, atol=1e-7 * img.max())
        np.testing.assert_allclose(img, img[:, ::-1], rtol=1e-5, atol=1e-7 * img.max())


@pytest.mark.parametrize("law", ["calzetti", "smc"])
def test_balmer_decrement_follows_dust_law(law):
    spec = _spec(dust_law=law)
    p = jg.make_params(av=0.7, av_grad=0.1, z=2.0)
    m = np.asarray(jg.line_maps(p, spec.replace(psf_model="gaussian")))
    intr = np.asarray(fm.intrinsic_maps_kernel(p, spec))
    a_ha, a_hb = jg.physics.dust.line_alav(("Ha", "Hb"), law)
    r = fm.radius_map(p, spec)
    av = 0.7 + 0.1 * np.asarray(r)
    expected = 2.86 * 10 ** (-0.4 * av * (a_ha - a_hb))
    np.testing.assert_allclose(intr[3] / intr[1], expected, rtol=2e-5)
    # uniform A_V: the PSF-convolved maps keep the same decrement
    p2 = p._replace(av_grad=jnp.float32(0.0))
    m2 = np.asarray(jg.line_maps(p2, spec))
    np.testing.assert_allclose(m2[3] / m2[1], 2.86 * 10 ** (-0.4 * 0.7 * (a_ha - a_hb)), rtol=2e-5)
    assert m.shape == (4, 24, 24)


def test_vmap_over_64_equals_single_calls():
    spec = _spec(ny=16, nx=16)
    rng = np.random.default_rng(1)
    n = 64
    pb = jg.make_params(
        logoh0=rng.uniform(7.7, 8.1, n), grad_z=rng.uniform(-0.1, 0.1, n), av=rng.uniform(0, 1, n),
        r_e=rng.uniform(0.5, 2.0, n), inc=rng.uniform(0, 70, n), pa=rng.uniform(0, 180, n),
        psf_fwhm=rng.uniform(0.1, 0.5, n), z=rng.uniform(1, 6, n),
    )
    batch = np.asarray(jg.batch_line_maps(pb, spec))
    single = jax.jit(lambda p: fm.line_maps_kernel(p, spec))
    for i in range(n):
        pi = jax.tree_util.tree_map(lambda x: x[i], pb)
        np.testing.assert_allclose(batch[i], np.asarray(single(pi)), rtol=2e-5, atol=1e-7 * batch[i].max())


def _loss_fns():
    rng = np.random.default_rng(0)
    w_maps = rng.normal(size=(4, 12, 12))
    cube_spec = jg.default_channels(_spec(ny=12, nx=12, lines=("Hb", "OIII_5008")), 2.0, dv_kms=120.0, pad_kms=500.0)
    w_cube = rng.normal(size=(cube_spec.n_chan, 12, 12))
    specs = {
        "gaussian": _spec(ny=12, nx=12, oversample=2),
        "elliptical": _spec(ny=12, nx=12, psf_model="elliptical"),
        "moffat": _spec(ny=12, nx=12, psf_model="moffat", dust_law="smc"),
    }
    fns = {k: (lambda p, s=s: jnp.sum(fm.line_maps_kernel(p, s) * w_maps)) for k, s in specs.items()}
    fns["cube"] = lambda p: jnp.sum(fm.cube_kernel(p, cube_spec) * w_cube)
    return fns


RELEVANT = {
    "gaussian": [f for f in jg.GalaxyParams._fields if f not in ("psf_axis_ratio", "psf_pa", "psf_beta", "vmax", "r_t", "sigma0", "lsf_sigma")],
    "elliptical": ["psf_fwhm", "psf_axis_ratio", "psf_pa", "pa", "inc"],
    "moffat": ["psf_fwhm", "psf_beta", "av", "av_grad"],
    "cube": ["vmax", "r_t", "sigma0", "lsf_sigma", "z", "inc", "pa", "logoh0", "grad_z"],
}


@pytest.mark.parametrize("case", list(RELEVANT))
def test_grad_matches_finite_differences(case):
    with jax.enable_x64(True):
        p = jg.make_params(
            dtype=jnp.float64, logoh0=7.9, grad_z=-0.08, av=0.5, av_grad=0.1, logu=-2.6, logu_grad=0.05,
            flux_hb=50.0, r_e=0.6, sersic_n=1.3, x0=0.03, y0=-0.02, pa=30.0, inc=45.0, vmax=180.0,
            r_t=0.5, sigma0=70.0, z=2.0, psf_fwhm=0.25, psf_axis_ratio=0.7, psf_pa=20.0, psf_beta=3.0,
            lsf_sigma=100.0,
        )
        f = jax.jit(_loss_fns()[case])
        g = jax.grad(f)(p)
        for name in RELEVANT[case]:
            x = float(getattr(p, name))
            h = 1e-6 * max(abs(x), 1.0)
            fp = float(f(p._replace(**{name: jnp.float64(x + h)})))
            fmn = float(f(p._replace(**{name: jnp.float64(x - h)})))
            fd = (fp - fmn) / (2 * h)
            gv = float(getattr(g, name))
            assert abs(gv - fd) <= 1e-4 * abs(fd) + 1e-9, (name, gv, fd)
            assert fd != 0.0, name


def test_bad_input_raises_clear_errors():
    spec = _spec()
    with pytest.raises(ValueError, match="unknown line"):
        jg.ModelSpec(lines=("Hb", "OIII_5007"))
    with pytest.raises(ValueError, match="unknown calibration"):
        jg.ModelSpec(calibration="kewley99")
    with pytest.raises(ValueError, match="cannot predict"):
        jg.ModelSpec(lines=("Hb", "NII_6585"), calibration="sanders24")
    with pytest.raises(ValueError, match="r_e"):
        jg.line_maps(jg.make_params(r_e=-1.0), spec)
    with pytest.raises(ValueError, match="inc"):
        jg.line_maps(jg.make_params(inc=95.0), spec)
    with pytest.raises(ValueError, match="inc"):
        jg.line_maps(jg.make_params(inc=-5.0), spec)
    with pytest.raises(ValueError, match="psf_fwhm"):
        jg.line_maps(jg.make_params(psf_fwhm=0.0), spec)
    with pytest.raises(ValueError, match="finite"):
        jg.line_maps(jg.make_params(flux_hb=np.nan), spec)
    with pytest.raises(ValueError, match="valid range"):
        jg.line_maps(jg.make_params(logoh0=8.9), spec.replace(range_check="raise"))
    with pytest.raises(ValueError, match="logu"):
        jg.line_maps(jg.make_params(logu=-0.5), spec)
    with pytest.raises(ValueError, match="unknown parameter"):
        jg.make_params(metallicity=8.0)
    with pytest.raises(ValueError, match="channel_edges"):
        jg.cube(jg.make_params(), spec)
    with pytest.raises(ValueError, match="odd"):
        jg.line_maps(jg.make_params(), spec.replace(psf_model="image"), psf_image=np.ones((4, 4)))
    with pytest.raises(ValueError, match="psf_model"):
        jg.ModelSpec(psf_model="airy")


def test_range_check_warn_mode():
    spec = _spec(range_check="warn")
    with pytest.warns(UserWarning, match="valid range"):
        out = jg.line_maps(jg.make_params(logoh0=8.9, z=2.0), spec)
    assert np.all(np.isfinite(np.asarray(out)))


def test_extreme_field_corners_stay_finite_in_float32():
    """Steep log U and Z gradients on an inclined disk push the field corners far outside
    the calibrated domain; the clamped inputs keep every pixel finite."""
    spec = jg.ModelSpec()
    p = jg.make_params(inc=75, logu=-2.5, logu_grad=0.15, grad_z=-0.1, logoh0=7.9, r_e=2)
    m = np.asarray(jg.line_maps(p, spec))
    assert np.all(np.isfinite(m)) and m.max() < 1e3


def test_unresolved_sources_warn_with_the_oversampling_that_conserves_flux():
    """R_e = 0.1 kpc at z = 2 on 0.05" pixels kept 20 % of its flux at oversample 1 with no
    word. The fraction is checked against an independent float64 pixel integral of the
    exponential disk (scipy dblquad over the face-on pixels), not against the model."""
    import warnings

    from scipy import integrate

    from jaxgrad.forward import SamplingWarning, check_sampling, grid_flux_fraction
    from jaxgrad.physics.cosmology import kpc_per_arcsec

    spec = jg.ModelSpec(lines=("Hb", "OIII_5008"), calibration="sanders25", ny=16, nx=16, pixel_scale=0.05)
    p = jg.make_params(r_e=0.1, z=2.0, inc=0.0)
    with pytest.warns(SamplingWarning, match=r"holds 2\d\.\d % .*ModelSpec\(oversample=\d+\) conserves it"):
        check_sampling(p, spec)
    # independent reference: the exact flux in the field of a face-on exponential disk
    k = float(kpc_per_arcsec(2.0))
    h = 0.1 / 1.6783469900166612 / k  # scale length in arcsec
    half = 8 * 0.05
    exact, _ = integrate.dblquad(lambda y, x: np.exp(-np.hypot(x, y) / h) / (2 * np.pi * h * h),
                                 -half, half, -half, half, epsabs=1e-10)
    fine = float(grid_flux_fraction(p, spec.replace(oversample=16)))
    assert fine == pytest.approx(exact, rel=0.01)
    assert float(grid_flux_fraction(p, spec)) < 0.3 * exact  # what oversample 1 gave silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        check_sampling(jg.make_params(r_e=2.0, z=5.0), spec.replace(ny=48, nx=48))  # resolved: silent
    with pytest.raises(ValueError, match="inc"):
        jg.line_maps(jg.make_params(inc=90.0), spec)


def test_sampling_check_of_a_large_batch_finds_the_unresolved_galaxy():
    """A batch is checked on its hardest-to-sample galaxies (not 16² sub-pixels of each): one
    R_e = 0.1 kpc galaxy among 40 resolved ones is still reported."""
    from jaxgrad.forward import SamplingWarning, check_sampling

    spec = jg.ModelSpec(lines=("Hb", "OIII_5008"), calibration="sanders25", ny=32, nx=32, pixel_scale=0.05)
    r = np.full(41, 2.0)
    r[17] = 0.1
    with pytest.warns(SamplingWarning, match="R_e = 0.1 kpc"):
        check_sampling(jg.make_params(r_e=r, z=np.full(41, 2.0)), spec)
