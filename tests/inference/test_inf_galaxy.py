"""Single-galaxy forward-model fits: recovery through beam smearing, diagnostics, outputs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.distributions.transforms import biject_to

import jaxgrad as jg
from jaxgrad.inference import BranchWarning, SoftUniform, fit_galaxy, simulate_galaxy
from jaxgrad.inference.likelihood import log_likelihood
from jaxgrad.inference.priors import restrict_branch, turnover
from jaxgrad.physics.cosmology import kpc_per_arcsec

TRUE_GRAD = 0.2  # dex/kpc
R_E = 2.0  # kpc


def _beam_mock(n, pixel, seed, snr=30.0):
    """Paper A's mock galaxy at z = 5 with 2 R_e / beam = 1.2, ∇Z = +0.2 dex/kpc."""
    fwhm = 2 * R_E / 1.2 / float(kpc_per_arcsec(5.0))  # arcsec
    spec = jg.ModelSpec(ny=n, nx=n, pixel_scale=pixel, use_logu=False)
    p = jg.make_params(logoh0=7.45, grad_z=TRUE_GRAD, r_e=R_E, psf_fwhm=fwhm, z=5.0)
    return simulate_galaxy(jax.random.key(seed), p, spec, snr=snr, name=f"beam-{seed}")


def _observer_gradient(data):
    """Flattened gradient a Paper-A-style annulus measurement gives on the same mock."""
    from jaxgrad.inference.plots import binned_metallicity

    return binned_metallicity(data)[3]


@pytest.fixture(scope="module")
def fast_fit():
    data = _beam_mock(16, 0.15, seed=0)
    res = fit_galaxy(data, fixed={"sersic_n": 1.0}, num_warmup=300, num_samples=400, seed=0)
    return data, res


def test_forward_model_recovers_gradient_through_beam_smearing(fast_fit):
    data, res = fast_fit
    g = np.ravel(res.samples["grad_z"])
    med, sd = np.median(g), np.std(g)
    assert abs(med - TRUE_GRAD) < sd, (med, sd)
    flat = _observer_gradient(data)
    lo, hi = res.interval("grad_z", 0.68)
    assert flat < 0.75 * TRUE_GRAD  # the annulus measurement is flattened ...
    assert not (lo <= flat <= hi), (flat, lo, hi)  # ... and the forward model is not


def test_sampler_diagnostics_on_default_mock(fast_fit):
    _, res = fast_fit
    d = res.diagnostics
    assert d["divergences"] == 0
    assert d["r_hat_max"] < 1.05
    assert d["ess_bulk_min"] > 100
    assert 1 <= d["mean_steps_per_draw"] < 31  # well below the depth-8 cap (255)
    assert d["frac_max_treedepth"] == 0.0
    assert d["ess_per_grad"] > 0.01
    for k in ("grad_evals_warmup", "grad_evals_sampling", "compile_s", "run_s", "branch",
              "frac_z_out_of_range", "n_bad_masked", "e_bfmi_min"):
        assert k in d
    assert res.summary.attrs["divergences"] == 0
    assert set(res.summary.index) == {"logoh0", "grad_z", "flux_hb", "r_e"}
    assert "grad_z" in res.report() and "WARNING" not in res.report()


def test_potential_is_prior_plus_likelihood(fast_fit):
    _, res = fast_fit
    gm = res.model
    u = jnp.asarray(res.model.flat.u_init) + 0.1
    vals = gm.flat.constrain(u, gm.obs)
    expected = 0.0
    for i, k in enumerate(gm.names):
        d = gm.priors[k]
        t = biject_to(d.support)
        expected += d.log_prob(vals[k]) + t.log_abs_det_jacobian(u[i], vals[k])
    expected += log_likelihood(gm.params_from(vals), gm.obs, gm.data.spec, gm.data.kind)
    np.testing.assert_allclose(-gm.flat.potential(u, gm.obs), expected, rtol=1e-5)


def test_inference_data_round_trips_through_netcdf(fast_fit, tmp_path):
    import arviz as az

    _, res = fast_fit
    idata = res.idata
    for g in ("posterior", "sample_stats", "observed_data", "constant_data"):
        assert g in idata.groups()
    path = tmp_path / "fit.nc"
    idata.to_netcdf(path)
    back = az.from_netcdf(path)
    np.testing.assert_allclose(back.posterior["grad_z"].values, res.samples["grad_z"])
    cfg = json.loads(back.attrs["config"])
    assert cfg["fixed"] == {"sersic_n": 1.0} and cfg["sampler"]["num_samples"] == 400
    assert back.constant_data["mask"].shape == (4, 16, 16)
    # the pixel axes carry sky offsets from the field centre (arcsec), symmetric about 0
    ps = res.model.data.spec.pixel_scale
    x = back.observed_data["maps"].coords["x"].values
    np.testing.assert_allclose(x, (np.arange(16) - 7.5) * ps)
    np.testing.assert_allclose(back.observed_data["maps"].coords["y"].values, x)


def test_plots(fast_fit, tmp_path):
    from jaxgrad.inference.plots import plot_corner, plot_profile

    data, res = fast_fit
    fig = plot_profile(res, truth=(7.45, TRUE_GRAD), path=tmp_path / "profile.png")
    assert (tmp_path / "profile.png").stat().st_size > 0 and len(fig.axes) == 1
    fig = plot_corner(res, truths={"grad_z": TRUE_GRAD, "logoh0": 7.45})
    assert len([a for a in fig.axes if a.get_visible()]) == 10  # 4 params: 4 + 6 panels


def test_branch_restriction_of_the_z0_prior():
    spec = jg.ModelSpec(lines=("Hb", "OIII_5008"), ny=8, nx=8, pixel_scale=0.15, use_logu=False)
    t = turnover(spec)
    prior = SoftUniform(7.4, 8.3)
    low, up = restrict_branch(prior, spec, "lower"), restrict_branch(prior, spec, "upper")
    assert (float(low.low), float(low.high)) == pytest.approx((7.4, t))
    assert (float(up.low), float(up.high)) == pytest.approx((t, 8.3))
    with pytest.raises(ValueError, match="no support on the upper branch"):
        restrict_branch(dist.Uniform(7.4, 7.8), spec, "upper")


@pytest.mark.slow
def test_r3_only_is_ambiguous_warns_and_stays_on_one_branch():
    # R3 alone is exactly double-valued: both branches fit, the fit says so and the
    # posterior stays on the branch it picked (no bimodal chain)
    spec = jg.ModelSpec(lines=("Hb", "OIII_5008"), ny=10, nx=10, pixel_scale=0.15, use_logu=False)
    p = jg.make_params(logoh0=7.6, grad_z=0.0, r_e=1.5, psf_fwhm=0.3, z=3.0)
    data = simulate_galaxy(jax.random.key(3), p, spec, snr=20)
    with pytest.warns(BranchWarning, match="preferred by only"):
        res = fit_galaxy(data, fixed={"sersic_n": 1.0, "r_e": 1.5}, num_warmup=200, num_samples=300)
    z0 = np.ravel(res.samples["logoh0"])
    t = turnover(spec)
    # the branch wall is a 0.05-dex Gaussian shoulder: draws may lean over it a little,
    # but never reach the other branch's mode (7.6 below; its mirror ~8.2 above)
    if res.diagnostics["branch"] == "lower":
        assert np.percentile(z0, 99) < t + 0.1 and z0.max() < 8.05
    else:
        assert np.percentile(z0, 1) > t - 0.1 and z0.min() > 7.7
    res = fit_galaxy(data, fixed={"sersic_n": 1.0, "r_e": 1.5}, branch="lower", num_warmup=200,
                     num_samples=300)
    z0 = np.ravel(res.samples["logoh0"])
    assert abs(np.median(z0) - 7.6) < 3 * np.std(z0) and np.percentile(z0, 99) < t + 0.1


@pytest.mark.slow
def test_beam_smearing_recovery_24x24_two_chains():
    data = _beam_mock(24, 0.1, seed=11)
    res = fit_galaxy(data, num_warmup=500, num_samples=1000, num_chains=2, seed=1)
    g = np.ravel(res.samples["grad_z"])
    assert abs(np.median(g) - TRUE_GRAD) < np.std(g)
    lo, hi = res.interval("grad_z", 0.68)
    flat = _observer_gradient(data)
    assert not (lo <= flat <= hi)
    assert res.diagnostics["divergences"] == 0 and res.diagnostics["r_hat_max"] < 1.02


@pytest.mark.slow
def test_cube_fit_with_error_cube():
    from jaxgrad.forward import line_windows

    spec = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), ny=10, nx=10, pixel_scale=0.12,
                        use_logu=False)
    spec = line_windows(spec, z=2.0, n_chan=8)
    p = jg.make_params(logoh0=8.0, grad_z=-0.05, r_e=1.5, psf_fwhm=0.3, z=2.0)
    data = simulate_galaxy(jax.random.key(0), p, spec, snr=20, kind="cube")
    assert data.kind == "cube" and data.maps.shape == (spec.n_chan, 10, 10)
    res = fit_galaxy(data, fixed={"sersic_n": 1.0}, num_warmup=200, num_samples=300)
    g = np.ravel(res.samples["grad_z"])
    assert abs(np.median(g) + 0.05) < 2.5 * np.std(g)
    assert res.diagnostics["divergences"] == 0
    assert "channel" in res.idata.observed_data["maps"].dims


def test_cross_fitted_reference_takes_the_other_half(fast_fit):
    """GalaxyModel.with_reference(on, off): the checkerboard-1 pixels (fitted by ``on``)
    take ``off``'s model as scatter reference and the others ``on``'s — checked against
    add_scatter with each reference model."""
    from jaxgrad.inference.likelihood import add_scatter, checkerboard, predict

    _, res = fast_fit
    gm = res.model
    on = gm.params_from(gm.flat.constrain(jnp.asarray(gm.flat.u_init), gm.obs))
    off = on._replace(logoh0=on.logoh0 + 0.3, grad_z=on.grad_z - 0.05)
    raw, spec, kind = gm.data.obs(), gm.data.spec, gm.data.kind
    err = np.asarray(gm.with_reference(on, off).obs.err)
    e_on = np.asarray(add_scatter(raw, gm.sigma_ln, predict(on, spec, kind, raw.psf_image)).err)
    e_off = np.asarray(add_scatter(raw, gm.sigma_ln, predict(off, spec, kind, raw.psf_image)).err)
    chk = checkerboard(err.shape[-2:]).astype(bool)
    assert np.any(gm.sigma_ln > 0) and not np.allclose(e_on, e_off)
    np.testing.assert_allclose(err[..., chk], e_off[..., chk], rtol=1e-6)
    np.testing.assert_allclose(err[..., ~chk], e_on[..., ~chk], rtol=1e-6)


def test_coherent_scatter_model_samples_one_offset_per_line():
    """scatter_model="coherent": one N(0, s_l) offset per non-Balmer line and galaxy, no
    per-pixel variance; the potential at the true offsets beats the one at zero offsets on
    data whose ratios are coherently offset (the pixel model cannot represent them)."""
    from numpyro.infer.util import unconstrain_fn

    from jaxgrad.inference import GalaxyData
    from jaxgrad.inference.galaxy import build_galaxy_model
    from jaxgrad.inference.likelihood import line_scatter

    spec = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), calibration="sanders25", ny=16, nx=16,
                        pixel_scale=0.1, use_logu=False)
    p = jg.make_params(logoh0=8.1, grad_z=-0.05, r_e=2.0, z=5.0, psf_fwhm=0.3)
    s, _ = line_scatter(spec)
    delta = np.array([0.2, 0.0, -0.1])
    maps = np.asarray(jg.line_maps(p, spec)) * 10 ** delta[:, None, None]
    err = np.full(maps.shape, 0.01 * maps.max())
    known = {f: float(getattr(p, f)) for f in p._fields if f not in ("logoh0", "grad_z", "flux_hb", "r_e", "sersic_n")}
    gm = build_galaxy_model(GalaxyData(maps, err, None, spec, known=known), scatter_model="coherent")
    assert set(gm.offsets) == {"cal_offset_OII_3727_30", "cal_offset_OIII_5008"}
    assert gm.offsets["cal_offset_OII_3727_30"] == (0, pytest.approx(s[0]))
    assert np.all(gm.sigma_ln == 0) and "cal_offset_OIII_5008" in gm.names

    def potential(off_oii, off_oiii):
        vals = {"logoh0": 8.1, "grad_z": -0.05, "flux_hb": float(p.flux_hb), "r_e": 2.0, "sersic_n": 1.0,
                "cal_offset_OII_3727_30": off_oii, "cal_offset_OIII_5008": off_oiii}
        u = unconstrain_fn(gm.model, (gm.obs,), {}, {k: jnp.asarray(vals[k]) for k in gm.names})
        flat = jnp.concatenate([jnp.atleast_1d(u[k]) for k in gm.names])
        return float(gm.flat.potential(flat, gm.obs))

    assert potential(0.2, -0.1) < potential(0.0, 0.0) - 100
    with pytest.raises(ValueError, match="scatter_model"):
        build_galaxy_model(GalaxyData(maps, err, None, spec, known=known), scatter_model="galaxy")
