"""Mock-suite throughput: generation alone and generation + measurement, vs batch size.

    python benchmarks/mocks.py [--quick] [--gpu] [--n-suite 1500] [--million N]

CPU (default): mocks/s for generation and generation+measurement at several batch sizes,
the 1500-mock default suite (generate + measure, written to disk) end to end, and the
DysmalPy per-cube time for the same spec measured in the same run. A DysmalPy model has one
line, so the like-for-like cost of one 4-line mock cube (4 windows × 12 channels) is 4
one-line 12-channel cubes, timed at six PSF widths spanning the suite's uniform PSF
distribution and averaged (DysmalPy's cost grows with the beam); the DysmalPy-based suite
time is that × N (generation only). The suite run and the DysmalPy timing alternate over
``--rounds`` rounds (default 3) and the medians are compared. jaxgrad's suite is also compared per CPU second (its
XLA program keeps more than one core busy; DysmalPy keeps one). A one-line 48-channel cube
(PSF 0.2″, the comparison reported before) is timed too. GPU (``--gpu``): the same plus a large run
(``--million``, default 10⁶ mocks generated + measured + written) and the achieved memory
bandwidth against the card's peak. Writes benchmarks/results/mocks.json (mocks_gpu.json).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _harness as H  # noqa: E402
from forward import PEAK_BW, dysmalpy_time  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--n-suite", type=int, default=1500)
    ap.add_argument("--million", type=int, default=1_000_000, help="GPU large-run size")
    ap.add_argument("--large-chunk", type=int, default=8192)
    ap.add_argument("--batches", type=int, nargs="*", default=None)
    ap.add_argument("--no-dysmalpy", action="store_true")
    ap.add_argument("--rounds", type=int, default=3,
                    help="suite runs alternating with DysmalPy timings (medians of both)")
    ap.add_argument("--time-limit", type=float, default=400.0, help="seconds for the large GPU run")
    args = ap.parse_args(argv)
    load0 = H.load_average()

    import jax

    from jaxgrad import mocks
    from jaxgrad.mocks.measure import measure_batch_jax

    warnings.simplefilter("ignore")
    suite = mocks.PAPER_A
    batches = args.batches or ([8, 32] if args.quick else ([1024, 8192] if args.gpu else [16, 64, 256]))
    reps = 2 if args.quick else 3
    rows = []
    gen = mocks.generate

    def gen_only(idx):
        return gen(suite, 0, idx).data

    def gen_measure(idx):
        b = gen(suite, 0, idx)
        return measure_batch_jax(b, suite)

    out_name = "mocks_gpu.json" if args.gpu else "mocks.json"
    partial = {"benchmark": "mocks", "machine": H.machine(), "versions": H.versions("h5py"), "partial": True,
               "results": rows}

    for b in batches:
        idx = np.arange(b)
        for kind, fn in (("generate", gen_only), ("generate+measure", gen_measure)):
            t = H.time_call(fn, idx, repeats=reps)
            rows.append({"kind": kind, "batch": b, "compile_s": t["first_call_s"] - t["median_s"],
                         "median_s": t["median_s"], "mocks_per_s": b / t["median_s"],
                         "cube_GB_per_s": b * 40 * 64 * 64 * 4 / t["median_s"] / 1e9})
            print(f"{kind:17s} batch {b:6d}: {b / t['median_s']:10.1f} mocks/s", flush=True)
            H.write(out_name, partial)  # keep what is measured if a later stage is cut off

    # the default suite end to end (generation + measurement + HDF5 chunks), after compilation,
    # alternating with DysmalPy's timing over `rounds` rounds: both peers are measured
    # through the same period (DysmalPy's own time per cube moved by 44% between two runs
    # of this script while jaxgrad's suite moved by 2%)
    n_suite = 200 if args.quick else args.n_suite
    chunk = 100 if not args.gpu else 1500
    n_lines = len(suite.lines)
    per_line = suite.n_chan_per_line
    use_dys = not (args.no_dysmalpy or args.gpu)
    rounds = 1 if (args.quick or args.gpu) else args.rounds
    # the suite draws 2R_e/beam log-uniformly (or the FWHM uniformly, suite.psf_fwhm),
    # and DysmalPy's time depends on the beam (its convolution kernel grows with it):
    # timed at the midpoints of 6 equal-probability strata, the mean is its expected
    # time per cube
    if suite.psf_fwhm is not None:
        lo, hi = suite.psf_fwhm
        strata = [lo + (hi - lo) * (k + 0.5) / 6 for k in range(6)]
    else:
        xlo, xhi = np.log(suite.x_range())
        kpc = suite.kpc_per_arcsec()
        strata = [2 * suite.r_e / (np.exp(xlo + (xhi - xlo) * (k + 0.5) / 6) * kpc) for k in range(6)]
    tmp = Path(tempfile.mkdtemp(prefix="jaxgrad_suite_"))
    mocks.run_suite(suite, chunk, tmp / "warm", seed=0, chunk_size=chunk, progress=False)  # compile
    walls, cpus, dys_rounds = [], [], []
    dys_failed = None  # why DysmalPy could not be timed, if it could not
    for r in range(rounds):
        if use_dys and dys_failed is None:
            d = dysmalpy_time(per_line, 3, psf_fwhm=strata)  # one line, one 12-channel window
            if d.get("available"):
                dys_rounds.append(d)
            else:
                dys_failed = d
        shutil.rmtree(tmp / "suite", ignore_errors=True)
        cpu0 = H.cpu_seconds()
        t0 = time.perf_counter()
        res = mocks.run_suite(suite, n_suite, tmp / "suite", seed=1, chunk_size=chunk, progress=False)
        walls.append(time.perf_counter() - t0)
        cpus.append(H.cpu_seconds() - cpu0)
        print(f"round {r + 1}/{rounds}: suite of {n_suite}: {walls[-1]:.2f} s ({res['chunks_computed']} chunks), "
              f"{cpus[-1] / walls[-1]:.2f} cores busy"
              + (f"; DysmalPy {dys_rounds[-1]['median_s']:.3f} s per one-line cube" if dys_rounds else ""),
              flush=True)
    t_suite = float(np.median(walls))
    cpu_suite = float(np.median(cpus))
    suite_run = {"n": n_suite, "wall_s": t_suite, "chunk_size": chunk, "cpu_s": cpu_suite,
                 "cores_busy": cpu_suite / t_suite, "rounds": rounds, "wall_s_per_round": walls,
                 "cpu_s_per_round": cpus}
    partial["suite_run"] = suite_run
    H.write(out_name, partial)
    large = None
    if args.gpu:
        n_large = args.million
        t0 = time.perf_counter()
        r = mocks.run_suite(suite, n_large, tmp / "large", seed=2, chunk_size=args.large_chunk, progress=False,
                            time_limit_s=args.time_limit)
        t_large = time.perf_counter() - t0
        done = r["mocks_computed"]
        large = {"n_requested": n_large, "n_done": done, "wall_s": t_large, "mocks_per_s": done / t_large,
                 "complete": done == n_large, "chunk_size": args.large_chunk,
                 "extrapolated_s_for_requested": n_large / (done / t_large) if done else None}
        print(f"large run: {done}/{n_large} mocks in {t_large:.1f} s ({done / t_large:,.0f}/s)")
    shutil.rmtree(tmp, ignore_errors=True)

    if not use_dys:
        dys = {"available": False, "reason": "skipped"}
        dys_line = dict(dys)
    else:
        dys = dysmalpy_time(n_lines * per_line, 3)  # one line, 48 channels, PSF 0.2"
        if dys_rounds:
            # median over the rounds of the PSF-averaged time per one-line window cube
            dys_line = dict(dys_rounds[0], median_s=float(np.median([d["median_s"] for d in dys_rounds])),
                            median_s_per_round=[d["median_s"] for d in dys_rounds],
                            per_psf_per_round=[d.get("per_psf") for d in dys_rounds])
        else:
            dys_line = dys_failed  # says why it is unavailable
    ratio = None
    if dys.get("available") and dys_line.get("available"):
        eq4 = n_lines * dys_line["median_s"]
        dys_suite = eq4 * n_suite
        gen_rows = [r for r in rows if r["kind"] == "generate"]
        gen_best = min(r["median_s"] / r["batch"] for r in gen_rows) if gen_rows else None
        ratio = {"dysmalpy_equivalent_cube_s": eq4, "lines_per_cube": n_lines, "dysmalpy_one_line_12chan_s": dys_line["median_s"],
                 "dysmalpy_one_line_48chan_s": dys["median_s"],
                 "dysmalpy_suite_generation_s_estimate": dys_suite, "jaxgrad_suite_s": t_suite,
                 "ratio": dys_suite / t_suite,
                 # DysmalPy runs on one core (numpy); jaxgrad's XLA program keeps more busy
                 "ratio_per_cpu_second": dys_suite / cpu_suite,
                 "ratio_vs_one_line_48chan": dys["median_s"] * n_suite / t_suite,
                 "generation_only_ratio": (eq4 / gen_best) if gen_best else None,
                 "note": (f"like-for-like (ratio): DysmalPy generation of N {n_lines}-line cubes, each "
                          f"{n_lines} one-line {per_line}-channel cubes (a DysmalPy model has one "
                          f"line; its time averaged over the suite's PSF distribution), vs jaxgrad "
                          f"generation + measurement + disk I/O of the same N cubes (wall time). "
                          f"ratio_per_cpu_second: the same against jaxgrad's CPU seconds (user + "
                          f"system, all threads; DysmalPy keeps one core busy). Both times are medians over "
                          f"{rounds} rounds that alternate a DysmalPy timing with a suite run. ratio_vs_one_line_48chan: DysmalPy one-line 48-channel cube x N "
                          f"(the earlier comparison). generation_only_ratio: per cube, DysmalPy "
                          f"4-line equivalent / jaxgrad batched generation (cube + noise).")}
        print(f"DysmalPy-based generation of {n_suite} {n_lines}-line cubes ≈ {dys_suite:.0f} s → "
              f"ratio {ratio['ratio']:.0f}x (one-line 48-channel: {ratio['ratio_vs_one_line_48chan']:.0f}x)")
    mach = H.machine()
    bw = None
    for key, peak in PEAK_BW.items():
        if key in " ".join(mach.get("devices") or []):
            best = max(r["cube_GB_per_s"] for r in rows if r["kind"] == "generate")
            bw = {"card_peak_GB_per_s": peak / 1e9, "best_generate_cube_GB_per_s": best, "fraction": best * 1e9 / peak,
                  "note": "cube bytes written once per mock (lower bound on traffic)"}
    print(H.table([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
                  ["kind", "batch", "compile_s", "mocks_per_s", "cube_GB_per_s"]))
    payload = {"benchmark": "mocks", "machine": mach, "versions": H.versions("h5py"), "suite": suite.to_dict(),
               "results": rows, "suite_run": suite_run,
               "large_run": large, "dysmalpy": dys, "dysmalpy_one_line_window": dys_line, "ratio": ratio,
               "memory_bandwidth": bw, "load_average": {"start": load0, "end": H.load_average()},
               "jax_backend": jax.default_backend(),
               "targets": {"cpu_suite_1500_s": 120, "gpu_suite_1500_s": 5, "gpu_1e6_s": 300}}
    path = H.write(out_name, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
