"""NUTS and emcee on the identical log density agree (like-for-like reference)."""

from functools import partial

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgrad import calibrations as _cal
from jaxgrad.inference.binned import binned_profile_model, make_binned_data
from jaxgrad.inference.emcee_ref import run_emcee
from jaxgrad.inference.sampler import flatten_model, sample_flat

LINES = ("OII_3727_30", "Hb", "OIII_5008")


@pytest.fixture(scope="module")
def binned_target():
    from jaxgrad.pipeline.metallicity import make_metallicity_spec

    met, _ = make_metallicity_spec(LINES, "sanders24", warn=False)
    r = np.linspace(0.4, 2.4, 4)
    lr = np.asarray(_cal.get("sanders24").line_log_ratios(LINES, jnp.asarray(8.05 - 0.08 * r)))
    flux = (100 * np.exp(-r / 1.2))[None] * 10**lr
    err = 0.03 * flux.max(axis=0, keepdims=True) * np.ones_like(flux)
    rng = np.random.default_rng(4)
    data = make_binned_data(r, (flux + err * rng.normal(size=flux.shape)).T, err.T)
    flat = flatten_model(partial(binned_profile_model, met_spec=met), (data,))
    return flat, data


def test_nuts_and_emcee_agree_on_the_same_density(binned_target):
    flat, data = binned_target
    run, diag, m = sample_flat(flat, (data,), seed=0, num_warmup=400, num_samples=2000, num_chains=4,
                               target_accept_prob=0.9)
    assert diag["divergences"] == 0
    em = run_emcee(flat, (data,), init=m.x, init_cov=m.cov, n_walkers=64, n_steps=5000, burn=0.2, seed=1)
    assert em.converged, em.tau  # chain > 50 tau
    labels = flat.labels()
    nuts_u = run.u.reshape(-1, flat.dim)
    em_u = em.u.reshape(-1, flat.dim)
    for j, lab in enumerate(labels):
        sd = np.std(nuts_u[:, j])
        dmed = abs(np.median(nuts_u[:, j]) - np.median(em_u[:, j])) / sd
        ratio = np.std(em_u[:, j]) / sd
        print(f"{lab}: |Δmedian| = {dmed:.3f} σ, width ratio {ratio:.3f}")
        assert dmed < 0.1, (lab, dmed)
        assert abs(ratio - 1) < 0.1, (lab, ratio)
    # and in the constrained, named parameters the science uses
    for k in ("grad_z", "logoh0"):
        a, b = np.ravel(run.samples[k]), np.ravel(em.samples[k])
        assert abs(np.median(a) - np.median(b)) < 0.1 * np.std(a)
