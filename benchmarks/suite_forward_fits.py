"""The forward-model fit on the beam-smearing suite: bias and coverage of ∇Z per 2R_e/beam bin,
next to the observer pipeline's ratio for the same mocks (issue 20, item 5).

    python benchmarks/suite_forward_fits.py --n 200 [--work DIR] [--time-limit S] [--report-only]

Mocks are the maps-mode twin of the Paper A suite (``SuiteSpec(mode="maps")``: the same
galaxies, design rules, log-uniform 2R_e/beam and S/N definition, as line maps instead of
cubes — a cube fit per mock costs ~10x a maps fit on this 2-core CPU). Each mock is fitted
with :func:`jaxgrad.inference.fit_galaxy` (default priors and calibration-scatter term;
Z0, ∇Z, Hβ flux, R_e and Sérsic n sampled; the geometry, PSF and z known), and measured by
the suite's pipeline. One JSON line per mock is appended to ``WORK/fits.jsonl`` as it
finishes, so a stopped run resumes where it stopped (``--time-limit`` stops starting new
fits). The summary goes to ``benchmarks/results/suite_forward_fits.json``.
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

X_EDGES = (0.6, 1.2, 2.5, 4.5, 6.4)  # Paper A's smallest, median and largest 2R_e/beam inside


def fit_one(suite, seed, i, warmup, samples):
    from jaxgrad.inference import GalaxyData, fit_galaxy
    from jaxgrad.inference.simulate import INFERRED
    from jaxgrad.mocks import generate_one, model_spec
    from jaxgrad.mocks.generate import MockBatch
    from jaxgrad.mocks.measure import measure_batch

    b = generate_one(suite, seed, i)
    spec = model_spec(suite)
    p = b.params
    known = {f: float(getattr(p, f)) for f in p._fields if f not in INFERRED}
    data = GalaxyData(np.asarray(b.data), np.full(b.data.shape, float(b.sigma)), None, spec, known=known,
                      kind="maps", name=f"mock{i}")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_galaxy(data, num_warmup=warmup, num_samples=samples, num_chains=2, seed=i)
    wall = time.perf_counter() - t0
    draws = np.asarray(fit.samples["grad_z"]).ravel()
    q = np.percentile(draws, [2.5, 16, 50, 84, 97.5])
    import jax

    one = MockBatch(*jax.tree_util.tree_map(lambda v: np.asarray(v)[None], tuple(b)))
    meas = measure_batch(one, suite)
    diag = fit.diagnostics
    return {"index": int(i), "grad_true": float(p.grad_z), "logoh0_true": float(p.logoh0),
            "two_re_over_beam": float(b.two_re_over_beam), "snr": float(b.snr),
            "fm_median": float(q[2]), "fm_sd": float(np.std(draws)), "fm_q": [float(v) for v in q],
            "fm_rhat": float(max(diag["r_hat"].values())), "fm_ess_bulk": float(min(diag["ess_bulk"].values())),
            "fm_divergences": int(diag.get("divergences", 0)), "fm_wall_s": wall,
            "pipe_grad": float(meas["grad_meas"][0]), "pipe_err": float(meas["grad_err"][0])}


def summarise(rows):
    g = np.array([r["grad_true"] for r in rows])
    x = np.array([r["two_re_over_beam"] for r in rows])
    med = np.array([r["fm_median"] for r in rows])
    sd = np.array([r["fm_sd"] for r in rows])
    q = np.array([r["fm_q"] for r in rows])
    pipe = np.array([r["pipe_grad"] for r in rows])
    out = []
    for lo, hi in zip(X_EDGES[:-1], X_EDGES[1:], strict=True):
        s = (x >= lo) & (x < hi)
        if s.sum() == 0:
            continue
        z = (med[s] - g[s]) / sd[s]
        out.append({"x_lo": lo, "x_hi": hi, "n": int(s.sum()),
                    "fm_bias_over_sd_mean": float(np.mean(z)), "fm_bias_over_sd_err": float(np.std(z) / np.sqrt(s.sum())),
                    "fm_ratio_median": float(np.median(med[s] / g[s])),
                    "fm_cover68": float(np.mean((g[s] >= q[s, 1]) & (g[s] <= q[s, 3]))),
                    "fm_cover95": float(np.mean((g[s] >= q[s, 0]) & (g[s] <= q[s, 4]))),
                    "fm_sd_median": float(np.median(sd[s])),
                    "pipeline_ratio_median": float(np.nanmedian(pipe[s] / g[s]))})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="suite_forward_fits")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)

    from jaxgrad import mocks

    suite = mocks.SuiteSpec(mode="maps")
    path, rows = H.load_rows(args.work)
    done = {r["index"] for r in rows}
    t0 = time.perf_counter()
    if not args.report_only:
        for i in range(args.n):
            if i in done:
                continue
            if args.time_limit is not None and time.perf_counter() - t0 > args.time_limit:
                print(f"time limit reached after {len(rows)} fits; run again to resume", flush=True)
                break
            row = fit_one(suite, args.seed, i, args.warmup, args.samples)
            H.append_row(path, rows, row)
            print(f"mock {i:4d}: x {row['two_re_over_beam']:.2f}, truth {row['grad_true']:+.2f}, forward model "
                  f"{row['fm_median']:+.3f} ± {row['fm_sd']:.3f}, pipeline {row['pipe_grad']:+.3f} "
                  f"({row['fm_wall_s']:.1f} s)", flush=True)
    rows = sorted((r for r in rows if r["index"] < args.n), key=lambda r: r["index"])
    bins = summarise(rows)
    payload = {"benchmark": "suite_forward_fits", "spec": suite.to_dict(), "seed": args.seed,
               "n_requested": args.n, "n_done": len(rows), "complete": len(rows) >= args.n,
               "warmup": args.warmup, "samples": args.samples, "chains": 2,
               "median_fit_wall_s": float(np.median([r["fm_wall_s"] for r in rows])) if rows else None,
               "max_rhat": float(np.nanmax([r["fm_rhat"] for r in rows])) if rows else None,
               "fits_with_divergences": int(sum(r["fm_divergences"] > 0 for r in rows)),
               "bins": bins, "machine": H.machine(), "versions": H.versions()}
    H.write("suite_forward_fits.json", payload)
    print(f"{'x bin':>11} {'n':>4} {'FM bias/sd':>11} {'FM ratio':>9} {'cov68':>6} {'cov95':>6} {'pipeline':>9}")
    for b in bins:
        print(f"{b['x_lo']:4.1f}-{b['x_hi']:<4.1f} {b['n']:4d} {b['fm_bias_over_sd_mean']:+6.2f}±{b['fm_bias_over_sd_err']:.2f}"
              f" {b['fm_ratio_median']:9.3f} {b['fm_cover68']:6.2f} {b['fm_cover95']:6.2f} {b['pipeline_ratio_median']:9.3f}")


if __name__ == "__main__":
    main()
