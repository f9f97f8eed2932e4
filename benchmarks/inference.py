"""Inference benchmark: ESS per second of ∇Z, NUTS against emcee on the same log density.

    python benchmarks/inference.py [--quick]                 # CPU, writes results/inference.json
    python benchmarks/inference.py --gpu [--time-limit 120]  # GPU, writes results/inference_gpu.json

CPU parts (each NUTS run and its emcee run in the same process, on the same machine):

a. *binned profile* — :func:`jaxgrad.inference.binned_profile_model`: 6 annuli, 4 lines,
   Paper B's per-bin likelihood with log Z(r) linear (Z, ∇Z, 6 Hβ fluxes).
b. *forward-model galaxy* — :func:`jaxgrad.inference.fit_galaxy` on a 64 × 64, 4-line
   mock (z = 5, 0.05"/pix, PSF 0.2", S/N 30): Z0, ∇Z, Hβ flux, R_e, n.
c. *hierarchy* — :func:`jaxgrad.inference.fit_population` on n mocks (16 × 16, 4 lines):
   the per-gradient cost and the full fit for the sizes that fit this CPU; the wall time
   at larger n is extrapolated from the measured power law and said to be so.

NUTS: MAP (optax) start, dense mass matrix for single galaxies, diagonal + per-galaxy
preconditioning for the hierarchy. Reported: compile time (ahead-of-time, separate),
wall time of warm-up + sampling, minimum bulk ESS over the sampled coordinates, ESS of
∇Z (the population mean ∇Z for the hierarchy), mean leapfrog steps per draw, ESS per
gradient evaluation. emcee: 2 × dim walkers (at least 64), the same wall-time budget as
NUTS's warm-up + sampling, ESS = kept steps × walkers / τ (integrated autocorrelation
time); runs shorter than 50 τ are flagged ``converged: false``.

GPU part (``--gpu``): the hierarchy for 100, 1000 and 10⁴ galaxies, as far as the time
limit allows (sizes whose predicted time exceeds what is left are skipped and listed).
It imports none of astropy, arviz, emcee.

The CPU is shared with other work (load averages are recorded); numbers are what was
measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _harness as H  # noqa: E402

LINES = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")


def _load():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover
        return None


def _nuts_record(diag: dict, key: str, dim: int, num_warmup: int, num_samples: int) -> dict:
    run_s = diag["run_s"]
    ess_key = diag["ess_bulk"].get(key, float("nan"))
    return {
        "dim": dim, "num_warmup": num_warmup, "num_samples": diag.get("num_samples", num_samples),
        "num_samples_requested": num_samples,
        "compile_s": diag["compile_s"], "run_s": run_s, "map_s": diag.get("map_s"),
        "ess_bulk_min": diag["ess_bulk_min"], "ess_key": ess_key,
        "ess_key_per_s": ess_key / run_s, "ess_min_per_s": diag["ess_bulk_min"] / run_s,
        "mean_steps_per_draw": diag["mean_steps_per_draw"],
        "frac_max_treedepth": diag["frac_max_treedepth"],
        "ess_per_grad": diag["ess_per_grad"], "ess_per_grad_total": diag["ess_per_grad_total"],
        "grad_evals": diag["grad_evals_warmup"] + diag["grad_evals_sampling"],
        "divergences": diag["divergences"], "r_hat_max": diag["r_hat_max"],
    }


def _emcee_record(flat, args, key: str, budget_s: float, init, cov, seed: int = 1) -> dict:
    try:
        import emcee  # noqa: F401

        from jaxgrad.inference.emcee_ref import run_emcee
    except ImportError:
        return {"skipped": "emcee not installed"}
    nw = max(64, 2 * flat.dim)
    # walkers start in a tiny ball around the MAP (sd 1% of the Laplace sd), the emcee
    # documentation's recipe and NUTS's situation (one point plus a preconditioner): a
    # cloud drawn from the Laplace approximation itself would hand emcee near-independent
    # approximate posterior draws at step 0, and with tau >> chain length its "ESS" would
    # count that initial spread rather than any mixing
    em = run_emcee(flat, args, init=init, init_cov=1e-4 * np.asarray(cov), n_walkers=nw, max_time_s=budget_s,
                   burn=0.25, seed=seed, check_every=10)
    labels = flat.labels()
    j = labels.index(key)
    n_kept = em.n_steps - em.n_burn
    rec = {
        "n_walkers": nw, "n_steps": em.n_steps, "n_burn": em.n_burn, "run_s": em.timings["run_s"],
        "compile_s": em.timings["compile_s"], "log_prob_evals": em.timings["log_prob_evals"],
        "tau_key": float(em.tau[j]), "tau_max": float(np.max(em.tau)),
        "ess_key": em.ess[key], "ess_min": em.ess_min,
        "ess_key_per_s": em.ess[key] / em.timings["run_s"],
        "ess_min_per_s": em.ess_min / em.timings["run_s"],
        "ess_per_logp_eval": em.ess_min / max(em.timings["log_prob_evals"], 1),
        "acceptance": em.acceptance, "converged": em.converged,
        "init": "N(MAP, (0.01 x Laplace sd)^2) per walker (tiny ball)",
    }
    if not em.converged:
        rec["note"] = (f"NOT converged: {n_kept} kept steps < 50 tau_max = {50 * np.max(em.tau):.0f}; "
                       "tau and ESS are lower/upper bounds respectively, ESS/s optimistic")
    return rec


# ----------------------------------------------------------------------------- (a)
def bench_binned(quick: bool) -> dict:
    from functools import partial

    import jax.numpy as jnp

    from jaxgrad import calibrations as cal
    from jaxgrad.inference.binned import binned_profile_model, make_binned_data
    from jaxgrad.inference.sampler import flatten_model, sample_flat
    from jaxgrad.pipeline.metallicity import make_metallicity_spec

    met, _ = make_metallicity_spec(LINES, "sanders24", warn=False)
    r = np.linspace(0.3, 3.3, 6)
    lr = np.asarray(cal.get("sanders24").line_log_ratios(LINES, jnp.asarray(8.1 - 0.05 * r)))
    flux = (100 * np.exp(-r / 1.2))[None] * 10**lr
    err = 0.03 * flux.max(axis=0, keepdims=True) * np.ones_like(flux)
    obs = flux + err * np.random.default_rng(0).normal(size=flux.shape)
    data = make_binned_data(r, obs.T, err.T)
    flat = flatten_model(partial(binned_profile_model, met_spec=met), (data,))
    nw, ns = (500, 1000) if quick else (1000, 4000)
    run, diag, m = sample_flat(flat, (data,), seed=0, num_warmup=nw, num_samples=ns, key_param="grad_z",
                               target_accept_prob=0.9)
    rec = {"nuts": _nuts_record(diag, "grad_z", flat.dim, nw, ns)}
    rec["emcee"] = _emcee_record(flat, (data,), "grad_z", diag["run_s"], m.x, m.cov)
    rec["description"] = "6 annuli x 4 lines, Paper B per-bin likelihood, log Z linear in r"
    return rec


# ----------------------------------------------------------------------------- (b)
def galaxy_problem(full: bool):
    """The (b) galaxy's mock data and priors (``full``: geometry, log U and PSF width
    sampled too, with imaging priors)."""
    import jax
    import numpyro.distributions as dist

    import jaxgrad as jg
    from jaxgrad.inference import simulate_galaxy

    spec = jg.ModelSpec(lines=LINES, ny=64, nx=64, pixel_scale=0.05)
    geo = {"inc": 45.0, "pa": 30.0, "x0": 0.02, "y0": -0.03} if full else {}
    p = jg.make_params(logoh0=7.9, grad_z=-0.1, r_e=2.0, psf_fwhm=0.2, z=5.0, **geo)
    data = simulate_galaxy(jax.random.key(0), p, spec, snr=30.0, name="bench64")
    priors = None
    if full:
        priors = {"inc": dist.TruncatedNormal(45.0, 8.0, low=5.0, high=85.0),
                  "pa": dist.Normal(30.0, 8.0), "x0": dist.Normal(0.0, 0.1), "y0": dist.Normal(0.0, 0.1),
                  "logu": dist.Uniform(-3.5, -1.5),
                  "psf_fwhm": dist.TruncatedNormal(0.2, 0.02, low=0.1, high=0.3)}
    return data, priors


def _galaxy_fit(quick: bool, full: bool, draws: tuple[int, int] | None = None):
    """The (b) galaxy, its NUTS fit and emcee's start (MAP and Laplace covariance)."""
    from numpyro.distributions.transforms import biject_to

    from jaxgrad.inference import fit_galaxy
    from jaxgrad.inference.optim import fd_hessian, psd_inverse

    data, priors = galaxy_problem(full)
    nw, ns = draws or ((300, 500) if quick else (500, 1000))
    res = fit_galaxy(data, priors=priors, num_warmup=nw, num_samples=ns, num_chains=1, seed=0)
    gm = res.model
    vg = gm.vg()
    u_map = np.array([float(biject_to(gm.priors[k].support).inv(res.map[k])) for k in gm.names], np.float32)
    cov = psd_inverse(fd_hessian(lambda u: vg(u, gm.obs), u_map))
    return res, (nw, ns), u_map, cov


def bench_galaxy(quick: bool, full: bool = False) -> dict:
    """(b); ``full``: geometry (i, PA, centre), log U and the PSF width sampled too
    (11 parameters, what a real fit with imaging priors on the geometry samples)."""
    res, (nw, ns), u_map, cov = _galaxy_fit(quick, full)
    diag = res.diagnostics
    gm = res.model
    rec = {"nuts": _nuts_record(diag, "grad_z", gm.flat.dim, nw, ns)}
    # emcee on the same potential, started like NUTS (the MAP and its Laplace covariance)
    rec["emcee"] = _emcee_record(gm.flat, (gm.obs,), "grad_z", diag["run_s"], u_map, cov)
    rec["description"] = ("64x64 maps, 4 lines, z=5, 0.05\"/pix, PSF 0.2\", S/N 30; Z0, grad, flux, R_e, n"
                          + ("; + inc, PA, x0, y0 (imaging priors), log U, PSF FWHM (prior 0.2 +- 0.02)"
                             if full else ""))
    rec["posterior_grad_z"] = [float(np.median(res.samples["grad_z"])), float(np.std(res.samples["grad_z"]))]
    return rec


# ----------------------------------------------------------------------------- (c)
def _population_snr(n: int) -> np.ndarray:
    """S/N of the hierarchy's mocks: every third galaxy at 5, the others at 30."""
    return np.where(np.arange(n) % 3 == 1, 5.0, 30.0)


def _population_params(grads, z0):
    """The hierarchy mocks' true GalaxyParams ``[n]`` for their gradients and Z0."""
    import jaxgrad as jg

    return jg.make_params(logoh0=z0, grad_z=grads, psf_fwhm=0.3, r_e=1.5, z=2.0)


def _population_mocks(n: int, seed: int = 0, ny: int = 16):
    import jax

    import jaxgrad as jg
    from jaxgrad.inference.data import GalaxyData
    from jaxgrad.inference.likelihood import line_scatter, pixel_sigma_ln
    from jaxgrad.inference.simulate import INFERRED, noise_level, simulate_planes

    spec = jg.ModelSpec(lines=LINES, ny=ny, nx=ny, pixel_scale=0.05, use_logu=False)
    # the mocks carry the calibration scatter the likelihood assumes (per pixel and line,
    # the likelihood's linearised Gaussian law): a well-specified model, so the recovered scatter tau can be checked
    s_ln = np.asarray(pixel_sigma_ln(spec, "maps", line_scatter(spec)[0], 2.0), np.float32)
    rng = np.random.default_rng(seed)
    grads = rng.normal(-0.05, 0.05, n)  # population: N(-0.05, 0.05²) dex/kpc
    z0 = rng.normal(8.1, 0.05, n)  # and Z0 ~ N(8.1, 0.05²)
    snr = _population_snr(n)
    params = _population_params(grads, z0)
    sig = jax.vmap(lambda p, s: noise_level(p, spec, s))(params, np.asarray(snr, np.float32))
    keys = jax.random.split(jax.random.key(seed), n)
    planes = np.asarray(jax.vmap(lambda k, p, s: simulate_planes(k, p, spec, s, "maps", s_ln, "gaussian"))(
        keys, params, sig))
    known = {f: float(np.asarray(getattr(params, f))[0]) for f in params._fields
             if f not in INFERRED and f != "logoh0"}
    gals = [GalaxyData(planes[i], np.full(planes.shape[1:], float(sig[i])), None, spec, known=known,
                       name=f"g{i:05d}") for i in range(n)]
    return gals, grads, z0


def _grad_cost(n: int, repeats: int = 5, ny: int = 16) -> dict:
    """Seconds per potential gradient of the hierarchy with n galaxies (compiled)."""
    import jax

    from jaxgrad.inference.population import population_model, prepare_population
    from jaxgrad.inference.sampler import flatten_model

    gals, _, _ = _population_mocks(n, ny=ny)
    _, pdata, cfg, _, _ = prepare_population(gals, fixed={"sersic_n": 1.0})

    def model(d):
        return population_model(d, cfg, pooled=True)

    flat = flatten_model(model, (pdata,))
    vg = jax.jit(jax.value_and_grad(flat.potential))
    t = H.time_call(vg, flat.u_init, pdata, repeats=repeats)
    return {"n_galaxies": n, "field_px": ny, "dim": flat.dim, "grad_s": t["median_s"], "grad_min_s": t["min_s"],
            "compile_and_first_s": t["first_call_s"]}


def gradient_scaling(sizes=(10, 20, 50, 100), ny: int = 64) -> dict:
    """Cost of one potential gradient vs number of galaxies (64 x 64 maps, all spaxels)
    and its log-log slope: the per-galaxy work of the vmapped likelihood, apart from
    the sampler (whose steps per draw fall with more galaxies, see the runs)."""
    costs = [_grad_cost(n, repeats=15, ny=ny) for n in sizes]
    for c in costs:
        print(f"  gradient n={c['n_galaxies']:4d} ({ny}x{ny}): {c['grad_s'] * 1e3:8.2f} ms", flush=True)
    ns = np.array([c["n_galaxies"] for c in costs], float)
    out = {"costs": costs}
    for tag, key in (("", "grad_s"), ("_min", "grad_min_s")):  # medians, and the quietest calls
        ts = np.array([c[key] for c in costs])
        out[f"slope{tag}"] = float(np.polyfit(np.log(ns), np.log(ts), 1)[0])
        out[f"slope_10_100{tag}"] = float(np.log(ts[-1] / ts[0]) / np.log(ns[-1] / ns[0]))
        out[f"ms_per_galaxy_gradient{tag}"] = (ts / ns * 1e3).tolist()
    return out


def bench_hierarchy(sizes, quick: bool, with_emcee: bool = True, time_left=None, draws=None,
                    chains: int = 1, emcee_max_n: int = 10, grad_costs=None, on_run=None,
                    ny: int = 16, vectorize_chains: bool | None = None, segment: int | None = None) -> dict:
    from jaxgrad.inference import fit_population

    nw, ns = draws or ((200, 300) if quick else (500, 1000))
    runs, skipped = [], []
    for n in sizes:
        if time_left is not None and runs:
            last = runs[-1]
            # predicted from the last run: time per gradient from the measured gradient
            # costs where given (GPU: far from linear in n), else ~ n; steps per draw flat
            gc = grad_costs or {}
            scale = (gc[n] / gc[last["n_galaxies"]] if n in gc and last["n_galaxies"] in gc
                     else n / last["n_galaxies"])
            pred = (last["nuts"]["run_s"] * scale + last["nuts"]["compile_s"]
                    + 2 * last["map_s"] * max(scale, 1.0))
            if pred > time_left():
                skipped.append({"n_galaxies": n, "predicted_s": pred})
                continue
        t0 = time.perf_counter()
        gals, grads, z0 = _population_mocks(n, ny=ny)
        print(f"  hierarchy n={n}: {n} mocks made in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        # with a time limit, sampling stops in time to keep its draws; the reserve covers
        # the MAPs, compilation, diagnostics and InferenceData (10^4 galaxies on an H200:
        # 21 + 10 + ~19 s)
        budget = None if time_left is None else max(time_left() - 90.0, 30.0)
        res = fit_population(gals, fixed={"sersic_n": 1.0}, num_warmup=nw, num_samples=ns, seed=0,
                             num_chains=chains, vectorize_chains=vectorize_chains, segment=segment,
                             time_budget_s=budget)
        total = time.perf_counter() - t0
        diag = res.diagnostics
        rec = {"n_galaxies": n, "field_px": ny, "num_chains": chains, "total_s": total, "map_s": diag["map_s"],
               "nuts": _nuts_record(diag, "alpha_grad_std", res.flat.dim, nw, ns),
               "population_params": diag["hyper"],
               "population_ess_bulk_min": diag["ess_bulk_hyper_min"],
               "population_r_hat_max": diag["r_hat_hyper_max"],
               "posterior": {k: res.hyper[k] for k in ("mean_grad", "tau_grad", "mean_z", "tau_z")},
               "truth_sample": {"mean_grad": float(np.mean(grads)), "sd_grad": float(np.std(grads)),
                                "mean_z": float(np.mean(z0)), "sd_z": float(np.std(z0)),
                                "population": "grad ~ N(-0.05, 0.05), Z0 ~ N(8.1, 0.05)"},
               "alpha_grad": res.hyper["mean_grad"], "true_mean_grad": float(np.mean(grads))}
        if with_emcee and n <= emcee_max_n:
            rec["emcee"] = _emcee_record(res.flat, (res.data,), "alpha_grad_std", diag["run_s"],
                                         res.u_start, np.diag(res.var_start))
        runs.append(rec)
        if on_run is not None:
            on_run(runs)
        print(f"  hierarchy n={n}: run {diag['run_s']:.1f}s, steps/draw {diag['mean_steps_per_draw']:.1f}, "
              f"min ESS {diag['ess_bulk_min']:.0f}, population min ESS {diag['ess_bulk_hyper_min']:.0f} "
              f"max R-hat {diag['r_hat_hyper_max']:.3f}", flush=True)
    out = {"runs": runs, "skipped": skipped}
    if len(runs) >= 2:
        n = np.array([r["n_galaxies"] for r in runs], float)
        t = np.array([r["nuts"]["run_s"] for r in runs], float)
        slope, icpt = np.polyfit(np.log(n), np.log(t), 1)
        out["run_s_power_law"] = {"slope": float(slope), "prefactor_s": float(math.exp(icpt)),
                                  "note": "fit of log(run_s) vs log(n_galaxies) over the measured sizes"}
    return out


# ----------------------------------------------------------------------------- main
def cpu_main(args) -> dict:
    import jax
    import numpyro

    out = {"benchmark": "inference", "quick": args.quick, "machine": H.machine(),
           "versions": H.versions("numpyro", "optax", "emcee", "arviz"),
           "load_avg_start": _load(), "jax": jax.__version__, "numpyro": numpyro.__version__}
    t0 = time.perf_counter()
    print("(a) binned profile", flush=True)
    out["binned_profile"] = bench_binned(args.quick)
    print("(b) forward-model galaxy 64x64", flush=True)
    out["galaxy_64"] = bench_galaxy(args.quick)
    print("(b') forward-model galaxy 64x64, geometry + log U + PSF width sampled", flush=True)
    out["galaxy_64_full"] = bench_galaxy(args.quick, full=True)
    print("(c) hierarchy", flush=True)
    sizes = [1, 4] if args.quick else [1, 10, 20, 30, 100]
    out["hierarchy"] = bench_hierarchy(sizes, args.quick, emcee_max_n=20)
    out["hierarchy"]["gradient_cost"] = [_grad_cost(n) for n in ([1, 10] if args.quick else [1, 10, 20, 100])]
    runs = out["hierarchy"]["runs"]
    sel = [r for r in runs if 10 <= r["n_galaxies"] <= 100]
    if len(sel) >= 2:  # the scaling range
        log_n = np.log([r["n_galaxies"] for r in sel])
        times = {"run_s": [r["nuts"]["run_s"] for r in sel], "total_s": [r["total_s"] for r in sel]}
        for key, t in times.items():
            out["hierarchy"][f"slope_10_100_{key}"] = float(np.polyfit(log_n, np.log(t), 1)[0])
    print("(c) gradient cost vs galaxies, 64x64 maps", flush=True)
    out["hierarchy"]["gradient_scaling_64"] = gradient_scaling((4, 10) if args.quick else (10, 20, 50, 100))
    print("(c') hierarchy of 20 galaxies with 64x64 maps (all spaxels)", flush=True)
    big = bench_hierarchy([4 if args.quick else 20], args.quick, with_emcee=False, ny=64,
                          draws=(150, 150) if args.quick else (300, 300))
    out["hierarchy_64x64"] = big["runs"][0]
    for rec in (out["galaxy_64"], out["galaxy_64_full"], *runs):
        if "ess_key_per_s" in rec.get("emcee", {}):
            rec["nuts_over_emcee_ess_key_per_s"] = rec["nuts"]["ess_key_per_s"] / rec["emcee"]["ess_key_per_s"]
    out["load_avg_end"] = _load()
    out["wall_s"] = time.perf_counter() - t0
    return out


def emcee_long(target: str = "hierarchy", budget_s: float = 300.0) -> dict:
    """emcee alone for ``budget_s`` (not NUTS's budget) on one of the benchmark's
    potentials: a chain long enough to measure its autocorrelation time, hence its
    asymptotic ESS/s, where the equal-budget run is too short (its tau a lower bound).

    ``target``: ``"hierarchy"`` (20 galaxies, 16 x 16), ``"galaxy_64"`` (5 parameters) or
    ``"galaxy_64_full"`` (11 parameters); the NUTS side is the main run's record.
    """
    if target == "hierarchy":
        from jaxgrad.inference import fit_population

        gals, _, _ = _population_mocks(20)
        res = fit_population(gals, fixed={"sersic_n": 1.0}, num_warmup=200, num_samples=200, seed=0)
        rec = _emcee_record(res.flat, (res.data,), "alpha_grad_std", budget_s, res.u_start,
                            np.diag(res.var_start))
        rec["n_galaxies"] = 20
    else:
        # NUTS long too (8x the main run's draws, warm-up included in its time): both
        # samplers' asymptotic rates, measured in the same process
        res, (nw, ns), u_map, cov = _galaxy_fit(quick=False, full=target == "galaxy_64_full", draws=(500, 8000))
        rec = _emcee_record(res.model.flat, (res.model.obs,), "grad_z", budget_s, u_map, cov)
        rec["nuts_long"] = _nuts_record(res.diagnostics, "grad_z", res.model.flat.dim, nw, ns)
        rec["nuts_long_over_emcee_long_ess_key_per_s"] = rec["nuts_long"]["ess_key_per_s"] / rec["ess_key_per_s"]
    rec["budget_s"] = budget_s
    return rec


def gpu_main(args) -> dict:
    import jax
    import numpyro

    t_start = time.perf_counter()
    limit = args.time_limit

    def left():
        return limit - (time.perf_counter() - t_start)

    out = {"benchmark": "inference_gpu", "machine": H.machine(), "versions": H.versions("numpyro", "optax"),
           "jax": jax.__version__, "numpyro": numpyro.__version__, "time_limit_s": limit}
    sizes = args.sizes or ([100, 1000] if args.quick else [10000, 1000])
    costs = []
    for n in ([] if args.skip_grad_cost else sizes):
        if left() < 20:
            break
        costs.append(_grad_cost(n))
        print(f"  grad cost n={n}: {costs[-1]['grad_s'] * 1e3:.2f} ms", flush=True)
    out["gradient_cost"] = costs
    H.write("inference_gpu.json", out)
    out["hierarchy"] = bench_hierarchy(sizes, quick=True, with_emcee=False, time_left=left,
                                       draws=tuple(args.draws) if args.draws else
                                       ((300, 300) if args.quick else (500, 500)), chains=args.chains,
                                       grad_costs={c["n_galaxies"]: c["grad_s"] for c in costs},
                                       vectorize_chains=False if args.sequential_chains else None,
                                       segment=50,  # progress in the log every 50 iterations
                                       on_run=lambda runs: H.write("inference_gpu.json", {**out, "hierarchy_partial": runs}))
    out["wall_s"] = time.perf_counter() - t_start
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short chains, small sizes")
    ap.add_argument("--gpu", action="store_true", help="GPU section: hierarchy up to 1e4 galaxies")
    ap.add_argument("--time-limit", type=float, default=300.0, help="GPU section: seconds to stay within")
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="GPU section: numbers of galaxies")
    ap.add_argument("--chains", type=int, default=4, help="GPU section: chains (vmapped)")
    ap.add_argument("--draws", type=int, nargs=2, default=None, metavar=("WARMUP", "SAMPLES"),
                    help="GPU section: NUTS warm-up and sampling iterations per chain")
    ap.add_argument("--sequential-chains", action="store_true",
                    help="GPU section: run the chains one after another (default there: vmapped)")
    ap.add_argument("--skip-grad-cost", action="store_true", help="GPU section: no gradient-cost timings")
    ap.add_argument("--emcee-long", type=float, default=0.0, metavar="SECONDS",
                    help="only: a long emcee run on --emcee-target, added to results/inference.json")
    ap.add_argument("--emcee-target", default="hierarchy", choices=("hierarchy", "galaxy_64", "galaxy_64_full"),
                    help="potential of the long emcee run: the 20-galaxy hierarchy or a (b) galaxy")
    ap.add_argument("--scaling-only", action="store_true",
                    help="only: gradient cost vs galaxies (64x64), added to results/inference.json")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.scaling_only:
        out = json.loads((H.RESULTS / "inference.json").read_text())
        out["hierarchy"]["gradient_scaling_64"] = gradient_scaling()
        out["hierarchy"]["gradient_scaling_64"]["load_avg"] = _load()
        path = H.write("inference.json", out)
    elif args.emcee_long:
        out = json.loads((H.RESULTS / "inference.json").read_text())
        t = args.emcee_target
        rec = emcee_long(t, args.emcee_long)
        section = out["hierarchy"] if t == "hierarchy" else out[t]
        nuts = (next(r for r in section["runs"] if r["n_galaxies"] == 20) if t == "hierarchy" else section)["nuts"]
        rec["nuts_over_emcee_long_ess_key_per_s"] = nuts["ess_key_per_s"] / rec["ess_key_per_s"]
        rec["what"] = (f"emcee alone for {args.emcee_long:.0f} s on the same potential (python benchmarks/"
                       f"inference.py --emcee-long {args.emcee_long:.0f} --emcee-target {t}); its ESS/s "
                       "against the main run's NUTS ESS/s (same machine); an upper bound on emcee's "
                       "rate (so a lower bound on the ratio) when it has not converged")
        section["emcee_long"] = rec
        path = H.write("inference.json", out)
    elif args.gpu:  # stage timings on stdout: a run stopped at its limit still says where it was
        from jaxgrad._log import progress_to

        with progress_to(sys.stdout, prefix="  "):
            out = gpu_main(args)
        path = H.write("inference_gpu.json", out)
    else:
        out = cpu_main(args)
        path = H.write("inference.json", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
