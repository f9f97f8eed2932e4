"""Bias of the likelihood's score at the true parameters, from its calibration-scatter variance.

A well-specified likelihood has zero expected score at the truth: E[∂ log L/∂θ] = 0.
This script measures the per-galaxy score at the true (Z0, ∇Z) over n mock galaxies (the
hierarchy benchmark's population: ``inference._population_mocks``, whose scatter follows the
likelihood's linearised Gaussian law, S/N 30 and 5). It compares two variances:

* **used**: v = σ² + (f_ref s ln10)², with f_ref the first-pass model without the scatter
  term that :func:`jaxgrad.inference.fit_population` builds: cross-fitted since this
  script found the bias (each checkerboard half of the pixels takes the model fitted to
  the other half); before, one fit to all pixels;
* **oracle**: the same with f_ref = the true model, which is independent of the noise.

The mean score over galaxies divided by the score's variance (the Fisher information)
indicates the bias each galaxy's estimate inherits. With one fit to all pixels it was
~0.1 σ per galaxy (z = −5.5 for Z0 at S/N 30 over 2000 mocks), invisible in one fit but
4 σ for a population mean at 10⁴ galaxies (``inference_gpu.json`` → ``target_10k``);
cross-fitted it matches the oracle (the JSON keeps both runs).

    python benchmarks/score_bias.py [--n 3000]

Writes ``benchmarks/results/score_bias.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _harness as H  # noqa: E402


def measure(n: int) -> dict:
    import jax
    import jax.numpy as jnp
    from inference import (  # the hierarchy's mocks
        _population_mocks,
        _population_params,
        _population_snr,
    )

    from jaxgrad.inference.likelihood import add_scatter, predict
    from jaxgrad.inference.population import _loglik, galaxy_maps, prepare_population

    gals, grads, z0 = _population_mocks(n)
    _, pdata, cfg, _, _ = prepare_population(gals, fixed={"sersic_n": 1.0})
    gm = galaxy_maps(pdata, cfg, jax.random.key(0))  # folds the scatter in as fit_population does
    truth = jax.tree_util.tree_map(lambda a: jnp.asarray(a, pdata.obs.data.dtype), _population_params(grads, z0))
    true_model = jax.vmap(lambda p: predict(p, cfg.spec, cfg.kind))(truth)
    variants = {"used (first-pass reference model)": gm.obs,
                "oracle (true model)": jax.vmap(lambda o, r: add_scatter(o, cfg.sigma_ln, r))(pdata.obs, true_model)}
    snr = _population_snr(n)
    rows = []
    for name, obs in variants.items():
        g = jax.grad(lambda p, o=obs: jnp.sum(_loglik(cfg, p, o)))(truth)
        for field, label in (("logoh0", "Z0"), ("grad_z", "grad")):
            s = np.asarray(getattr(g, field), float)
            for level in (30.0, 5.0):
                v = s[snr == level]
                mean, se, sd = float(v.mean()), float(v.std() / np.sqrt(v.size)), float(v.std())
                rows.append({"variance": name, "param": label, "snr": level, "n": int(v.size),
                             "mean_score": round(mean, 3), "se": round(se, 3), "z": round(mean / se, 1),
                             "score_sd": round(sd, 2), "bias_per_galaxy": mean / sd**2,
                             "bias_in_sigma": round(mean / sd, 3)})
    return {"rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="mock galaxies (a third at S/N 5)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = {"benchmark": "score_bias", "machine": H.machine(), "versions": H.versions("numpyro"),
           "n_galaxies": args.n, **measure(args.n)}
    out["wall_s"] = time.perf_counter() - t0
    rows = [{**r, "bias_per_galaxy": f"{r['bias_per_galaxy']:+.4f}"} for r in out["rows"]]
    print(H.table(rows, ["variance", "param", "snr", "n", "mean_score", "se", "z", "score_sd",
                         "bias_per_galaxy", "bias_in_sigma"]))
    print(f"wrote {H.write('score_bias.json', out)}")


if __name__ == "__main__":
    main()
