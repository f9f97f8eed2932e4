"""Units at the edge: astropy Quantities converted, never stripped; wrong dimensions refused."""

import astropy.cosmology as ac
import astropy.units as u
import numpy as np
import pytest

import jaxgrad as jg


def test_make_params_converts_quantities():
    p = jg.make_params(psf_fwhm=150 * u.mas, r_e=2000 * u.pc, grad_z=-0.05 * u.dex / u.kpc,
                       flux_hb=1e-16 * u.erg / u.s / u.cm**2, inc=0.5 * u.rad, x0=100 * u.mas,
                       sigma0=8e6 * u.cm / u.s, z=5.0 * u.dimensionless_unscaled)
    np.testing.assert_allclose([float(p.psf_fwhm), float(p.r_e), float(p.grad_z), float(p.flux_hb),
                                float(p.inc), float(p.x0), float(p.sigma0), float(p.z)],
                               [0.15, 2.0, -0.05, 100.0, np.degrees(0.5), 0.1, 80.0, 5.0], rtol=1e-6)
    # batches of Quantities too
    b = jg.make_params(psf_fwhm=[100, 200] * u.mas)
    np.testing.assert_allclose(np.asarray(b.psf_fwhm), [0.1, 0.2], rtol=1e-6)


@pytest.mark.parametrize("kw,name", [({"psf_fwhm": 1 * u.km}, "psf_fwhm"), ({"r_e": 3 * u.arcsec}, "r_e"),
                                     ({"grad_z": 0.1 / u.s}, "grad_z"), ({"z": 1 * u.kpc}, "z")])
def test_wrong_dimension_is_a_value_error_naming_the_argument(kw, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        jg.make_params(**kw)


def test_model_spec_pixel_scale_and_astropy_cosmology():
    s = jg.ModelSpec(pixel_scale=50 * u.mas, cosmology=ac.FlatLambdaCDM(H0=70, Om0=0.3))
    assert s.pixel_scale == pytest.approx(0.05) and s.cosmology == (70.0, 0.3)
    assert s == jg.ModelSpec(pixel_scale=0.05)  # hashable, equal to the plain-number spec
    maps = jg.line_maps(jg.make_params(), s)  # traced fine (was: a tracer error inside JAX)
    assert np.all(np.isfinite(np.asarray(maps)))
    assert jg.ModelSpec(cosmology=ac.Planck18).cosmology == pytest.approx((67.66, 0.30966))
    with pytest.raises(ValueError, match="pixel_scale must be"):
        jg.ModelSpec(pixel_scale=1 * u.kpc)
    with pytest.raises(ValueError, match="flat"):
        jg.ModelSpec(cosmology=ac.LambdaCDM(H0=70, Om0=0.3, Ode0=0.6))


def test_pipeline_entry_points_take_quantities():
    from jaxgrad.pipeline import batched_gradient_from_maps

    spec = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), calibration="sanders25", ny=24, nx=24,
                        pixel_scale=0.08, range_check="off")
    m = np.asarray(jg.line_maps(jg.make_params(logoh0=8.0, grad_z=-0.05, psf_fwhm=0.2), spec))[None]
    e = np.full_like(m, 1e-3 * m.max())
    kw = dict(calibration="sanders25", diagnostics=("R3", "O2"), warn=False)
    a = batched_gradient_from_maps(m, e, spec.lines, 0.08, 5.0, 0.2, **kw)
    b = batched_gradient_from_maps(m, e, spec.lines, 80 * u.mas, 5.0, 200 * u.mas, **kw)
    assert float(a.grad[0]) == pytest.approx(float(b.grad[0]), rel=1e-6)
    with pytest.raises(ValueError, match="psf_fwhm"):
        batched_gradient_from_maps(m, e, spec.lines, 0.08, 5.0, 2 * u.kpc, **kw)


def test_jax_angular_scale_equals_astropy():
    from jaxgrad.physics.cosmology import kpc_per_arcsec as jax_scale
    from jaxgrad.units import kpc_per_arcsec

    z = np.array([0.5, 2.0, 5.0, 9.0])
    np.testing.assert_allclose(np.asarray(jax_scale(z)), kpc_per_arcsec(z), rtol=2e-5)
    np.testing.assert_allclose(kpc_per_arcsec(5.0, ac.FlatLambdaCDM(H0=70, Om0=0.3, Tcmb0=0)), kpc_per_arcsec(5.0),
                               rtol=1e-9)
