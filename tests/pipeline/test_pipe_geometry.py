"""Geometry fit, PSF homogenisation, annuli and Voronoi binning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxgrad.instrument import psf as ipsf
from jaxgrad.physics import disk
from jaxgrad.pipeline import annuli, geometry, psf_match, voronoi

N, PIX = 40, 0.05


def _gauss_image(x0, y0, s_maj, q, pa):
    dx, dy = geometry.pixel_grid(N, N, PIX)
    u, v, _ = disk.disk_coordinates(dx - x0, dy - y0, pa, 0.0)
    return np.array(100.0 * jnp.exp(-0.5 * (u**2 / s_maj**2 + v**2 / (q * s_maj) ** 2)))


def test_gaussian_fit_recovers_centre_axis_ratio_and_pa():
    """(The fit to an inclined exponential disk is checked in test_pipe_recovery.)"""
    fit = jax.jit(lambda im: geometry.fit_gaussian_2d(im, PIX))
    truth = [(0.1, -0.05, 0.2, 0.5, 40.0), (-0.07, 0.12, 0.15, 0.8, 150.0),
             (0.0, 0.0, 0.25, 0.95, 95.0)]
    for k, (x0, y0, s, q, pa) in enumerate(truth):
        im = _gauss_image(x0, y0, s, q, pa)
        if k == 1:
            im[3, 5] = np.nan  # masked, not propagated
        g = fit(jnp.asarray(im))
        assert float(g.x0) == pytest.approx(x0, abs=1e-3)
        assert float(g.y0) == pytest.approx(y0, abs=1e-3)
        assert float(g.q) == pytest.approx(q, abs=2e-3)
        assert float(g.sigma_maj) == pytest.approx(s, rel=5e-3)
        d = (float(g.pa) - pa + 90.0) % 180.0 - 90.0
        assert abs(d) < 0.5
        assert bool(g.converged)


def test_homogenisation_reaches_the_target_psf():
    """Gaussian ⊗ Gaussian: widths add in quadrature (circular and elliptical)."""
    n = 33
    point = np.zeros((n, n))
    point[n // 2, n // 2] = 1.0
    src = np.array([0.10, 0.15, 0.20])

    def g1(f):  # pixel-integrated 1-D Gaussian, NumPy
        d = np.arange(-(n // 2), n // 2 + 1)
        s = f * ipsf.FWHM_TO_SIGMA / PIX
        k = stats.norm.cdf((d + 0.5) / s) - stats.norm.cdf((d - 0.5) / s)
        return k / k.sum()

    stack = np.stack([np.outer(g1(f), g1(f)) for f in src])
    out, _ = jax.jit(psf_match.homogenise_stack, static_argnums=2)(jnp.asarray(stack), None, PIX,
                                                                  jnp.asarray(src), 0.25)
    target = np.outer(g1(0.25), g1(0.25))
    off = (np.arange(n) - n // 2) * PIX
    s_t = 0.25 * ipsf.FWHM_TO_SIGMA
    for img in np.asarray(out):
        assert img.sum() == pytest.approx(1.0, rel=1e-4)
        # variances add: the output is the source (pixel-integrated) convolved with a
        # pixel-integrated kernel, so it carries two pixel boxes (2/12 px²), the
        # pixel-integrated target one
        var_x = np.sum(img.sum(0) * off**2)
        assert var_x == pytest.approx(s_t**2 + 2 * PIX**2 / 12, rel=2e-3)
        np.testing.assert_allclose(img, target, atol=3e-2 * target.max())
    # elliptical: the kernel's covariance is the difference of the two
    kf, kq, kpa = psf_match.matching_kernel_shape(0.1, 0.3, 1.0, 0.5, 0.0, 30.0)
    cov_k = psf_match.gaussian_covariance(kf, kq, kpa)
    diff = psf_match.gaussian_covariance(0.3, 0.5, 30.0) - psf_match.gaussian_covariance(0.1)
    np.testing.assert_allclose(np.asarray(cov_k), np.asarray(diff), atol=1e-6)


def test_annulus_width_and_assignment():
    # HWHM of the geometric-mean axis; floored at one pixel
    assert float(annuli.annulus_width(0.3, PIX, 0.64)) == pytest.approx(0.5 * 0.3 * 0.8)
    assert float(annuli.annulus_width(0.02, PIX)) == pytest.approx(PIX)
    g = geometry.make_geometry(0.0, 0.0, 0.5, 0.0)
    idx, a, ang = annuli.annulus_index(g, N, N, PIX, 0.1, 5)
    a, ang, idx = np.asarray(a), np.asarray(ang), np.asarray(idx)
    dx, dy = (np.asarray(v) for v in geometry.pixel_grid(N, N, PIX))
    # PA 0: major axis along y; b/a = 0.5 stretches x by 2 in the disk plane
    np.testing.assert_allclose(a, np.hypot(np.broadcast_to(dy, a.shape), 2 * np.broadcast_to(dx, a.shape)), rtol=1e-5)
    assert np.all(idx == np.minimum(np.floor(a / 0.1), 5))
    assert ang.min() >= 0 and ang.max() <= 90
    w = annuli.annulus_weights(jnp.asarray(idx), 5)
    assert np.all(np.asarray(w).sum(0) == (idx < 5).ravel())


def test_contiguous_valid_stops_at_first_failure():
    ok = jnp.array([True, True, False, True, True])
    assert list(np.asarray(annuli.contiguous_valid(ok))) == [True, True, False, False, False]


def test_voronoi_bins_reach_the_target_snr():
    yy, xx = np.mgrid[0:32, 0:32]
    sig = 100 * np.exp(-np.hypot(xx - 15.5, yy - 15.5) / 4.0)
    noise = np.full_like(sig, 3.0)
    lab = voronoi.voronoi_bins(sig, noise, 20.0)
    snr = voronoi.bin_snr(lab, sig, noise)
    binned = sig / noise >= 1.0
    assert np.all(lab[binned] >= 0) and np.all(lab[~binned] == -1)
    # every bin close to or above the target; single bright pixels stay alone
    assert np.min(snr) > 0.8 * 20.0
    assert np.median(snr) < 2.0 * 20.0
    assert lab.max() + 1 > 20
    with pytest.raises(ValueError, match="target_snr"):
        voronoi.voronoi_bins(sig, noise, 0.0)
