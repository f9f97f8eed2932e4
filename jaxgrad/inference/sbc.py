"""Simulation-based calibration (Talts et al. 2018) of the single-galaxy forward model.

For s = 1..S: draw θ_s from the prior, simulate maps with the forward model and
Gaussian noise of a fixed σ, fit them with the *same* model and prior, and record the
rank of θ_s among L (thinned) posterior draws. If the sampler and the model code are
right, ranks are uniform on {0, ..., L} and central credible intervals cover the truth
at their nominal rates.

All S fits run as one vmapped computation: the MAPs batched (one compiled gradient),
then one NUTS chain per data set (one compiled, vmapped sampler), so a CI-sized run
costs two compilations regardless of S.

The likelihood must be the generative model for SBC to be exact, so the calibration
scatter term is off (``cal_scatter=0``) and noise σ is fixed (not a function of θ).

Uniformity test: Pearson χ² of the ranks in ``n_bins`` equal bins against the uniform
expectation, per parameter; :func:`rank_uniformity` returns p-values, and a test that
asserts p > α (Bonferroni over parameters) can fail.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.forward import ModelSpec, make_params
from jaxgrad.inference.data import GalaxyData
from jaxgrad.inference.galaxy import build_galaxy_model
from jaxgrad.inference.optim import find_map
from jaxgrad.inference.sampler import run_nuts_many
from jaxgrad.inference.simulate import simulate_planes

__all__ = ["SBCResult", "coverage", "rank_uniformity", "ranks_of", "run_sbc"]


class SBCResult(NamedTuple):
    """Result of :func:`run_sbc`.

    Attributes:
        names: parameter names.
        truths: prior draws ``{name: [S]}``.
        ranks: ``{name: [S]}`` ranks in {0, ..., L}.
        n_draws: L (thinned draws per fit).
        p_uniform: χ² uniformity p-value per parameter.
        coverage68, coverage95: fraction of fits whose central 68/95% credible interval
            contains the truth, per parameter, from the ranks (:func:`coverage`).
        expected68, expected95: what a calibrated posterior gives with L draws (the
            discrete-rank version of 0.68/0.95).
        divergences: total divergent transitions over all fits.
        mean_steps_per_draw: averaged over fits.
        timings: ``simulate_s``, ``map_s``, ``compile_s``, ``run_s``.
    """

    names: tuple
    truths: dict
    ranks: dict
    n_draws: int
    p_uniform: dict
    coverage68: dict
    coverage95: dict
    expected68: float
    expected95: float
    divergences: int
    mean_steps_per_draw: float
    timings: dict


def ranks_of(truth, draws) -> np.ndarray:
    """Rank of each truth among its draws: ``truth [S]``, ``draws [S, L]`` -> ``[S]``."""
    return np.sum(np.asarray(draws) < np.asarray(truth)[:, None], axis=1)


def rank_uniformity(ranks, n_draws: int, n_bins: int = 10) -> float:
    """Pearson χ² p-value of ranks in {0..L} against uniform, in ``n_bins`` equal bins.

    L + 1 must be divisible by ``n_bins`` (choose L accordingly, e.g. 99 with 10 bins).
    """
    from scipy import stats

    if (n_draws + 1) % n_bins:
        raise ValueError(f"n_draws + 1 = {n_draws + 1} must be divisible by n_bins = {n_bins}")
    counts = np.bincount(np.asarray(ranks) * n_bins // (n_draws + 1), minlength=n_bins)
    expected = len(ranks) / n_bins
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    return float(stats.chi2.sf(chi2, n_bins - 1))


def coverage(ranks, n_draws: int, level: float) -> tuple[float, float]:
    """Coverage of central ``level`` credible intervals, from SBC ranks.

    The truth lies in the central interval iff its rank quantile (r + ½)/(L + 1) lies in
    [(1 − level)/2, (1 + level)/2]. Computing it from ranks, not from percentiles of the
    L draws, matters: the empirical 2.5–97.5% interval of 99 draws covers only ~92% of
    a calibrated posterior (order statistics), which would read as miscalibration.

    Returns:
        (observed fraction, expected fraction for a calibrated posterior with L draws).
    """
    q = (np.arange(n_draws + 1) + 0.5) / (n_draws + 1)
    eps = 1e-9  # rank quantiles on the interval edge count as inside
    inside = (q >= (1 - level) / 2 - eps) & (q <= (1 + level) / 2 + eps)
    return float(np.mean(inside[np.asarray(ranks)])), float(np.mean(inside))


def run_sbc(key, spec: ModelSpec, priors: dict, known: dict, sigma: float, n_sims: int = 100,
            *, n_draws: int = 99, thin: int = 2, num_warmup: int = 200, dense_mass: bool = True,
            max_tree_depth: int = 6, n_bins: int = 10) -> SBCResult:
    """Simulation-based calibration of the forward model with the given priors.

    Args:
        key: PRNG key.
        spec: model spec (small maps keep it cheap).
        priors: name -> scalar numpyro distribution for every sampled parameter (must
            not depend on data; every other default prior is removed).
        known: values of all other GalaxyParams fields.
        sigma: noise σ per pixel, flux units (fixed).
        n_sims: number of simulated data sets S.
        n_draws: L thinned posterior draws per fit (L + 1 divisible by ``n_bins``).
        thin: thinning factor (NUTS draws = L × thin).
        num_warmup: warm-up per fit.
        dense_mass, max_tree_depth: NUTS settings.
        n_bins: bins of the uniformity test.
    """
    k_prior, k_noise, k_map, k_run = jax.random.split(key, 4)
    names = tuple(sorted(priors))
    keys = jax.random.split(k_prior, len(names))
    truths = {n: np.asarray(priors[n].sample(k, (n_sims,))) for k, n in zip(keys, names, strict=True)}
    base = make_params(**known)
    dtype = base.r_e.dtype
    t0 = time.perf_counter()

    @jax.jit
    def simulate(keys, vals):
        def one(k, v):
            p = base._replace(**{n: v[n].astype(dtype) for n in names})
            return simulate_planes(k, p, spec, sigma, "maps")
        return jax.vmap(one)(keys, vals)

    planes = np.asarray(simulate(jax.random.split(k_noise, n_sims), {n: jnp.asarray(v) for n, v in truths.items()}))
    t_sim = time.perf_counter() - t0
    errs = np.full(planes.shape[1:], sigma)
    template = GalaxyData(planes[0], errs, None, spec, known=known, name="sbc")
    full_priors = {**{k: None for k in ("logoh0", "grad_z", "flux_hb", "r_e", "sersic_n", "av")}, **priors}
    gm = build_galaxy_model(template, full_priors, None, cal_scatter=0)
    obs0 = gm.obs
    obs_b = obs0._replace(data=jnp.asarray(planes, obs0.data.dtype),
                          err=jnp.broadcast_to(obs0.err, planes.shape),
                          weight=jnp.broadcast_to(obs0.weight, planes.shape),
                          psf_image=jnp.broadcast_to(obs0.psf_image, (n_sims, *obs0.psf_image.shape)))
    vg = jax.jit(jax.vmap(jax.value_and_grad(gm.flat.potential), in_axes=(0, 0)))
    t0 = time.perf_counter()
    u0 = np.broadcast_to(np.asarray(gm.flat.u_init), (n_sims, gm.flat.dim)).copy()
    m = find_map(lambda u: vg(u, obs_b), u0)
    t_map = time.perf_counter() - t0
    inv_mass = m.cov if dense_mass else np.diagonal(m.cov, axis1=-2, axis2=-1)
    run = run_nuts_many(gm.flat, (obs_b,), m.x, inv_mass, key=k_run, num_warmup=num_warmup,
                        num_samples=n_draws * thin, dense_mass=dense_mass,
                        max_tree_depth=max_tree_depth)
    ranks, p, c68, c95 = {}, {}, {}, {}
    for n in names:
        draws = run.samples[n][:, thin - 1::thin][:, :n_draws]
        ranks[n] = ranks_of(truths[n], draws)
        p[n] = rank_uniformity(ranks[n], n_draws, n_bins)
        c68[n], e68 = coverage(ranks[n], n_draws, 0.68)
        c95[n], e95 = coverage(ranks[n], n_draws, 0.95)
    return SBCResult(names, truths, ranks, n_draws, p, c68, c95, e68, e95,
                     int(np.sum(run.stats["diverging"])), float(np.mean(run.stats["num_steps"])),
                     {"simulate_s": t_sim, "map_s": t_map, **run.timings})


def binomial_band(n: int, p: float, z: float = 3.0) -> tuple[float, float]:
    """Coverage fraction band p ± z sqrt(p(1−p)/n) for n independent fits."""
    h = z * math.sqrt(p * (1 - p) / n)
    return p - h, p + h
