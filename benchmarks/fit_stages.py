"""Where the wall time of one fit goes: MAP stage, NUTS compile, NUTS run, the rest.

What a user waits for from ``fit_galaxy`` / ``fit_population`` in a fresh process (every
compilation included), split by stage from the fit's own diagnostics:

* ``galaxy_basic``: the (b) galaxy of ``inference.py`` (64×64 maps, 4 lines, S/N 30;
  Z0, ∇Z, flux, R_e, n), 300 + 300 draws;
* ``galaxy_full``: the same with the geometry, log U and the PSF width sampled (11 par.);
* ``population_20_64``: the hierarchy's 20 mocks at 64×64 (``inference.py``), 100 + 100
  draws (a short run: the stage split, not the sampling, is the point).

Each configuration runs in its own subprocess (a fresh process: compile caches empty).

    python benchmarks/fit_stages.py [--configs galaxy_basic galaxy_full population_20_64]

Writes benchmarks/results/fit_stages.json (the "runs" key; other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _harness as H  # noqa: E402

CONFIGS = ("galaxy_basic", "galaxy_full", "population_20_64")


def run_one(name: str) -> dict:
    """Fit one configuration in this process and return its stage times (s)."""
    import inference as B  # the benchmark's mocks
    import jax
    import numpy as np

    from jaxgrad.inference import fit_galaxy, fit_population

    warnings.simplefilter("ignore")
    # every XLA compilation of the fit (count and seconds): a number the machine's load
    # does not move much, unlike the stage times
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiles.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None)
    if name.startswith("galaxy"):
        data, priors = B.galaxy_problem(full=name == "galaxy_full")
        t0 = time.perf_counter()
        compiles.clear()
        res = fit_galaxy(data, priors=priors, num_warmup=300, num_samples=300, num_chains=1, seed=0)
        total = time.perf_counter() - t0
        d = res.diagnostics
        extra = {"map_evals": d.get("map_evals"), "map": res.map,
                 "grad_z": [float(np.median(res.samples["grad_z"])), float(np.std(res.samples["grad_z"]))]}
    else:
        gals, _, _ = B._population_mocks(20, ny=64)
        t0 = time.perf_counter()
        compiles.clear()
        res = fit_population(gals, fixed={"sersic_n": 1.0}, num_warmup=100, num_samples=100, seed=0)
        total = time.perf_counter() - t0
        d = res.diagnostics
        extra = {"mean_grad": res.hyper["mean_grad"]["median"], "mean_steps_per_draw": d["mean_steps_per_draw"]}
    rest = total - d["map_s"] - d["compile_s"] - d["run_s"]
    return {"config": name, "total_s": total, "map_s": d["map_s"], "nuts_compile_s": d["compile_s"],
            "nuts_run_s": d["run_s"], "rest_s": rest, "n_compilations": len(compiles),
            "compile_total_s": float(sum(compiles)), **extra}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one), default=float))
        return
    runs = []
    for name in args.configs:
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cols = ["config", "total_s", "map_s", "nuts_compile_s", "nuts_run_s", "rest_s", "n_compilations",
            "compile_total_s"]
    print(H.table([{c: (r[c] if c in ("config", "n_compilations") else f"{r[c]:.1f}") for c in cols}
                   for r in runs], cols))
    path = Path(__file__).parent / "results" / "fit_stages.json"
    payload = json.loads(path.read_text()) if path.exists() else {}
    payload.update({"benchmark": "fit_stages", "machine": H.machine(), "versions": H.versions("jax", "numpyro"),
                    "runs": runs})
    before = {r["config"]: r for r in payload.get("before_58645ad", {}).get("runs", [])}
    payload["vs_before_58645ad"] = {  # an earlier session's run on this machine, not the same run
        r["config"]: {"total": before[r["config"]]["total_s"] / r["total_s"],
                      "map": before[r["config"]]["map_s"] / r["map_s"]}
        for r in runs if r["config"] in before}
    H.write("fit_stages.json", payload)


if __name__ == "__main__":
    main()
