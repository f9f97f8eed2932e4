"""Dust curves, cosmology, disk geometry: against published values and astropy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgrad.physics import cosmology, disk, dust


def test_calzetti_published_values():
    # Calzetti+2000 eq. 4 at Hα and Hβ (commonly quoted k = 3.33, 4.60)
    k = dust.calzetti_k(np.array([0.65646, 0.48627]))
    np.testing.assert_allclose(k, [3.325, 4.597], atol=2e-3)
    # the two published branches nearly meet at 0.63 µm, and k(V) ≈ R_V
    blue = 2.659 * (-2.156 + 1.509 / 0.63 - 0.198 / 0.63**2 + 0.011 / 0.63**3) + 4.05
    assert dust.calzetti_k(0.63) == pytest.approx(blue, abs=0.03)  # published jump 0.025
    assert dust.calzetti_k(0.5500) / dust.CALZETTI_RV == pytest.approx(1.0, abs=0.01)


def test_smc_matches_dust_extinction_package():
    dx = pytest.importorskip("dust_extinction.averages")
    import astropy.units as u

    lam = np.array([0.3727, 0.3869, 0.4862, 0.5008, 0.6565, 0.6725, 1.0, 2.0])
    ref = dx.G03_SMCBar()(lam * u.micron)
    np.testing.assert_allclose(dust.smc_alav(lam), ref, rtol=1e-10)


def test_balmer_decrement_round_trip():
    for law in dust.LAWS:
        a_ha, a_hb = dust.line_alav(("Ha", "Hb"), law)
        av = 0.8
        ratio = 2.86 * 10 ** (-0.4 * av * (a_ha - a_hb))
        assert dust.balmer_decrement_av(ratio, law) == pytest.approx(av, rel=1e-12)


def test_bad_dust_inputs():
    with pytest.raises(ValueError, match="unknown dust law"):
        dust.alav(0.5, "mw")
    with pytest.raises(ValueError, match="0.12-2.2"):
        dust.calzetti_k(0.05)


@pytest.mark.parametrize("z", [0.1, 1.0, 2.5, 5.0, 9.0])
def test_kpc_per_arcsec_matches_astropy(z):
    import astropy.units as u
    from astropy.cosmology import FlatLambdaCDM

    ref = FlatLambdaCDM(H0=70, Om0=0.3).kpc_proper_per_arcmin(z).to(u.kpc / u.arcsec).value
    with jax.enable_x64(True):
        got = float(cosmology.kpc_per_arcsec(jnp.float64(z)))
    assert got == pytest.approx(ref, rel=1e-9)


def test_sersic_normalisation_integrates_to_total():
    r = np.linspace(0, 60, 200001)
    for n in (0.5, 1.0, 2.0, 4.0):
        with jax.enable_x64(True):
            sig = np.asarray(disk.sersic_surface_density(jnp.asarray(r), 3.0, 2.0, n))
        tot = np.trapezoid(2 * np.pi * r * sig, r)
        assert tot == pytest.approx(3.0, rel=2e-4 if n < 4 else 5e-3)
        # half the light inside r_e
        inner = np.trapezoid((2 * np.pi * r * sig)[r <= 2.0], r[r <= 2.0])
        assert inner == pytest.approx(1.5, rel=1e-3)


def test_disk_coordinates_major_axis_along_pa():
    # PA = 90 deg (East = -x): a point at dx = -1 lies on the major axis
    xm, ym, q = disk.disk_coordinates(-1.0, 0.0, 90.0, 60.0)
    assert float(xm) == pytest.approx(1.0) and abs(float(ym)) < 1e-6
    xm, ym, q = disk.disk_coordinates(0.0, 1.0, 90.0, 60.0)
    assert abs(float(xm)) < 1e-6 and float(abs(ym)) == pytest.approx(2.0, rel=1e-5)  # de-projected by 1/cos60


def test_rotation_curve_limits_and_gradient_at_centre():
    v = disk.arctan_velocity_over_r(jnp.array([0.0, 1e-6, 1.0, 1e3]), 200.0, 1.0)
    assert float(v[0]) == pytest.approx(2 / np.pi * 200.0, rel=1e-6)
    assert float(v[2]) == pytest.approx(2 / np.pi * 200.0 * np.arctan(1.0), rel=1e-6)
    g = jax.grad(lambda x: disk.los_velocity(x, 0.0, 200.0, 1.0, 60.0))(0.0)
    assert np.isfinite(float(g))
    g2 = jax.grad(lambda r: disk.sersic_surface_density(r, 1.0, 2.0, 1.0))(0.0)
    assert np.isfinite(float(g2))
