"""Hierarchical model: population recovery and shrinkage."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad as jg
from jaxgrad.inference import fit_population, simulate_galaxy

# range_check off: a few drawn gradients take Z(2 R_e) past 8.3 (sanders24's edge); the
# forward model extrapolates the polynomials consistently in the mocks and the fits
SPEC = jg.ModelSpec(lines=("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008"), ny=12, nx=12,
                    pixel_scale=0.12, use_logu=False, range_check="off")


def _mocks(n, seed, mean=-0.05, sd=0.05, low_every=2):
    rng = np.random.default_rng(seed)
    grads = rng.normal(mean, sd, n)
    gals = []
    for i in range(n):
        snr = 4.0 if i % low_every == 1 else 30.0
        p = jg.make_params(logoh0=8.1, grad_z=grads[i], psf_fwhm=0.3, r_e=1.5, z=2.0)
        gals.append(simulate_galaxy(jax.random.key(100 * seed + i), p, SPEC, snr=snr, name=f"g{i:02d}"))
    return gals, grads


def _assert_shrinkage(res, low):
    """Low-S/N galaxies move toward the population mean: on average their hierarchical
    medians lie nearer to it than their no-pooling MAPs. (Per galaxy, a no-pooling
    *mode* can sit nearer the mean than a skewed posterior's median, so the test is on
    the group.)"""
    mean = res.hyper["mean_grad"]["median"]
    hier = np.array([res.galaxies[n]["grad_z"]["median"] for n in low])
    nopool = np.array([res.galaxies[n]["grad_nopool"] for n in low])
    assert np.mean(np.abs(hier - mean)) < np.mean(np.abs(nopool - mean))


def test_population_small_shrinkage_and_few_divergences():
    gals, grads = _mocks(6, seed=1)
    res = fit_population(gals, fixed={"sersic_n": 1.0}, num_warmup=250, num_samples=300, seed=0)
    d = res.diagnostics
    # six galaxies leave tau's funnel neck in the posterior: a badly parametrised model
    # gives tens of divergences per 300 draws. Re-measured with numpyro 0.22 / jax 0.10 and
    # ArviZ's folded rank R-hat (of one chain's two halves) over seeds 0-4: 3, 2, 1, 0, 0
    # divergences, R-hat 1.08, 1.03, 1.04, 1.05, 1.04 (earlier versions: 0-1 over 10 seeds
    # with the bulk-only R-hat < 1.05)
    assert d["divergences"] <= 3 and d["r_hat_max"] < 1.1
    a = res.hyper["alpha_grad"]
    assert a["q2.5"] < -0.05 < a["q97.5"]
    _assert_shrinkage(res, [n for i, n in enumerate(res.config["names"]) if i % 2 == 1])
    assert res.idata is not None and "grad_z" in res.idata.posterior
    from jaxgrad.inference.plots import plot_population

    fig = plot_population(res, truths=dict(zip(res.config["names"], grads, strict=True)))
    assert len(fig.axes) == 1


def test_population_rejects_bad_inputs():
    gals, _ = _mocks(3, seed=2)
    with pytest.raises(ValueError, match="covariate 'mass' must have one value per galaxy"):
        fit_population(gals, covariates={"mass": [1.0, 2.0]})
    with pytest.raises(ValueError, match="constant"):
        fit_population(gals, covariates={"mass": [1.0, 1.0, 1.0]})
    other = jg.ModelSpec(lines=("Hb", "OIII_5008"), ny=12, nx=12, pixel_scale=0.12, use_logu=False)
    p = jg.make_params(logoh0=8.1, z=2.0)
    with pytest.raises(ValueError, match="differs"):
        fit_population(gals + [simulate_galaxy(jax.random.key(9), p, other, name="odd")])


@pytest.mark.slow
def test_population_20_mocks_recovers_alpha_and_tau():
    gals, grads = _mocks(20, seed=3, low_every=3)
    mass = np.linspace(9.0, 11.0, 20)
    res = fit_population(gals, covariates={"logmstar": mass}, fixed={"sersic_n": 1.0},
                         num_warmup=500, num_samples=1000, num_chains=2, seed=1)
    d = res.diagnostics
    # divergences here are sporadic (tau's funnel neck): seeds 1-3 gave 0, 0, 2 with one
    # first-pass reference and 13, 0, 1 cross-fitted; tens of percent flag a broken model
    assert d["divergences"] <= 0.01 * 2 * 1000 and d["r_hat_max"] < 1.05
    a, t = res.hyper["alpha_grad"], res.hyper["tau_grad"]
    # alpha is at logmstar = 0 (an extrapolation, wide); the mean at the sample's mean
    # mass is the population mean the mocks were drawn with
    assert a["q2.5"] < -0.05 < a["q97.5"], a
    m = res.hyper["mean_grad"]
    assert m["q2.5"] < -0.05 < m["q97.5"], m
    assert t["q2.5"] < 0.05 < t["q97.5"], t
    b = res.hyper["beta_grad[logmstar]"]
    assert b["q2.5"] < 0.0 < b["q97.5"]  # no mass dependence was simulated
    _assert_shrinkage(res, [n for i, n in enumerate(res.config["names"]) if i % 3 == 1])


def test_scatter_profile_matches_closed_form_and_chi2_interval():
    """Equal widths: the ML population scatter is sqrt(max(S² − σ², 0)) with S² the mean
    squared deviation (closed form); the 95% lower end is where the profile log
    likelihood drops by χ²₁(0.95)/2 = 1.92, checked against a direct evaluation."""
    from jaxgrad.inference.population import scatter_profile

    rng = np.random.default_rng(4)
    n, mu, tau, sig = 400, -0.05, 0.05, 0.03
    theta = rng.normal(mu, np.hypot(tau, sig), n)
    out = scatter_profile(theta, np.full(n, sig), spread=0.06)
    s2 = np.mean((theta - theta.mean()) ** 2)
    tau_ml = np.sqrt(max(s2 - sig**2, 0.0))
    assert abs(out["tau"] - tau_ml) < 0.002 * tau_ml + 2e-4  # grid resolution
    assert abs(out["mu"] - theta.mean()) < 1e-3

    def ll(t):
        v = t**2 + sig**2
        return -0.5 * n * (np.log(v) + s2 / v)

    assert abs(ll(out["tau_lo"]) - (ll(tau_ml) - 1.92)) < 0.05
    assert 0 < out["tau_lo"] < tau_ml
    # no intrinsic scatter, few objects: the interval reaches 0
    few = rng.normal(mu, sig, 6)
    assert scatter_profile(few, np.full(6, sig), spread=0.03)["tau_lo"] == 0.0


@pytest.mark.slow
def test_population_checkpoint_returns_the_same_chains(tmp_path):
    """fit_population(checkpoint=...) called again after a finished run takes its chains
    from the file (the per-galaxy MAPs are recomputed); another seed is refused."""
    gals, _ = _mocks(3, seed=4)
    kw = dict(fixed={"sersic_n": 1.0}, num_warmup=60, num_samples=40, checkpoint=tmp_path / "nuts.npz")
    res = fit_population(gals, seed=0, **kw)
    again = fit_population(gals, seed=0, **kw)
    np.testing.assert_array_equal(again.samples["grad_z"], res.samples["grad_z"])
    assert again.diagnostics["run_s"] < res.diagnostics["run_s"]
    with pytest.raises(ValueError, match="other data, seed or sampler settings"):
        fit_population(gals, seed=1, **kw)


def test_population_potential_is_float32_safe(monkeypatch):
    """The NUTS potential sums 10^7 pixel terms at 10^4 galaxies: normalised, that sum is
    ~N_pixels/2 (ulp ~1 in float32, and NUTS stalls on the energy noise). The model keeps
    only each galaxy's change from its start value, so U(start) is O(dimension); and the
    unnormalised log-likelihood differs from the normalised one by the exact constant."""
    import jaxgrad.inference.population as P
    from jaxgrad.inference.likelihood import log_likelihood

    gals, _ = _mocks(8, seed=4)
    cap = {}

    class _Stop(Exception):
        pass

    def capture(flat, args, **kw):
        cap.update(flat=flat, args=args, kw=kw)
        raise _Stop

    monkeypatch.setattr(P, "nuts_from_map", capture)
    with pytest.raises(_Stop):
        fit_population(gals, fixed={"sersic_n": 1.0}, num_warmup=10, num_samples=10)
    flat, (pdata,) = cap["flat"], cap["args"]
    n_pix = int(np.sum(np.asarray(pdata.obs.weight)))
    u = float(flat.potential(jnp.asarray(cap["kw"]["u_map"], jnp.float32), pdata))
    assert n_pix > 20 * flat.dim and abs(u) < 5 * flat.dim

    cfg_spec, kind = gals[0].spec, gals[0].kind
    obs0 = jax.tree_util.tree_map(lambda a: a[0], pdata.obs)
    p0 = jax.tree_util.tree_map(lambda a: a[0], pdata.base)._replace(grad_z=jnp.float32(-0.05),
                                                                      logoh0=jnp.float32(8.1))
    full = float(log_likelihood(p0, obs0, cfg_spec, kind))
    part = float(log_likelihood(p0, obs0, cfg_spec, kind, normalised=False))
    w, var = np.asarray(obs0.weight, float), np.asarray(obs0.err, float) ** 2
    const = -0.5 * np.sum(w * (np.log(2 * np.pi * var) + 1.0))
    assert full - part == pytest.approx(const, rel=1e-5, abs=1e-2)


def test_scatter_reference_is_cross_fitted():
    """The calibration-scatter variance of a pixel must not depend on that pixel's own
    noise (a reference fitted to all pixels biased Z0 by ~0.1 σ per galaxy:
    benchmarks/score_bias.py). Moving one pixel's flux leaves its own error unchanged,
    bit for bit, while the other checkerboard half (whose reference saw it) moves."""
    from jaxgrad.inference.likelihood import checkerboard
    from jaxgrad.inference.population import galaxy_maps, prepare_population

    gals, _ = _mocks(3, seed=5)
    _, pdata, cfg, _, _ = prepare_population(gals, fixed={"sersic_n": 1.0})
    assert np.all(cfg.sigma_ln >= 0) and np.any(cfg.sigma_ln > 0)
    base = galaxy_maps(pdata, cfg, jax.random.key(0)).obs.err
    y, x = 6, 7  # odd x + y: a checkerboard-1 pixel near the centre
    assert checkerboard((12, 12))[y, x] == 1.0
    data = np.array(pdata.obs.data)
    data[:, 3, y, x] += 5 * np.asarray(pdata.obs.err)[:, 3, y, x]
    moved = galaxy_maps(pdata._replace(obs=pdata.obs._replace(data=jnp.asarray(data))), cfg,
                        jax.random.key(0)).obs.err
    np.testing.assert_array_equal(np.asarray(moved)[:, :, y, x], np.asarray(base)[:, :, y, x])
    same_half = np.asarray(checkerboard((12, 12)), bool)
    diff = np.abs(np.asarray(moved) - np.asarray(base))
    assert diff[..., ~same_half].max() > 0  # the other half's reference saw the change
    np.testing.assert_array_equal(diff[..., same_half], 0.0)  # this half's did not


def test_population_outputs_are_covariate_centred():
    """With a covariate such as log M* (values 9.5-10.5), the summary leads with the
    population at the sample's mean covariate and the plot draws the regression against the
    covariate — not the intercept at log M* = 0 (-0.56 dex/kpc in the report that found it)."""
    from jaxgrad.inference import plots
    from jaxgrad.inference.population import PopulationResult, _summ

    rng = np.random.default_rng(0)
    x = np.linspace(9.5, 10.5, 8)
    beta = 0.05 + 0.002 * rng.normal(size=(1, 400))
    alpha = -0.56 + 0.01 * rng.normal(size=(1, 400))
    mean = alpha + beta * x.mean()
    samples = {"alpha_grad": alpha, "beta_grad": beta[..., None], "tau_grad": np.full((1, 400), 0.01),
               "mean_grad": mean}
    names = [f"g{i}" for i in range(8)]
    truth = -0.56 + 0.05 * x
    galaxies = {n: {"grad_z": {"median": t, "q16": t - 0.01, "q84": t + 0.01}, "grad_nopool": t,
                    "grad_nopool_sd": 0.01} for n, t in zip(names, truth, strict=True)}
    hyper = {"mean_grad": _summ(mean), "tau_grad": _summ(samples["tau_grad"]),
             "beta_grad[log_mstar]": _summ(beta), "alpha_grad": _summ(alpha)}
    diag = {"divergences": 0, "problems": [], "mean_steps_per_draw": 7.0, "ess_bulk_min": 400.0, "r_hat_max": 1.0}
    config = {"names": names, "n_galaxies": 8, "covariate_values": {"log_mstar": x}}
    pop = PopulationResult(hyper, galaxies, samples, diag, None, config, ["log_mstar"], None, None)
    text = pop.summary().splitlines()
    assert text[1].split()[0] == "mean_grad" and "mean covariates" in text[1]
    assert "covariate = 0" in next(t for t in text if t.split()[0] == "alpha_grad")
    fig = plots.plot_population(pop)  # no covariate named: the fitted one is the x axis
    ax = fig.axes[0]
    assert ax.get_xlabel() == "log_mstar"
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("population"))
    y = line.get_ydata()
    assert np.all((y > -0.15) & (y < 0.05)), y  # the regression over the sample, near -0.06
