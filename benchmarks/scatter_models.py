"""Calibration-scatter models: bias and coverage of ∇Z and Z0 for every generating × fitting
pair (issue 27, item 2).

    python benchmarks/scatter_models.py [--n 24] [--work DIR] [--report-only]

Mocks: 32×32 maps of [OII], Hβ, [OIII] (Sanders+25 R3 and O2, scatter 0.13 and 0.25 dex),
z = 5, R_e = 2 kpc, PSF 0.25″ (2R_e/beam = 2.5), S/N 30, ∇Z ~ U(−0.15, 0.10), Z0 ~
U(7.9, 8.3). Generated three ways: ``none`` (ratios on the calibration), ``pixel`` (each
pixel's ratio log-normally scattered by s_l, independently), ``coherent`` (each line's
ratio to Hβ offset for the whole galaxy by one draw of N(0, s_l): what a calibration's
scatter is). Each mock is fitted with ``fit_galaxy(scatter_model="pixel")`` and
``"coherent"``. Per pair: mean z = (median − truth)/sd with its error, and the 68/95 %
coverage, of ∇Z and Z0. One JSON line per fit in ``WORK/fits.jsonl`` (resumable); the
table goes to ``benchmarks/results/scatter_models.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _harness as H  # noqa: E402

GENERATING = ("none", "pixel", "coherent")
FITTING = ("pixel", "coherent")


def make_mock(i: int, gen: str, seed: int):
    import jax

    import jaxgrad as jg
    from jaxgrad.inference import GalaxyData
    from jaxgrad.inference.likelihood import line_scatter
    from jaxgrad.inference.simulate import INFERRED, noise_level, simulate_planes

    spec = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), calibration="sanders25", ny=32, nx=32,
                        pixel_scale=0.05, use_logu=False)
    rng = np.random.default_rng([seed, i])
    p = jg.make_params(logoh0=rng.uniform(7.9, 8.3), grad_z=rng.uniform(-0.15, 0.10), r_e=2.0, z=5.0, psf_fwhm=0.25)
    s, _ = line_scatter(spec)
    sigma = float(noise_level(p, spec, 30.0))
    key = jax.random.fold_in(jax.random.key(seed), i)
    sigma_ln = scale = None
    if gen == "pixel":
        sigma_ln = s * np.log(10.0)
    elif gen == "coherent":
        scale = 10.0 ** rng.normal(0.0, s)
    planes = np.asarray(simulate_planes(key, p, spec, sigma, "maps", sigma_ln, "lognormal", scale))
    known = {f: float(getattr(p, f)) for f in p._fields if f not in INFERRED}
    return GalaxyData(planes, np.full(planes.shape, sigma), None, spec, known=known, name=f"{gen}{i}"), p


def fit_row(i, gen, fit_model, seed, warmup, samples):
    from jaxgrad.inference import fit_galaxy

    data, p = make_mock(i, gen, seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit_galaxy(data, num_warmup=warmup, num_samples=samples, num_chains=2, seed=i, scatter_model=fit_model)
    row = {"index": i, "gen": gen, "fit": fit_model, "wall_s": time.perf_counter() - t0,
           "problems": f.diagnostics["problems"]}
    for k in ("grad_z", "logoh0"):
        d = np.asarray(f.samples[k]).ravel()
        q = np.percentile(d, [2.5, 16, 50, 84, 97.5])
        row[k] = {"truth": float(getattr(p, k)), "q": [float(v) for v in q], "sd": float(np.std(d))}
    return row


def table(rows):
    out = {}
    for g in GENERATING:
        for f in FITTING:
            rs = [r for r in rows if r["gen"] == g and r["fit"] == f]
            if not rs:
                continue
            cell = {"n": len(rs), "n_unhealthy": int(sum(bool(r["problems"]) for r in rs))}
            for k in ("grad_z", "logoh0"):
                t = np.array([r[k]["truth"] for r in rs])
                q = np.array([r[k]["q"] for r in rs])
                sd = np.array([r[k]["sd"] for r in rs])
                z = (q[:, 2] - t) / sd
                cell[k] = {"mean_z": float(np.mean(z)), "mean_z_err": float(np.std(z, ddof=1) / np.sqrt(len(z)))
                           if len(z) > 1 else None, "rms_z": float(np.sqrt(np.mean(z ** 2))),
                           "cover68": float(np.mean((t >= q[:, 1]) & (t <= q[:, 3]))),
                           "cover95": float(np.mean((t >= q[:, 0]) & (t <= q[:, 4]))),
                           "median_sd": float(np.median(sd))}
            out[f"{g}/{f}"] = cell
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24, help="mocks per generating model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="scatter_models_work")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--generating", nargs="*", default=list(GENERATING))
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    path, rows = H.load_rows(args.work)
    done = {(r["index"], r["gen"], r["fit"]) for r in rows}
    if not args.report_only:
        for i in range(args.n):
            for g in args.generating:
                for f in FITTING:
                    if (i, g, f) in done:
                        continue
                    r = fit_row(i, g, f, args.seed, args.warmup, args.samples)
                    H.append_row(path, rows, r)
                    print(f"{i:3d} {g:8s} fit {f:8s}: grad {r['grad_z']['q'][2]:+.3f} (truth {r['grad_z']['truth']:+.3f}) "
                          f"Z0 {r['logoh0']['q'][2]:.3f} ± {r['logoh0']['sd']:.3f} (truth {r['logoh0']['truth']:.3f}) "
                          f"{r['wall_s']:.1f} s", flush=True)
    tab = table(rows)
    H.write("scatter_models.json", {"benchmark": "scatter_models", "n_per_generating": args.n, "seed": args.seed,
                                    "warmup": args.warmup, "samples": args.samples, "chains": 2, "table": tab,
                                    "machine": H.machine(), "versions": H.versions()})
    print(f"{'generating/fitting':>20} {'n':>3}  {'∇Z z':>12} {'cov68':>5} {'cov95':>5}  {'Z0 z':>12} {'cov68':>5} {'cov95':>5}")
    for k, c in tab.items():
        g, z = c["grad_z"], c["logoh0"]
        print(f"{k:>20} {c['n']:3d}  {g['mean_z']:+5.2f}±{(g['mean_z_err'] or 0):.2f} {g['cover68']:5.2f} {g['cover95']:5.2f}"
              f"  {z['mean_z']:+5.2f}±{(z['mean_z_err'] or 0):.2f} {z['cover68']:5.2f} {z['cover95']:5.2f}")


if __name__ == "__main__":
    main()
