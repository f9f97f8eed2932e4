"""Observer-pipeline benchmark: the full chain per galaxy, single and vmapped, and the
gradient fit with emcee (Paper A's set-up) against NumPyro NUTS on the same bins.

    python benchmarks/pipeline.py [--quick] [--batch 256] [--no-cubes]

Parts:

1. *maps chain* — :func:`jaxgrad.pipeline.batched_gradient_from_maps` on forward-model
   line maps (4 lines, 48 x 48 pixels of 0.05", z = 5; geometry fit, annuli, Method I grid
   and Method II, WLS gradients): one galaxy (B = 1) and a batch of B mocks in one call.
2. *cube chain* — :func:`jaxgrad.pipeline.batched_gradient_from_cubes` on forward-model
   cubes (32 x 32 pixels, ~900 channels of 106 km/s; the same steps plus a line fit per
   annulus and moving-RMS error spectra), B = 1 and B mocks (chunked).
3. *gradient fit* — one galaxy's Method I bins fitted by emcee (64 walkers x 2000 steps,
   500 burn-in, flat priors, started at least squares) and by NUTS (1000 warm-up + 2000
   draws): wall time, ArviZ bulk ESS of the gradient, ESS per second and their ratio.

Times are medians over repeats after one warm-up call (compile time reported separately).
The CPU is shared with other work: numbers are what was measured, with min and max.
Writes benchmarks/results/pipeline.json and prints a table.
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

LINES = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")
Z = 5.0
PIX = 0.05


def _mocks(B, seed, ny, cube=False):
    """Paper A mock-suite galaxies (SCIENCE.md §7): gradient in [-0.2, 0.2] dex/kpc,
    PSF FWHM 0.1-1.0", R_e = 2 kpc, inclination 20°, z = 5, noise at S/N ~ 50."""
    import jax

    import jaxgrad as jg

    rng = np.random.default_rng(seed)
    grad = rng.uniform(-0.2, 0.2, B)
    fwhm = rng.uniform(0.1, 1.0, B)
    z0 = 7.85 - 0.5 * grad  # keeps 12+log(O/H) near sanders24's range out to ~3 kpc
    spec = jg.ModelSpec(lines=LINES, calibration="sanders24", ny=ny, nx=ny, pixel_scale=PIX,
                        range_check="off")
    if cube:
        spec = jg.default_channels(spec, Z, dv_kms=106.0, pad_kms=3000.0)
    p = jg.make_params(grad_z=grad, logoh0=z0, psf_fwhm=fwhm, z=Z, inc=20.0, flux_hb=300.0,
                       sigma0=80.0, lsf_sigma=125.0)
    fn = jg.batch_cube if cube else jg.batch_line_maps
    chunk = 16
    parts = []
    for i in range(0, B, chunk):  # chunks keep the forward model's memory small
        sub = jax.tree_util.tree_map(lambda x, i=i: x[i:i + chunk], p)
        parts.append(np.asarray(fn(sub, spec), np.float32))
    data = np.concatenate(parts)
    c = ny // 2
    peak = data.max(axis=(-1, -2, -3), keepdims=True) if cube else data[..., c:c + 1, c:c + 1]
    err = np.broadcast_to(peak / 50.0, data.shape).astype(np.float32)
    noisy = data + err * rng.standard_normal(data.shape, dtype=np.float32)
    jax.clear_caches()
    out = dict(data=noisy, err=err, grad=grad, fwhm=fwhm)
    if cube:
        e = np.asarray(spec.channel_edges)
        out["centres"] = np.sqrt(e[1:] * e[:-1])
    return out


def _chain_row(part, run, n, grad_true, repeats, rate_digits, **extra):
    """Time ``run`` (n galaxies through a batched chain) and summarise it as a table row."""
    t = H.time_call(run, repeats=repeats)
    g = run()
    return {"part": part, "batch": n, **extra, "compile+first_s": round(t["first_call_s"], 2),
            "median_s": round(t["median_s"], 4), "min_s": round(t["min_s"], 4),
            "max_s": round(t["max_s"], 4), "per_galaxy_ms": round(1e3 * t["median_s"] / n, 2),
            "galaxies_per_s": round(n / t["median_s"], rate_digits),
            "median_ratio_measured_true": float(np.nanmedian(g / grad_true))}


def bench_maps(B, repeats):
    from jaxgrad.pipeline import batched_gradient_from_maps

    m = _mocks(B, 1, 48)
    kw = dict(calibration="sanders24", diagnostics=("R3", "O2", "Ne3O2"))
    rows = []
    for n in (1, B):
        def run(n=n):
            return batched_gradient_from_maps(m["data"][:n], m["err"][:n], LINES, PIX, Z,
                                              m["fwhm"][:n], **kw).grad

        rows.append(_chain_row("maps chain", run, n, m["grad"][:n], repeats, rate_digits=1))
    return rows


def bench_cubes(B, repeats, chunk):
    from jaxgrad.pipeline import batched_gradient_from_cubes

    m = _mocks(B, 2, 32, cube=True)
    kw = dict(calibration="sanders24", diagnostics=("R3", "O2", "Ne3O2"))
    rows = []
    for n in (1, B):
        def run(n=n):
            return batched_gradient_from_cubes(m["data"][:n], None, m["centres"], LINES, PIX, Z,
                                               m["fwhm"][:n], chunk_size=min(chunk, n), **kw).grad

        rows.append(_chain_row("cube chain", run, n, m["grad"][:n], repeats, rate_digits=2,
                               n_chan=int(m["data"].shape[1])))
    return rows


def bench_samplers(repeats, quick):
    import jax

    from jaxgrad.pipeline import batched_gradient_from_maps, sampling

    m = _mocks(1, 3, 48)
    m["fwhm"][:] = 0.2
    res = batched_gradient_from_maps(m["data"], m["err"], LINES, PIX, Z, m["fwhm"],
                                     calibration="sanders24", diagnostics=("R3", "O2", "Ne3O2"))
    ok = res.bin_valid[0]
    r, y, e = res.radius[0][ok], res.logoh[0][ok], res.logoh_err[0][ok]
    steps = 2000
    walkers = 64
    burn = 500
    rows = []
    emc, nuts = [], []
    for i in range(repeats):
        emc.append(sampling.fit_gradient_emcee(r, y, e, n_walkers=walkers, n_steps=steps, burn=burn,
                                               seed=i))
    t0 = time.perf_counter()
    first = sampling.fit_gradient_numpyro(jax.random.key(100), r, y, e, num_warmup=1000,
                                          num_samples=2000)
    nuts_first = time.perf_counter() - t0
    for i in range(repeats):
        nuts.append(sampling.fit_gradient_numpyro(jax.random.key(i), r, y, e, num_warmup=1000,
                                                  num_samples=2000))
    del first
    for name, runs, setup in (("emcee", emc, f"{walkers} walkers x {steps} steps, {burn} burn-in"),
                              ("numpyro NUTS", nuts, "1000 warm-up + 2000 draws, 1 chain")):
        wall = np.array([x.wall_s for x in runs])
        ess = np.array([x.ess["grad"] for x in runs])
        rows.append({"part": "gradient fit", "sampler": name, "setup": setup, "n_bins": int(ok.sum()),
                     "median_s": round(float(np.median(wall)), 3), "min_s": round(float(wall.min()), 3),
                     "max_s": round(float(wall.max()), 3), "ess_grad": round(float(np.median(ess)), 1),
                     "ess_per_s": round(float(np.median(ess / wall)), 1),
                     "grad_median": float(np.median([x.median["grad"] for x in runs])),
                     "grad_sd": float(np.median([x.std["grad"] for x in runs]))})
    rows[1]["first_call_s"] = round(nuts_first, 2)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small batches, fewer repeats")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 256; quick 16)")
    ap.add_argument("--no-cubes", action="store_true")
    ap.add_argument("--chunk", type=int, default=32, help="cube chain: galaxies per chunk")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    B = args.batch or (16 if args.quick else 256)
    reps = 2 if args.quick else 5
    rows = bench_maps(B, reps)
    if not args.no_cubes:
        rows += bench_cubes(B, max(1, reps // 2) if B > 64 else reps, args.chunk)
    srows = bench_samplers(2 if args.quick else 5, args.quick)
    e, n = srows
    ratio = {"nuts_over_emcee_ess_per_s": n["ess_per_s"] / e["ess_per_s"],
             "emcee_over_nuts_wall": e["median_s"] / n["median_s"]}
    payload = {"benchmark": "pipeline", "machine": H.machine(),
               "versions": H.versions("emcee", "arviz", "optax"),
               "note": "CPU shared with other work while measured; medians after one warm-up call",
               "sizes": {"batch": B, "maps": [len(LINES), 48, 48], "cube_pixels": [32, 32],
                         "lines": list(LINES), "z": Z, "pixel_scale": PIX},
               "chains": rows, "gradient_fit": srows, "ratio": ratio, "quick": args.quick}
    path = H.write("pipeline.json", payload)
    print(H.table(rows, ["part", "batch", "compile+first_s", "median_s", "min_s", "max_s",
                         "per_galaxy_ms", "galaxies_per_s"]))
    print()
    print(H.table(srows, ["sampler", "setup", "median_s", "ess_grad", "ess_per_s", "grad_median",
                          "grad_sd"]))
    print(f"\nNUTS / emcee ESS per second: {ratio['nuts_over_emcee_ess_per_s']:.2f}; "
          f"emcee / NUTS wall time: {ratio['emcee_over_nuts_wall']:.2f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
