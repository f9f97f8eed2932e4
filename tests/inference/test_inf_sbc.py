"""Simulation-based calibration of the forward model (small CI run; slow 1000-draw run)."""

from pathlib import Path

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

import jaxgrad as jg
from jaxgrad.inference.priors import SoftUniform
from jaxgrad.inference.sbc import binomial_band, rank_uniformity, run_sbc

SPEC = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), ny=8, nx=8, pixel_scale=0.1, use_logu=False)
PRIORS = {"logoh0": SoftUniform(7.7, 8.2), "grad_z": dist.Normal(0.0, 0.1),
          "flux_hb": dist.LogNormal(np.log(50.0), 0.3)}
KNOWN = dict(z=2.0, psf_fwhm=0.25, r_e=1.5, sersic_n=1.0, inc=30.0, pa=20.0)


def _check(res, n):
    alpha = 1e-3 / len(res.names)  # Bonferroni over parameters
    lo68, hi68 = binomial_band(n, res.expected68)
    lo95, hi95 = binomial_band(n, res.expected95)
    for k in res.names:
        assert res.p_uniform[k] > alpha, (k, res.p_uniform[k])
        assert lo68 <= res.coverage68[k] <= hi68, (k, res.coverage68[k], res.expected68)
        assert lo95 <= res.coverage95[k] <= min(hi95, 1.0), (k, res.coverage95[k], res.expected95)
    assert res.divergences == 0


def test_sbc_small():
    n = 60
    res = run_sbc(jax.random.key(0), SPEC, PRIORS, KNOWN, sigma=0.2, n_sims=n, n_draws=59,
                  num_warmup=150, n_bins=6)
    assert set(res.names) == set(PRIORS)
    _check(res, n)
    from jaxgrad.inference.plots import plot_sbc_ranks

    assert len(plot_sbc_ranks(res, n_bins=6).axes) == len(PRIORS)


def test_uniformity_test_can_fail():
    from jaxgrad.inference.sbc import ranks_of

    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)  # drawn from the prior N(0, 1)
    # "posterior" = the prior itself (no data): calibrated, so ranks are uniform ...
    prior_draws = rng.normal(size=(200, 99))
    assert rank_uniformity(ranks_of(truth, prior_draws), 99) > 1e-3
    # ... a shifted or an over-confident one is not, and the test says so
    biased = rng.normal(size=(200, 99)) + 1.0
    assert rank_uniformity(ranks_of(truth, biased), 99) < 1e-6
    too_narrow = 0.3 * rng.normal(size=(200, 99))
    assert rank_uniformity(ranks_of(truth, too_narrow), 99) < 1e-6


def test_coverage_from_ranks():
    from jaxgrad.inference.sbc import coverage

    ranks = np.arange(100)  # perfectly uniform ranks over 0..99
    obs, exp = coverage(ranks, 99, 0.95)
    assert obs == exp == 0.96  # 96 of the 100 rank quantiles lie in [0.025, 0.975]
    obs, exp = coverage(np.zeros(50, int), 99, 0.68)
    assert obs == 0.0 and exp == pytest.approx(0.68)


@pytest.mark.slow
def test_sbc_1000_writes_rank_histogram():
    from jaxgrad.inference.plots import plot_sbc_ranks

    n = 1000
    res = run_sbc(jax.random.key(1), SPEC, PRIORS, KNOWN, sigma=0.2, n_sims=n, n_draws=99,
                  num_warmup=200, n_bins=10)
    out = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "sbc_ranks.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_sbc_ranks(res, path=out)
    assert out.stat().st_size > 0
    _check(res, n)
