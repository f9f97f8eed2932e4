"""Gradient fits through bins: WLS, Method II median, azimuthal bins, NUTS vs emcee."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgrad.pipeline import gradient, sampling


def _bins(seed=0, n=8, grad=-0.08, z0=8.3, sig=0.05):
    rng = np.random.default_rng(seed)
    r = np.linspace(0.3, 4.5, n)
    e = sig * (1 + 0.5 * rng.random(n))
    y = z0 + grad * r + e * rng.standard_normal(n)
    return r, y, e


def test_wls_matches_numpy_polyfit_and_analytic_covariance():
    r, y, e = _bins()
    mask = np.ones(len(r), bool)
    mask[3] = False
    fit = jax.jit(gradient.wls_gradient)(jnp.asarray(r), jnp.asarray(y), jnp.asarray(e), jnp.asarray(mask))
    (g, a), cov = np.polyfit(r[mask], y[mask], 1, w=1 / e[mask], cov="unscaled")
    assert float(fit.grad) == pytest.approx(g, rel=1e-4)
    assert float(fit.z0) == pytest.approx(a, rel=1e-6)
    assert float(fit.grad_err) == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-4)
    assert float(fit.z0_err) == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-4)
    assert int(fit.n) == 7 and bool(fit.valid)
    # fewer than two bins: NaN and invalid, no exception
    one = gradient.wls_gradient(jnp.asarray(r), jnp.asarray(y), jnp.asarray(e), jnp.arange(8) == 0)
    assert not bool(one.valid) and np.isnan(float(one.grad))


def test_method2_is_the_median_of_diagnostics_with_more_than_two_bins():
    r = np.linspace(0.5, 3.0, 6)
    slopes = np.array([-0.10, -0.05, 0.02, 0.30])
    Y = 8.0 + r[:, None] * slopes[None]
    E = np.full_like(Y, 0.05)
    V = np.ones_like(Y, bool)
    V[2:, 3] = False  # the last diagnostic has only two bins: not used
    res = jax.jit(gradient.method2_gradient)(jnp.asarray(r), jnp.asarray(Y), jnp.asarray(E), jnp.asarray(V))
    assert list(np.asarray(res.used)) == [True, True, True, False]
    assert float(res.grad) == pytest.approx(-0.05, abs=1e-5)
    assert int(res.n_used) == 3
    assert float(res.spread) == pytest.approx(0.06, abs=1e-5)


def test_azimuthal_bins_select_by_angle():
    rng = np.random.default_rng(1)
    n = 300
    r = rng.uniform(0.2, 4.0, n)
    ang = rng.uniform(0.0, 90.0, n)
    slope = np.where(ang < 30, -0.1, np.where(ang < 60, 0.0, 0.1))
    y = 8.0 + slope * r
    fits = gradient.azimuthal_gradients(jnp.asarray(r), jnp.asarray(y), jnp.full(n, 0.05),
                                        jnp.ones(n, bool), jnp.asarray(ang))
    np.testing.assert_allclose(np.asarray(fits.grad), [-0.1, 0.0, 0.1], atol=1e-5)
    assert int(np.sum(np.asarray(fits.n))) == n


def _compare(nuts, emc, tol_sigma, tol_width):
    for k in ("grad", "z0"):
        sd = emc.std[k]
        assert abs(nuts.median[k] - emc.median[k]) < tol_sigma * sd, k
        assert nuts.std[k] == pytest.approx(emc.std[k], rel=tol_width), k


def test_emcee_and_numpyro_gradient_fits_agree_fast():
    """Small version (few samples): same posterior within Monte-Carlo error."""
    r, y, e = _bins(seed=3)
    nuts = sampling.fit_gradient_numpyro(jax.random.key(0), r, y, e, num_warmup=300,
                                         num_samples=1500)
    emc = sampling.fit_gradient_emcee(r, y, e, n_walkers=32, n_steps=600, burn=200, seed=1)
    _compare(nuts, emc, 0.2, 0.15)
    # both agree with the exact (WLS) Gaussian posterior of a flat prior
    wls = gradient.wls_gradient(jnp.asarray(r), jnp.asarray(y), jnp.asarray(e), jnp.ones(len(r), bool))
    assert nuts.std["grad"] == pytest.approx(float(wls.grad_err), rel=0.15)
    assert emc.extra["acceptance"] > 0.2


@pytest.mark.slow
def test_emcee_paper_a_setup_and_numpyro_agree():
    """Paper A's emcee (64 walkers x 2000 steps, 500 burn-in) vs NUTS: medians within
    0.1σ, widths within 10%."""
    r, y, e = _bins(seed=4)
    nuts = sampling.fit_gradient_numpyro(jax.random.key(1), r, y, e, num_warmup=1000,
                                         num_samples=20000)
    emc = sampling.fit_gradient_emcee(r, y, e, seed=2)
    assert emc.samples["grad"].shape == (64, 1500)
    _compare(nuts, emc, 0.1, 0.10)


def test_emcee_rejects_bad_settings():
    r, y, e = _bins()
    with pytest.raises(ValueError, match="burn"):
        sampling.fit_gradient_emcee(r, y, e, n_steps=100, burn=100)
    with pytest.raises(ValueError, match="at least 2 valid bins"):
        sampling.fit_gradient_emcee(r[:1], y[:1], e[:1])
