"""The ``jaxgrad`` command line.

    jaxgrad demo [--out DIR] [--quick]
    jaxgrad fit CONFIG.toml
    jaxgrad calibrations list
    jaxgrad calibrations eval NAME DIAG LOGOH [LOGOH ...] [--logu X]
    jaxgrad calibrations invert NAME DIAG LOGRATIO [--branch lower|upper]
    jaxgrad mocks run SPEC.toml|paper_a --n 1500 --out DIR
    jaxgrad mocks curves DIR
    jaxgrad population TABLE.csv --column COL [--err-plus COL --err-minus COL]
                       [--covariate COL ...] --json OUT.json

Every error is printed as one line (``jaxgrad: error: ...``) with a non-zero exit code;
set ``JAXGRAD_DEBUG=1`` to see the traceback. Exit codes: 0 success; 1 a requested answer
does not exist (``calibrations invert`` with no root in range); 2 bad input or an error;
3 (``EXIT_UNCONVERGED``) ``fit``/``population`` finished and wrote everything but the fit
failed a health check (R-hat, ESS, divergences, tree depth; listed on stderr and in the
result) — ``--allow-unconverged`` makes that 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path


class CLIError(Exception):
    """An error whose message is shown to the user as is."""


# ----------------------------------------------------------------------------- demo
def run_demo(out_dir: str | Path = "jaxgrad_demo_output", quick: bool = False, seed: int = 0) -> dict:
    """What jaxgrad is for, on one mock galaxy: the annulus pipeline's beam-flattened
    gradient, the correction-curve route, and the forward-model NUTS posterior.

    The galaxy: z = 5, R_e = 2 kpc, ∇Z = -0.10 dex/kpc, 2R_e/beam = 1.2 (Paper A's
    least-resolved galaxies), [OII], Hβ, [OIII] line maps at S/N 50 — made by the
    Paper A suite's generator (``mocks.SuiteSpec(mode="maps")``) with Sanders+25 R3 and O2,
    both verified (no unverified coefficient is used). Writes ``demo.png``,
    ``line_maps.png`` and ``summary.json``; returns the summary.
    """
    import time

    import jax
    import numpy as np

    from jaxgrad import data as _data
    from jaxgrad import mocks, plotting
    from jaxgrad.inference import GalaxyData, fit_galaxy
    from jaxgrad.inference.simulate import INFERRED
    from jaxgrad.mocks.measure import measure_batch

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 32 if quick else 48
    suite = mocks.SuiteSpec(mode="maps", ny=n, nx=n, grad_values=(-0.10,), two_re_over_beam=(1.2, 1.2),
                            snr=(50.0, 50.0))
    batch = mocks.generate(suite, seed, np.arange(1))
    meas = measure_batch(batch, suite, annuli=True)
    p = jax.tree_util.tree_map(lambda v: float(np.asarray(v)[0]), batch.params)
    x = float(batch.two_re_over_beam[0])
    g_pipe, e_pipe = float(meas["grad_meas"][0]), float(meas["grad_err"][0])
    curves = mocks.load_curves_csv(_data.path("mock_curves_paper_a"))
    g_corr, fac = mocks.correct(np.array([g_pipe]), np.array([x]), curves=curves)
    g_corr, fac = float(g_corr[0]), float(fac[0])
    # the forward model: PSF inside the likelihood, Z0, ∇Z, flux, R_e, n sampled
    spec = mocks.model_spec(suite)
    known = {f: getattr(p, f) for f in p._fields if f not in INFERRED}
    gd = GalaxyData(np.asarray(batch.data[0]), np.full(batch.data.shape[1:], float(batch.sigma[0])), None, spec,
                    known=known, kind="maps", name="demo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_galaxy(gd, num_warmup=150 if quick else 300, num_samples=150 if quick else 500, num_chains=2,
                         seed=seed)
    draws = np.asarray(fit.samples["grad_z"]).ravel()
    lo68, hi68 = np.percentile(draws, [16, 84])
    lo95, hi95 = np.percentile(draws, [2.5, 97.5])
    d = fit.diagnostics
    fig = plotting.plot_demo(meas, 0, p, x, (g_pipe, e_pipe), (g_corr, fac), fit, draws, suite)
    fig.savefig(out / "demo.png")
    fig = plotting.plot_line_maps(np.asarray(batch.data[0]), suite.lines, pixel_scale=suite.pixel_scale,
                                  title=f"mock z = 5 galaxy, 2R_e/beam = {x:.1f}, S/N 50 (noisy maps)")
    fig.savefig(out / "line_maps.png")
    summary = {
        "truth": {"grad_z": p.grad_z, "logoh0": p.logoh0, "r_e_kpc": p.r_e, "psf_fwhm_arcsec": p.psf_fwhm, "z": p.z},
        "two_re_over_beam": x,
        "lines": list(suite.lines), "calibration": suite.calibration, "diagnostics": list(suite.diagnostics()),
        "pipeline": {"grad_z": g_pipe, "grad_err": e_pipe, "annuli_used": int(meas["n_bins"][0]),
                     "method": "Paper A annuli, Method I posterior mode per annulus, WLS line"},
        "correction_curve": {"grad_z": g_corr, "factor": fac,
                             "curves": "jaxgrad's 1500-mock Paper A suite (cubes), mock_curves_paper_a.csv"},
        "forward_model": {"grad_z_median": float(np.median(draws)), "grad_z_68": [float(lo68), float(hi68)],
                          "grad_z_95": [float(lo95), float(hi95)], "divergences": int(d["divergences"]),
                          "r_hat_max": float(max(d["r_hat"].values())),
                          "ess_bulk_min": float(min(d["ess_bulk"].values()))},
        "wall_s": time.perf_counter() - t0,
        "files": ["demo.png", "line_maps.png", "summary.json"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _cmd_demo(args) -> int:
    s = run_demo(args.out, quick=args.quick, seed=args.seed)
    t, fm = s["truth"], s["forward_model"]
    print(f"jaxgrad demo: one mock galaxy at z = 5, 2R_e/beam = {s['two_re_over_beam']:.1f} "
          f"({s['calibration']} {' + '.join(s['diagnostics'])}, verified; lines {', '.join(s['lines'])})")
    print(f"  injected gradient                      {t['grad_z']:+.3f} dex/kpc")
    print(f"  annulus pipeline (beam-flattened)      {s['pipeline']['grad_z']:+.3f} ± {s['pipeline']['grad_err']:.3f}")
    print(f"  pipeline / correction curve (x{s['correction_curve']['factor']:.2f})   "
          f"{s['correction_curve']['grad_z']:+.3f}")
    print(f"  forward model, NUTS (PSF in the model) {fm['grad_z_median']:+.3f}  "
          f"68 %: [{fm['grad_z_68'][0]:+.3f}, {fm['grad_z_68'][1]:+.3f}]  "
          f"(R-hat {fm['r_hat_max']:.3f}, bulk ESS >= {fm['ess_bulk_min']:.0f}, divergences {fm['divergences']})")
    print(f"  {s['wall_s']:.0f} s; wrote {', '.join(s['files'])} to {args.out}/")
    return 0


# --------------------------------------------------------------------- calibrations
def _cmd_calibrations(args) -> int:
    import numpy as np

    import jaxgrad as jg

    if args.action == "list":
        for name in jg.calibrations.available():
            cal = jg.calibrations.get(name)
            print(f"{name}: {cal.reference}")
            for d in cal.diagnostics:
                flag = "" if cal.verified(d) else "  [UNVERIFIED]"
                print(f"    {d:11s} valid {cal.valid_range(d)}  scatter {cal.diagnostic(d).scatter}{flag}")
            if cal.missing:
                print(f"    (coefficients not available: {', '.join(cal.missing)})")
        return 0
    cal = jg.calibrations.get(args.name)
    lo, hi = cal.search_range(args.diagnostic)
    if args.action == "eval":
        if args.logu is not None:
            jg.calibrations.ionisation.check_logu(args.logu, "--logu")
        vals = np.asarray(cal.predict(args.diagnostic, np.asarray(args.values, float), args.logu))
        outside = 0
        for z, v in zip(args.values, np.atleast_1d(vals), strict=True):
            flag = "" if lo <= z <= hi else f"  [EXTRAPOLATED: outside the valid range {lo}-{hi}]"
            outside += bool(flag)
            print(f"12+log(O/H) = {z:.4f}  ->  log {args.diagnostic} = {float(v):+.4f}{flag}")
        if outside:
            print(f"jaxgrad: warning: {outside} value(s) outside {cal.name} {args.diagnostic}'s valid range "
                  f"[{lo}, {hi}]: the calibration is not valid there", file=sys.stderr)
        return 0
    missing = 0
    for v in args.values:
        roots = np.atleast_1d(cal.invert(args.diagnostic, v, branch=args.branch))
        roots = roots[np.isfinite(roots)]
        if roots.size == 0:
            missing += 1
            where = f" on the {args.branch} branch" if args.branch else ""
            print(f"log {args.diagnostic} = {v:+.4f}  ->  no 12+log(O/H){where} inside the valid range [{lo}, {hi}]")
        else:
            print(f"log {args.diagnostic} = {v:+.4f}  ->  12+log(O/H) = {np.round(roots, 4)}")
    if missing:
        print(f"jaxgrad: error: {missing} ratio(s) have no solution inside {cal.name} {args.diagnostic}'s "
              "valid range", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------ fit
EXIT_UNCONVERGED = 3


def _health_exit(problems, args) -> int:
    """Announce a fit's failed health checks; the exit code they give (0 if allowed)."""
    if not problems:
        return 0
    print("jaxgrad: warning: the fit is NOT converged: " + "; ".join(problems)
          + " (results were written; run longer chains, or pass --allow-unconverged)", file=sys.stderr)
    return 0 if args.allow_unconverged else EXIT_UNCONVERGED


def _cmd_fit(args) -> int:
    from jaxgrad.fitconfig import run_fit

    res = run_fit(args.config, overwrite=args.overwrite)
    if "n_galaxies" not in res:
        if "grad_z" in res:
            lo, hi = res["grad_z_68"]
            gz = f"∇Z = {res['grad_z']:+.4f} dex/kpc (68%: {lo:+.4f} … {hi:+.4f})"
        else:
            gz = f"∇Z fixed at {res['grad_z_fixed']:+.4f} dex/kpc"
        z0 = f"Z0 = {res['logoh0']:.3f}" if "logoh0" in res else f"Z0 fixed at {res['logoh0_fixed']:.3f}"
        print(f"{res['name']}: {gz}, {z0}, divergences {res['divergences']}")
        if res.get("defaults_used"):
            print("  held at jaxgrad's defaults (not sampled, not known, not fixed; set them in [priors], "
                  "[fixed] or known): " + ", ".join(f"{k} = {v:g}" for k, v in res["defaults_used"].items()))
    else:
        print(f"population of {res['n_galaxies']} galaxies fitted")
    print(f"wrote {', '.join(res['files'])} to {res['out']}/")
    return _health_exit(res.get("problems"), args)


# ---------------------------------------------------------------------------- mocks
def _cmd_mocks(args) -> int:
    import numpy as np

    from jaxgrad import mocks

    if args.action == "run":
        multi = [args.coordinator, args.num_processes, args.process_id]
        if any(v is not None for v in multi) and not all(v is not None for v in multi):
            raise CLIError("multi-host runs need --coordinator HOST:PORT, --num-processes H and --process-id r "
                           "together (without --coordinator every host would compute every chunk)")
        if args.coordinator:
            if not (args.num_processes >= 1 and 0 <= args.process_id < args.num_processes):
                raise CLIError(f"--process-id must be in [0, {args.num_processes - 1}], got {args.process_id}")
            import jax

            jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                       process_id=args.process_id, initialization_timeout=args.timeout)
        spec = mocks.resolve(args.spec)
        res = mocks.run_suite(spec, args.n, args.out, seed=args.seed, chunk_size=args.chunk_size,
                              progress=not args.no_progress)
        print(f"mock suite in {args.out}: {res['chunks_computed']} chunks computed, "
              f"{res['chunks_skipped']} already done, {res['wall_s']:.1f} s")
        return 0
    results = mocks.load_results(args.dir)
    out = Path(args.dir)
    toml = out / "suite.toml"
    x_range = mocks.SuiteSpec.from_toml(toml).x_range() if toml.is_file() else None  # the suite's bins
    curves = mocks.fit_curves(results, measured=args.column, x_range=x_range)
    csv_path = mocks.write_curves_csv(curves, Path(args.csv) if args.csv else out / "mock_curves.csv")
    fig = mocks.plot_curves(results, curves, measured=args.column,
                            title=f"beam smearing: {len(results['index'])} mocks")
    png = Path(args.png) if args.png else out / "mock_curves.png"
    fig.savefig(png)
    print(f"{len(results['index'])} mocks; binned curves per |∇Z| written to {csv_path} and {png}")
    for a, c in sorted(curves.items()):
        print(f"  |∇Z| = {a:.2f} ({c.n_total} mocks), median ratio ± bootstrap per bin of 2R_e/beam:")
        for xc, n, med, err in zip(c.x_center, c.n, c.median, c.median_err, strict=True):
            if np.isfinite(med):
                print(f"    x = {xc:5.2f}: {med:.3f} ± {err:.3f}  (n = {n})")
    return 0


# ----------------------------------------------------------------------- population
def _cmd_population(args) -> int:
    try:
        from jaxgrad.inference.measurement import population_command
    except ImportError as e:  # pragma: no cover - wiring guard
        raise CLIError(f"the population model is not available: {e}") from e
    if not Path(args.table).is_file():
        raise CLIError(f"table {args.table!r} does not exist")
    res = population_command(args.table, args.column, err_plus=args.err_plus, err_minus=args.err_minus,
                             covariates=tuple(args.covariate or ()), json_out=args.json, seed=args.seed,
                             quick=args.quick, dropna=args.dropna)
    print(f"population of {res['n']} values of {args.column}:")
    print(f"  mean    {res['mean']:+.4f} ± {res['mean_sd']:.4f}")
    print(f"  scatter {res['scatter']:.4f} ± {res['scatter_sd']:.4f}")
    print(f"  median  {res['median']:+.4f} ± {res['median_err']:.4f} (bootstrap)")
    for k, v in (res.get("slopes") or {}).items():
        print(f"  slope vs {k}: {v['slope']:+.4f} ± {v['slope_sd']:.4f}")
    if args.json:
        print(f"  wrote {args.json}")
    return _health_exit(res.get("problems"), args)


# ------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="jaxgrad", description="Metallicity gradients with JAX.")
    sub = ap.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="render and measure a mock galaxy (the README's main job)")
    d.add_argument("--out", default="jaxgrad_demo_output", help="output folder")
    d.add_argument("--quick", action="store_true", help="smaller grid")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)

    c = sub.add_parser("calibrations", help="list, evaluate or invert strong-line calibrations")
    csub = c.add_subparsers(dest="action", required=True)
    csub.add_parser("list")
    ce = csub.add_parser("eval")
    ce.add_argument("name")
    ce.add_argument("diagnostic")
    ce.add_argument("values", type=float, nargs="+", help="12+log(O/H) values")
    ce.add_argument("--logu", type=float, default=None)
    ci = csub.add_parser("invert")
    ci.add_argument("name")
    ci.add_argument("diagnostic")
    ci.add_argument("values", type=float, nargs="+", help="log10 ratios")
    ci.add_argument("--branch", choices=("lower", "upper"), default=None)
    c.set_defaults(func=_cmd_calibrations)

    f = sub.add_parser("fit", help="forward-model fit of one galaxy or a population (CONFIG.toml)")
    f.add_argument("config", help="TOML configuration (see jaxgrad.fitconfig for every key)")
    f.add_argument("--allow-unconverged", action="store_true",
                   help="exit 0 even when the fit fails a health check (R-hat, ESS, divergences)")
    f.add_argument("--overwrite", action="store_true", help="replace the results of an earlier fit in [output] dir")
    f.set_defaults(func=_cmd_fit)

    m = sub.add_parser("mocks", help="beam-smearing mock suites: run and fit correction curves")
    msub = m.add_subparsers(dest="action", required=True)
    mr = msub.add_parser("run", help="generate + measure a suite (resumable)")
    mr.add_argument("spec", help="suite spec TOML, or 'paper_a' (default suite) or 'maps'")
    mr.add_argument("--n", type=int, default=1500)
    mr.add_argument("--out", required=True)
    mr.add_argument("--seed", type=int, default=0)
    mr.add_argument("--chunk-size", type=int, default=100)
    mr.add_argument("--no-progress", action="store_true")
    mr.add_argument("--coordinator", default=None, help="multi-host: HOST:PORT of process 0")
    mr.add_argument("--num-processes", type=int, default=None)
    mr.add_argument("--process-id", type=int, default=None)
    mr.add_argument("--timeout", type=int, default=300, help="seconds to wait for the coordinator")
    mc = msub.add_parser("curves", help="fit and plot the correction curves of a finished suite")
    mc.add_argument("dir")
    mc.add_argument("--column", default="grad_meas", help="measured-gradient column")
    mc.add_argument("--csv", default=None)
    mc.add_argument("--png", default=None)
    m.set_defaults(func=_cmd_mocks)

    p = sub.add_parser("population", help="hierarchical population fit of a table of gradients")
    p.add_argument("table")
    p.add_argument("--column", required=True)
    p.add_argument("--err-plus", default=None)
    p.add_argument("--err-minus", default=None)
    p.add_argument("--covariate", action="append")
    p.add_argument("--json", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="shorter chains (300 warm-up + 500 draws)")
    p.add_argument("--dropna", action="store_true", help="drop rows with empty cells instead of failing")
    p.add_argument("--allow-unconverged", action="store_true",
                   help="exit 0 even when the fit fails a health check (R-hat, ESS, divergences)")
    p.set_defaults(func=_cmd_population)
    return ap


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if os.environ.get("JAXGRAD_DEBUG"):
            raise
        print("jaxgrad: interrupted; run the same command again to resume (finished chunks and "
              "checkpointed chains are kept)", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, RuntimeError, KeyError, TypeError) as e:
        if os.environ.get("JAXGRAD_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and getattr(e, "filename", None):
            msg = f"{e.strerror or msg}: {e.filename}"
        print(f"jaxgrad: error: {msg}", file=sys.stderr)
        return 2


def console() -> None:
    """The ``jaxgrad`` executable: :func:`main` with JAX's persistent compilation cache on
    (see :mod:`jaxgrad._compile_cache`; ``JAXGRAD_CACHE_DIR=off`` turns it off)."""
    from jaxgrad import _compile_cache

    _compile_cache.enable()
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console()
