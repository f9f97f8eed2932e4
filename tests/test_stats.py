"""Tests of jaxgrad.stats against SciPy, brute-force references and simulated data."""

import math

import numpy as np
import pytest
import scipy.stats

from jaxgrad import stats

# ----------------------------------------------------------------------- helpers


def _ks2d_brute(x1, y1, x2, y2):
    """Independent O(n²) ks2d2s (Press et al., Numerical Recipes) with explicit loops."""

    def quadct(x0, y0, xs, ys):
        na = nb = nc = nd = 0
        for xk, yk in zip(xs, ys, strict=True):
            if yk > y0:
                if xk > x0:
                    na += 1
                else:
                    nb += 1
            elif xk > x0:
                nd += 1
            else:
                nc += 1
        n = len(xs)
        return na / n, nb / n, nc / n, nd / n

    def side(ox, oy):
        d = 0.0
        for x0, y0 in zip(ox, oy, strict=True):
            f = quadct(x0, y0, x1, y1)
            g = quadct(x0, y0, x2, y2)
            d = max(d, *(abs(a - b) for a, b in zip(f, g, strict=True)))
        return d

    def pearson(x, y):
        mx, my = sum(x) / len(x), sum(y) / len(y)
        sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
        sxx = sum((a - mx) ** 2 for a in x)
        syy = sum((b - my) ** 2 for b in y)
        return sxy / math.sqrt(sxx * syy)

    def probks(lam):
        return 2.0 * sum(
            (-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam) for j in range(1, 101)
        )

    d = 0.5 * (side(x1, y1) + side(x2, y2))
    sqen = math.sqrt(len(x1) * len(x2) / (len(x1) + len(x2)))
    r1, r2 = pearson(x1, y1), pearson(x2, y2)
    rr = math.sqrt(1.0 - 0.5 * (r1 * r1 + r2 * r2))
    return d, probks(d * sqen / (1.0 + rr * (0.25 - 0.75 / sqen)))


def _line_data(seed, n=40, slope=-0.3, intercept=0.5, scatter=0.1):
    """Simulated linmix data: true x ~ N(10, 0.5), heteroscedastic errors on x and y."""
    rng = np.random.default_rng(seed)
    x_true = rng.normal(10.0, 0.5, n)
    y_true = intercept + slope * x_true + scatter * rng.standard_normal(n)
    xerr = rng.uniform(0.1, 0.3, n)
    yerr = rng.uniform(0.05, 0.15, n)
    x = x_true + xerr * rng.standard_normal(n)
    y = y_true + yerr * rng.standard_normal(n)
    return x, y, xerr, yerr


_LINE_TRUTH = {"slope": -0.3, "intercept": 0.5, "scatter": 0.1}


def _dpl_data(seed=1, n=150):
    """Double-power-law gradients with 0.02 dex/kpc errors over 0 < z < 9."""
    truth = np.array([1.0, 0.5, 3.0, 4.0, 0.5])
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.0, 9.0, n)
    err = np.full(n, 0.02)
    zp = 1.0 + z
    model = truth[0] * zp ** truth[1] / (1.0 + (zp / truth[2]) ** truth[3]) - truth[4]
    return truth, z, model + err * rng.standard_normal(n), err


# -------------------------------------------------------------- bootstrap median


def test_bootstrap_median_reproducible_with_seed():
    x = np.random.default_rng(0).normal(size=50)
    assert stats.bootstrap_median(x, seed=3) == stats.bootstrap_median(x, seed=3)
    assert stats.bootstrap_median(x, seed=3)[1] != stats.bootstrap_median(x, seed=4)[1]
    assert stats.bootstrap_median(x)[0] == np.median(x)


def test_bootstrap_median_error_matches_asymptotic_formula():
    # Standard error of the median of a normal sample: sqrt(pi/2) sigma / sqrt(n).
    sigma, n = 2.0, 4000
    x = np.random.default_rng(1).normal(5.0, sigma, n)
    _, err = stats.bootstrap_median(x, n=1000, seed=0)
    expected = math.sqrt(math.pi / 2.0) * sigma / math.sqrt(n)
    assert err == pytest.approx(expected, rel=0.15)


@pytest.mark.parametrize("bad", [[1.0, np.nan, 2.0], [[1.0, 2.0]], []])
def test_bootstrap_median_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="values"):
        stats.bootstrap_median(bad)


# ------------------------------------------------------------------ Kendall tau


def _tau_data(kind):
    rng = np.random.default_rng(7)
    x = rng.normal(size=25)
    y = 0.5 * x + rng.normal(size=25)
    if kind == "ties":
        x, y = np.round(x, 0), np.round(y, 0)
    return x, y


@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_kendall_tau_matches_scipy(kind):
    x, y = _tau_data(kind)
    res = stats.kendall_tau(x, y, n_boot=200)
    ref = scipy.stats.kendalltau(x, y)
    assert res["tau"] == pytest.approx(ref.statistic, abs=1e-10)
    assert res["p"] == pytest.approx(ref.pvalue, abs=1e-10)


@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_kendall_tau_bootstrap_and_jackknife_match_scipy_loops(kind):
    x, y = _tau_data(kind)
    n, n_boot, seed = x.size, 200, 5
    res = stats.kendall_tau(x, y, n_boot=n_boot, seed=seed)
    # Bootstrap: the same resamples (rng.integers(0, n, (n_boot, n))) through SciPy.
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = np.array([scipy.stats.kendalltau(x[i], y[i]).statistic for i in idx])
    boot = boot[np.isfinite(boot)]
    assert res["tau_boot_sd"] == pytest.approx(np.std(boot, ddof=1), abs=1e-10)
    lo, hi = np.percentile(boot, [16, 84])
    assert (res["tau_lo"], res["tau_hi"]) == pytest.approx((lo, hi), abs=1e-10)
    # Jack-knife standard error.
    loo = np.array(
        [
            scipy.stats.kendalltau(np.delete(x, i), np.delete(y, i)).statistic
            for i in range(n)
        ]
    )
    sd = math.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2))
    assert res["tau_jk_lo"] == pytest.approx(res["tau"] - sd, abs=1e-10)
    assert res["tau_jk_hi"] == pytest.approx(res["tau"] + sd, abs=1e-10)


def test_kendall_tau_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equal length"):
        stats.kendall_tau([1, 2, 3, 4], [1, 2, 3])


# --------------------------------------------------------------------- KS tests


def test_ks_2samp_matches_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=30), rng.normal(0.5, 1.0, size=45)
    d, p = stats.ks_2samp(a, b)
    ref = scipy.stats.ks_2samp(a, b)
    assert d == pytest.approx(ref.statistic, abs=1e-10)
    assert p == pytest.approx(ref.pvalue, abs=1e-10)


def _ks2d_samples(case):
    rng = np.random.default_rng(11)
    if case == "shifted":
        x1, y1 = rng.normal(size=(2, 30))
        x2 = rng.normal(0.6, 1.0, 40)
        y2 = 0.5 * x2 + rng.normal(size=40)
    elif case == "same":
        x1, y1 = rng.normal(size=(2, 35))
        x2, y2 = rng.normal(size=(2, 25))
    else:  # "ties": coarse grid, so points share x and y values across samples
        x1, y1 = np.round(rng.normal(size=(2, 30)), 0)
        x2, y2 = np.round(rng.normal(0.4, 1.0, size=(2, 33)), 0)
    return x1, y1, x2, y2


@pytest.mark.parametrize("case", ["shifted", "same", "ties"])
def test_ks_2d_matches_brute_force(case):
    x1, y1, x2, y2 = _ks2d_samples(case)
    d, p = stats.ks_2d(x1, y1, x2, y2)
    d_ref, p_ref = _ks2d_brute(x1.tolist(), y1.tolist(), x2.tolist(), y2.tolist())
    assert d == d_ref
    assert p == pytest.approx(p_ref, abs=1e-10)


def test_ks_2d_identical_samples():
    x, y = np.random.default_rng(0).normal(size=(2, 20))
    assert stats.ks_2d(x, y, x, y) == (0.0, 1.0)


def test_ks_2d_rejects_mismatched_xy():
    with pytest.raises(ValueError, match="equal length"):
        stats.ks_2d([1, 2, 3], [1, 2], [1, 2], [1, 2])


# -------------------------------------------------------------------- Theil–Sen


@pytest.mark.parametrize("seed", [0, 1])
def test_theil_sen_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(0, 10, 30), 1)  # some tied x
    y = 0.2 * x + rng.standard_t(2, 30)
    res = stats.theil_sen(x, y)
    ref = scipy.stats.theilslopes(y, x)
    got = (res["slope"], res["intercept"], res["slope_lo"], res["slope_hi"])
    want = (ref.slope, ref.intercept, ref.low_slope, ref.high_slope)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_theil_sen_exact_line_and_bad_input():
    x = np.arange(10.0)
    res = stats.theil_sen(x, 3.0 - 0.5 * x)
    assert (res["slope"], res["intercept"]) == pytest.approx((-0.5, 3.0))
    with pytest.raises(ValueError, match="x: expected at least two distinct"):
        stats.theil_sen(np.ones(5), np.arange(5.0))


# ----------------------------------------------------------------------- linmix


def _inside_95(samples, truth):
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return lo <= truth <= hi


def test_linmix_recovers_simulated_line():
    x, y, xerr, yerr = _line_data(seed=3)
    res = stats.linmix(x, y, xerr, yerr, seed=0, num_warmup=300, num_samples=600)
    assert res["divergences"] == 0
    for name, truth in _LINE_TRUTH.items():
        assert _inside_95(res["samples"][name], truth), (name, res[name], truth)
        assert res[f"{name}_sd"] > 0


def test_linmix_rejects_non_positive_xerr():
    x, y, xerr, yerr = _line_data(seed=0, n=10)
    xerr[4] = 0.0
    with pytest.raises(
        ValueError, match="xerr: expected errors > 0, got 0.0 at index 4"
    ):
        stats.linmix(x, y, xerr, yerr)


@pytest.mark.slow
def test_linmix_coverage_over_50_data_sets():
    hits = {name: 0 for name in _LINE_TRUTH}
    for seed in range(50):
        x, y, xerr, yerr = _line_data(seed=1000 + seed)
        res = stats.linmix(
            x, y, xerr, yerr, seed=seed, num_warmup=500, num_samples=1000
        )
        for name, truth in _LINE_TRUTH.items():
            hits[name] += _inside_95(res["samples"][name], truth)
    assert all(h >= 45 for h in hits.values()), hits


# ------------------------------------------------------------- double power law


def test_double_power_law_log_density_is_gaussian_inside_prior_box():
    truth, z, grad, err = _dpl_data(n=20)
    gammas = np.array([truth, truth + 0.1, [1.0, 1.5, 3.0, 4.0, 0.5]])  # last: γ1 > 1
    got = np.asarray(stats._dpl_log_density(gammas, z, grad, err), dtype=np.float64)
    for g, lp in zip(gammas[:2], got[:2], strict=True):
        zp = 1.0 + z
        model = g[0] * zp ** g[1] / (1.0 + (zp / g[2]) ** g[3]) - g[4]
        # float32 evaluation of a sum of 20 squared residuals.
        assert lp == pytest.approx(-0.5 * np.sum(((grad - model) / err) ** 2), rel=1e-4)
    assert got[2] == -np.inf


def test_double_power_law_rejects_bad_input():
    _, z, grad, err = _dpl_data(n=10)
    with pytest.raises(ValueError, match="method"):
        stats.fit_double_power_law(z, grad, err, method="hmc")
    with pytest.raises(ValueError, match="grad_err"):
        stats.fit_double_power_law(z, grad, -err)


@pytest.mark.slow
def test_double_power_law_recovers_parameters():
    truth, z, grad, err = _dpl_data()
    res = stats.fit_double_power_law(z, grad, err, num_warmup=500, num_samples=1000)
    assert res["divergences"] == 0
    for i, g in enumerate(truth):
        assert abs(res[f"gamma{i}"] - g) < 3 * res[f"gamma{i}_sd"], (i, res)


@pytest.mark.slow
def test_double_power_law_nuts_and_emcee_agree():
    _, z, grad, err = _dpl_data()
    nuts = stats.fit_double_power_law(z, grad, err, num_warmup=1000, num_samples=2000)
    emc = stats.fit_double_power_law(
        z, grad, err, method="emcee", num_warmup=1000, num_samples=2000
    )
    for i in range(5):
        sd = nuts[f"gamma{i}_sd"]
        assert abs(nuts[f"gamma{i}"] - emc[f"gamma{i}"]) < 0.2 * sd, i
        assert emc[f"gamma{i}_sd"] == pytest.approx(sd, rel=0.2), i
