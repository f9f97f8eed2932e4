"""Science report of a finished mock suite: curves per |∇Z|, per sign, variants.

    python benchmarks/mock_suite_report.py SUITE_DIR [--wall-s SECONDS]

Writes benchmarks/results/mock_curves.csv (abs_grad, two_re_over_beam, ratio_fit,
ratio_median on 2R_e/beam = 0.6 … 6.4), mock_curves.png (Paper A Fig. 8 style) and
mock_suite.json (spec, N, seed, wall time, machine, versions, and the numbers that test
Paper A's two statements: sign independence and corrections within ~20 %).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _harness as H  # noqa: E402


def _at(curve, xs):
    return [round(float(v), 4) for v in curve.ratio(xs)]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("suite_dir")
    ap.add_argument("--wall-s", type=float, default=None, help="wall time of the run (from its log)")
    args = ap.parse_args(argv)

    from jaxgrad import mocks

    out = Path(args.suite_dir)
    res = mocks.load_results(out)
    manifest = json.loads((out / "manifest.json").read_text())
    spec = mocks.SuiteSpec.from_toml(out / "suite.toml")
    n = len(res["index"])
    curves = mocks.fit_curves(res, "grad_meas")
    mocks.write_curves_csv(curves, H.RESULTS / "mock_curves.csv")
    fig = mocks.plot_curves(res, curves, title=f"jaxgrad beam-smearing suite: {n} mocks (Paper A spec), Method I")
    fig.savefig(H.RESULTS / "mock_curves.png", dpi=110)

    xs = np.array([1.0, 1.5, 2.5, 4.5, 6.0])
    g = res["grad_true"]
    report = {"x_points_two_re_over_beam": xs.tolist(), "curves": {}}
    variants = {"paper_a_method1": "grad_meas", "without_innermost_annulus": "grad_meas_noinner",
                "annuli_capped_at_3re": "grad_meas_cap3re", "method1_posterior_mode": "grad_meas_mode",
                "method2": "grad2_meas"}
    for label, col in variants.items():
        if col not in res:
            continue
        cv = mocks.fit_curves(res, col)
        report["curves"][label] = {f"{a:.2f}": {"ratio_fit": _at(c, xs), "n": c.n} for a, c in cv.items()}
    # per sign, and spread
    per_sign = {}
    for a, c in curves.items():
        entry = {"pooled_median": [None if not np.isfinite(v) else round(float(v), 4) for v in c.median],
                 "p16": [None if not np.isfinite(v) else round(float(v), 4) for v in c.p16],
                 "p84": [None if not np.isfinite(v) else round(float(v), 4) for v in c.p84],
                 "bin_centers": [round(float(v), 3) for v in c.bin_centers]}
        for s, d in c.per_sign.items():
            entry[s] = {"ratio_fit": _at(type("C", (), {"ratio": lambda self, x, d=d: np.polyval(
                d["coeffs"], np.clip(x, *c.x_range))})(), xs), "n": d["n"]}
        per_sign[f"{a:.2f}"] = entry
    report["per_sign"] = per_sign
    # statements of Paper A
    ratio = mocks.curves.ratio_column(res, "grad_meas")
    x = res["two_re_over_beam"]
    sel = (x >= 1.2) & (x <= 4.5) & np.isfinite(ratio)
    pos, neg = sel & (g > 0), sel & (g < 0)
    report["sign_test"] = {
        "range_two_re_over_beam": [1.2, 4.5],
        "median_ratio_positive": float(np.median(ratio[pos])), "median_ratio_negative": float(np.median(ratio[neg])),
        "n_positive": int(pos.sum()), "n_negative": int(neg.sum()),
    }
    corr = 1.0 / np.array([c.ratio(2.5) for c in curves.values()])
    report["correction_factor_at_median_two_re_over_beam_2.5"] = {f"{a:.2f}": round(float(1 / c.ratio(2.5)), 3)
                                                                   for a, c in curves.items()}
    report["corrections_within_20_percent_at_2.5"] = bool(np.all(np.abs(corr - 1) <= 0.2))
    innermost = {}
    for a in curves:
        base = curves[a].ratio(xs)
        ni = mocks.fit_curves(res, "grad_meas_noinner")[a].ratio(xs)
        cap = mocks.fit_curves(res, "grad_meas_cap3re")[a].ratio(xs)
        innermost[f"{a:.2f}"] = {"delta_without_innermost": [round(float(v), 4) for v in ni - base],
                                 "delta_capped_3re": [round(float(v), 4) for v in cap - base]}
    report["annulus_choices"] = innermost
    report["measurable_fraction"] = float(np.mean(res["measurable"]))
    payload = {"benchmark": "mock_suite", "spec": spec.to_dict(), "n": n, "seed": manifest["seed"],
               "chunk_size": manifest["chunk_size"], "wall_s": args.wall_s, "machine": H.machine(),
               "versions": H.versions("h5py"), "report": report}
    path = H.write("mock_suite.json", payload)
    print(json.dumps(report["sign_test"], indent=1))
    print("correction factors at 2R_e/beam = 2.5:", report["correction_factor_at_median_two_re_over_beam_2.5"])
    for label, cv in report["curves"].items():
        print(label, {k: v["ratio_fit"] for k, v in cv.items()})
    print(f"wrote {path}, mock_curves.csv, mock_curves.png")


if __name__ == "__main__":
    main()
