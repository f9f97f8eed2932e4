"""Tests of the measurement-level population model (jaxgrad.inference.measurement)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.integrate

from jaxgrad.inference.measurement import (
    _SplitNormal,
    fit_population_table,
    population_command,
)

CRISTAL = Path(__file__).parents[2] / "jaxgrad" / "data" / "cristal_t3_gradients.csv"
REQUIRED = ("mean", "mean_sd", "scatter", "scatter_sd", "median", "median_err")


# Sampler settings of population_command(quick=True); tables of 20 rows then share one
# compiled sampler with the CRISTAL test (the jit cache keys on shapes and settings).
QUICK = {"num_warmup": 300, "num_samples": 500}


def _simulate(seed, n=20, mean=0.03, scatter=0.05, slope=None):
    """Published gradients (dex/kpc) drawn from the model: split-normal errors of
    0.02–0.05 dex/kpc around true values ~ N(mean + slope (m − 10), scatter)."""
    rng = np.random.default_rng(seed)
    mass = rng.normal(10.0, 0.5, n)
    true = mean + scatter * rng.standard_normal(n)
    if slope is not None:
        true = true + slope * (mass - 10.0)
    err_plus = rng.uniform(0.02, 0.05, n)
    err_minus = err_plus * rng.uniform(0.7, 1.3, n)
    # Published value below the truth with probability ep/(ep+em), width err_plus there.
    below = rng.uniform(size=n) < err_plus / (err_plus + err_minus)
    mag = np.abs(rng.standard_normal(n))
    values = true + np.where(below, -err_plus, err_minus) * mag
    return values, err_plus, err_minus, mass


def _inside_95(samples, truth):
    lo, hi = np.percentile(np.asarray(samples).ravel(), [2.5, 97.5])
    return lo <= truth <= hi


def test_split_normal_is_normalised_and_gaussian_for_equal_errors():
    grid = np.linspace(-3.0, 3.0, 200_001)
    density = np.exp(np.asarray(_SplitNormal(0.3, 0.1, 0.25).log_prob(grid), float))
    assert scipy.integrate.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
    v = np.linspace(-0.5, 0.5, 7)
    gauss = -0.5 * ((v - 0.1) / 0.2) ** 2 - math.log(0.2 * math.sqrt(2 * math.pi))
    got = np.asarray(_SplitNormal(0.1, 0.2, 0.2).log_prob(v))
    np.testing.assert_allclose(got, gauss, rtol=1e-5, atol=1e-6)  # float32


def test_recovers_simulated_mean_and_scatter():
    values, ep, em, _ = _simulate(seed=4)
    res = fit_population_table(values, ep, em, seed=1, **QUICK)
    post = res["idata"].posterior
    assert _inside_95(post["mean"], 0.03), res["mean"]
    assert _inside_95(post["scatter"], 0.05), res["scatter"]
    assert res["mean"] == pytest.approx(float(np.median(post["mean"])))
    assert res["n"] == 20 and res["n_dropped"] == 0 and "slopes" not in res
    assert res["divergences"] == 0
    assert all(abs(r - 1) < 0.05 for r in res["r_hat"].values())
    assert res["median"] == np.median(values)


def test_recovers_covariate_slope_in_original_units():
    values, ep, em, mass = _simulate(seed=8, n=60, slope=0.06)
    res = fit_population_table(values, ep, em, covariates={"log_mstar": mass}, **QUICK)
    post = res["idata"].posterior
    assert _inside_95(post["slopes"], 0.06), res["slopes"]
    # The mean refers to the sample mean of the covariate.
    assert _inside_95(post["mean"], 0.03 + 0.06 * (mass.mean() - 10.0))
    assert set(res["slopes"]["log_mstar"]) == {"slope", "slope_sd"}
    assert set(res["r_hat"]) == {"mean", "scatter", "slope_log_mstar"}


def test_cristal_population_command_writes_json(tmp_path):
    out = tmp_path / "sub" / "population.json"
    res = population_command(
        CRISTAL, "grad_method1_dex_per_kpc", json_out=out, quick=True
    )
    written = json.loads(out.read_text())
    assert written == res
    assert (res["err_plus"], res["err_minus"]) == (
        "grad_method1_err_hi",
        "grad_method1_err_lo",
    )
    assert res["n"] == 20 and res["n_dropped"] == 0
    for key in (*REQUIRED, "divergences"):
        assert math.isfinite(res[key]), key
    for key in ("r_hat", "ess"):
        assert all(math.isfinite(v) for v in res[key].values())
    assert "idata" not in res
    assert res["median"] == pytest.approx(
        0.039
    )  # median of the printed Method I column
    assert -0.05 < res["mean"] < 0.15 and 0 < res["scatter"] < 0.1


# ------------------------------------------------------------------- bad inputs


def test_unknown_column_lists_existing_columns():
    with pytest.raises(ValueError, match=r"no column 'grad'.*grad_method1_dex_per_kpc"):
        population_command(CRISTAL, "grad")
    with pytest.raises(ValueError, match=r"covariates\['mass'\]: no column"):
        population_command(CRISTAL, "grad_method1_dex_per_kpc", covariates=["mass"])


def test_empty_cells_need_dropna():
    # Method II is empty for CRISTAL-20 and 22a (data/README.md).
    with pytest.raises(ValueError, match=r"NaN at row 16 \(id=20\).*dropna=True"):
        population_command(CRISTAL, "grad_method2_median_dex_per_kpc")


def test_dropna_drops_incomplete_rows_and_counts_them():
    values, ep, em, _ = _simulate(seed=4)
    values = np.insert(values, [5, 15], np.nan)
    ep, em = np.insert(ep, [5, 15], 0.03), np.insert(em, [5, 15], 0.03)
    res = fit_population_table(values, ep, em, seed=1, dropna=True, **QUICK)
    assert (res["n"], res["n_dropped"]) == (20, 2)
    assert math.isfinite(res["mean"]) and math.isfinite(res["scatter"])


def test_non_numeric_column_is_rejected():
    with pytest.raises(ValueError, match=r"class: expected a number, got 'Non-Disk'"):
        population_command(CRISTAL, "class", err_plus="grad_method1_err_hi")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": [0.1, np.nan, 0.0, 0.2]}, r"values: NaN at row 1"),
        ({"err_plus": [0.1, 0.1, 0.0, 0.1]}, r"err_plus: expected errors > 0.*row 2"),
        (
            {"err_minus": [0.1, -0.1, 0.1, 0.1]},
            r"err_minus: expected errors > 0.*row 1",
        ),
        ({"err_plus": [0.1, 0.1, 0.1]}, r"equal length"),
        ({"covariates": {"m": [1.0, 1.0, 1.0, 1.0]}}, r"covariates\['m'\].*constant"),
        ({"covariates": {"m": [1.0, 2.0, np.nan, 1.0]}}, r"covariates\['m'\]: NaN"),
        ({"values": [0.1, np.nan, np.nan, 0.2], "dropna": True}, r"at least 3"),
        ({"num_samples": 0}, r"num_samples: expected an integer >= 4"),
    ],
)
def test_fit_population_table_rejects_bad_input(kwargs, message):
    args = {"values": [0.1, 0.05, 0.0, 0.2], "err_plus": [0.1] * 4} | kwargs
    with pytest.raises(ValueError, match=message):
        fit_population_table(**args)
