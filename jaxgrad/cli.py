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
set ``JAXGRAD_DEBUG=1`` to see the traceback.
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
    """Render a mock z = 5 galaxy, measure its ratio profile, write PNGs and a summary.

    Returns the summary dict (also written as ``summary.json``).
    """
    import jax
    import numpy as np

    import jaxgrad as jg
    from jaxgrad import plotting
    from jaxgrad.forward import model as fm
    from jaxgrad.instrument import noise

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
    n = 32 if quick else 48
    lines = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")
    spec = jg.ModelSpec(lines=lines, calibration="sanders24", ny=n, nx=n, pixel_scale=0.05)
    truth = dict(logoh0=7.75, grad_z=-0.05, av=0.0, r_e=2.0, inc=20.0, z=5.0, psf_fwhm=0.3, flux_hb=100.0)
    p = jg.make_params(**truth)
    maps = np.asarray(jg.line_maps(p, spec))
    sharp = np.asarray(jg.line_maps(p._replace(psf_fwhm=jax.numpy.float32(1e-3)), spec))
    sigma = float(noise.noise_sigma_for_snr(maps[3], 100.0, maps[3] > 0.3 * maps[3].max()))
    noisy = np.asarray(noise.add_noise(jax.random.key(seed), maps, sigma))
    r = np.asarray(fm.radius_map(p, spec))
    beam_kpc = truth["psf_fwhm"] * float(jg.physics.cosmology.kpc_per_arcsec(5.0))
    edges = np.arange(0.0, 2.0 * truth["r_e"] + 1e-6, beam_kpc / 2)
    rmid = 0.5 * (edges[1:] + edges[:-1])
    prof_obs = plotting.radial_profile(noisy, r, edges)
    prof_int = plotting.radial_profile(sharp, r, edges)
    li = {ln: i for i, ln in enumerate(lines)}
    ratios = {"R3": ("OIII_5008", "Hb"), "O32": ("OIII_5008", "OII_3727_30"), "Ne3O2": ("NeIII_3870", "OII_3727_30")}
    obs = np.array([np.log10(prof_obs[li[a]] / prof_obs[li[b]]) for a, b in ratios.values()])
    intr = np.array([np.log10(prof_int[li[a]] / prof_int[li[b]]) for a, b in ratios.values()])
    cal = jg.calibrations.get("sanders24")
    # Method II-style: invert O32 (monotonic) per annulus and fit a line
    z_obs = np.array([cal.invert("O32", float(v), branch="lower") for v in obs[1]])
    ok = np.isfinite(z_obs)
    grad_obs, z0_obs = np.polyfit(rmid[ok], z_obs[ok], 1) if ok.sum() > 2 else (np.nan, np.nan)

    fig = plotting.plot_line_maps(maps, lines, pixel_scale=spec.pixel_scale, noisy=noisy,
                                  title="jaxgrad mock: z = 5, R_e = 2 kpc, PSF 0.3″, S/N 100 ([OIII] core)")
    fig.savefig(out / "line_maps.png")
    fig = plotting.plot_ratio_profiles(rmid, obs, intr, list(ratios),
                                       title="annulus ratios: PSF-smeared (points) vs intrinsic")
    fig.savefig(out / "ratio_profiles.png")
    fig = plotting.plot_metallicity_profile(rmid[ok], z_obs[ok], fits={
        "injected": (truth["logoh0"], truth["grad_z"]), "O32 inversion": (z0_obs, grad_obs)})
    fig.savefig(out / "metallicity_profile.png")
    summary = {
        "truth": truth,
        "lines": list(lines),
        "calibration": "sanders24",
        "total_flux_1e-18cgs": {ln: float(maps[i].sum()) for i, ln in enumerate(lines)},
        "two_re_over_beam": 2 * truth["r_e"] / beam_kpc,
        "measured_grad_O32_dex_per_kpc": float(grad_obs),
        "measured_Z0_O32": float(z0_obs),
        "files": ["line_maps.png", "ratio_profiles.png", "metallicity_profile.png", "summary.json"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _cmd_demo(args) -> int:
    s = run_demo(args.out, quick=args.quick, seed=args.seed)
    print("jaxgrad demo: mock galaxy at z = 5 (sanders24; [OII], [NeIII], Hβ, [OIII])")
    print(f"  injected gradient  {s['truth']['grad_z']:+.3f} dex/kpc, Z0 = {s['truth']['logoh0']:.2f}")
    print(f"  2 R_e / beam       {s['two_re_over_beam']:.2f}")
    print(f"  measured (O32 annuli, PSF-smeared) {s['measured_grad_O32_dex_per_kpc']:+.3f} dex/kpc, "
          f"Z0 = {s['measured_Z0_O32']:.2f}")
    print("  line fluxes [1e-18 erg/s/cm²]: " + ", ".join(f"{k} {v:.1f}" for k, v in s["total_flux_1e-18cgs"].items()))
    print(f"  wrote {', '.join(s['files'])} to {args.out}/")
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
    if args.action == "eval":
        vals = np.asarray(cal.predict(args.diagnostic, np.asarray(args.values, float), args.logu))
        for z, v in zip(args.values, np.atleast_1d(vals), strict=True):
            print(f"12+log(O/H) = {z:.4f}  ->  log {args.diagnostic} = {float(v):+.4f}")
        return 0
    for v in args.values:
        roots = cal.invert(args.diagnostic, v, branch=args.branch)
        print(f"log {args.diagnostic} = {v:+.4f}  ->  12+log(O/H) = {np.round(roots, 4)}")
    return 0


# ------------------------------------------------------------------------------ fit
def _cmd_fit(args) -> int:
    from jaxgrad.fitconfig import run_fit

    res = run_fit(args.config)
    if "grad_z" in res:
        lo, hi = res["grad_z_68"]
        print(f"{res['name']}: ∇Z = {res['grad_z']:+.4f} dex/kpc (68%: {lo:+.4f} … {hi:+.4f}), "
              f"Z0 = {res['logoh0']:.3f}, divergences {res['divergences']}")
    else:
        print(f"population of {res['n_galaxies']} galaxies fitted")
    print(f"wrote {', '.join(res['files'])} to {res['out']}/")
    return 0


# ---------------------------------------------------------------------------- mocks
def _cmd_mocks(args) -> int:
    import numpy as np

    from jaxgrad import mocks

    if args.action == "run":
        if args.coordinator:
            import jax

            jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                       process_id=args.process_id)
        spec = mocks.resolve(args.spec)
        res = mocks.run_suite(spec, args.n, args.out, seed=args.seed, chunk_size=args.chunk_size,
                              progress=not args.no_progress)
        print(f"mock suite in {args.out}: {res['chunks_computed']} chunks computed, "
              f"{res['chunks_skipped']} already done, {res['wall_s']:.1f} s")
        return 0
    results = mocks.load_results(args.dir)
    out = Path(args.dir)
    curves = mocks.fit_curves(results, measured=args.column)
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
    return 0


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
    p.set_defaults(func=_cmd_population)
    return ap


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, KeyError, TypeError) as e:
        if os.environ.get("JAXGRAD_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
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
