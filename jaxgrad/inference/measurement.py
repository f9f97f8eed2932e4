"""Hierarchical model of published gradients: the population behind a table of values.

Each object i has a published value v_i (e.g. a gradient in dex/kpc) with asymmetric 1σ
errors (err_plus_i above, err_minus_i below). The model is

    true_i = mu + Σ_k beta_k x_ik + tau · eta_i,   eta_i ~ N(0, 1)     (non-centred)
    v_i | true_i ~ SplitNormal(mode = true_i, err_plus_i below it, err_minus_i above it)

Error model (chosen): a split normal, i.e. the "variable width" Gaussian likelihood of
Barlow (2003). As a function of the true value θ the likelihood is a Gaussian centred on
v with width err_plus for θ > v and err_minus for θ < v, so the published interval
[v − err_minus, v + err_plus] is the 68% likelihood interval. Its normalisation,
sqrt(2/π) / (err_plus + err_minus), does not depend on θ, and the density is continuously
differentiable at θ = v, which NUTS needs. With err_plus = err_minus it is the usual
Gaussian; using the mean of the two errors instead would throw away the asymmetry.

Inference runs in standardised units (values centred on their mean and divided by their
sample standard deviation s; covariates centred and scaled to unit variance), with
weakly informative priors there: mu ~ N(0, 10), tau ~ HalfNormal(1) (the observed spread
includes the measurement errors, so the intrinsic scatter rarely exceeds ~2 s) and
beta_k ~ N(0, 5). Results are converted back to the units of the inputs; ``mean`` is the
population mean at the sample mean of the covariates.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.infer.util import potential_energy

# ``_run_nuts`` is the one-scan NUTS driver shared with jaxgrad.stats (compiled once per
# data shape and reused across fits).
from jaxgrad.stats import _run_nuts, bootstrap_median

__all__ = ["fit_population_table", "population_command"]


class _SplitNormal(dist.Distribution):
    """Split normal with mode ``loc``: width ``scale_below`` for x < loc and
    ``scale_above`` for x > loc; density sqrt(2/π)/(s_b + s_a) · exp(−(x − loc)²/(2 s²))."""

    arg_constraints = {
        "loc": constraints.real,
        "scale_below": constraints.positive,
        "scale_above": constraints.positive,
    }
    support = constraints.real
    reparametrized_params = ["loc", "scale_below", "scale_above"]

    def __init__(self, loc, scale_below, scale_above, *, validate_args=None):
        self.loc, self.scale_below, self.scale_above = jnp.broadcast_arrays(
            loc, scale_below, scale_above
        )
        super().__init__(batch_shape=jnp.shape(self.loc), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        k_side, k_mag = jax.random.split(key)
        below = jax.random.uniform(k_side, shape) < self.scale_below / (
            self.scale_below + self.scale_above
        )
        mag = jnp.abs(jax.random.normal(k_mag, shape))
        return self.loc + jnp.where(below, -self.scale_below, self.scale_above) * mag

    def log_prob(self, value):
        scale = jnp.where(value < self.loc, self.scale_below, self.scale_above)
        z = (value - self.loc) / scale
        return (
            -0.5 * z * z
            + 0.5 * math.log(2.0 / math.pi)
            - jnp.log(self.scale_below + self.scale_above)
        )


def _population_model(values, err_plus, err_minus, covariates):
    """NumPyro model in standardised units.

    Args:
        values: standardised published values (v − centre) / scale, shape [n].
        err_plus, err_minus: upper/lower 1σ errors divided by scale, shape [n], > 0.
        covariates: standardised covariates, shape [n, k] (k may be 0).
    """
    n, k = covariates.shape
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0))
    loc = mu
    if k:
        beta = numpyro.sample("beta", dist.Normal(0.0, 5.0).expand([k]).to_event(1))
        loc = mu + covariates @ beta
    with numpyro.plate("objects", n):
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0))
        # A published value below the true one sits on the plus-error side of it.
        numpyro.sample(
            "obs", _SplitNormal(loc + tau * eta, err_plus, err_minus), obs=values
        )


def _population_potential_gen(values, err_plus, err_minus, covariates):
    """Potential energy of ``_population_model`` over its unconstrained sites (tau as
    log tau), for the given standardised data."""
    args = (values, err_plus, err_minus, covariates)
    return lambda params: potential_energy(_population_model, args, {}, params)


# ------------------------------------------------------------------------- validation


def _row_label(i: int, row_labels: Sequence[str] | None) -> str:
    return f"row {i}" if row_labels is None else f"row {i} ({row_labels[i]})"


def _clean_rows(
    columns: Mapping[str, np.ndarray],
    error_columns: Sequence[str],
    dropna: bool,
    row_labels: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Check equal lengths, NaNs and error signs; drop NaN rows only if ``dropna``.

    Args:
        columns: name -> values, shape [n] each; the names appear in error messages.
        error_columns: names in ``columns`` that hold errors (must be > 0).
        dropna: drop rows with a NaN in any column instead of raising.
        row_labels: optional label of each row for messages (e.g. the object ID).

    Returns:
        (the columns restricted to the kept rows, boolean mask of dropped rows [n]).
    """
    arrays = {}
    for name, col in columns.items():
        arr = np.asarray(col, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
        arrays[name] = arr
    sizes = {name: a.size for name, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"expected columns of equal length, got sizes {sizes}")
    for name, arr in arrays.items():
        inf = np.flatnonzero(np.isinf(arr))
        if inf.size:
            raise ValueError(
                f"{name}: expected finite values, got {arr[inf[0]]} at "
                f"{_row_label(int(inf[0]), row_labels)}"
            )
    nan = np.stack([np.isnan(a) for a in arrays.values()])
    if not dropna and nan.any():
        j, i = (int(v[0]) for v in np.nonzero(nan))
        raise ValueError(
            f"{list(arrays)[j]}: NaN at {_row_label(i, row_labels)}; fix the input or "
            "pass dropna=True to drop incomplete rows"
        )
    dropped = nan.any(axis=0)
    kept = {name: a[~dropped] for name, a in arrays.items()}
    rows = np.flatnonzero(~dropped)
    for name in error_columns:
        bad = np.flatnonzero(kept[name] <= 0)
        if bad.size:
            raise ValueError(
                f"{name}: expected errors > 0, got {kept[name][bad[0]]} at "
                f"{_row_label(int(rows[bad[0]]), row_labels)}"
            )
    return kept, dropped


# ------------------------------------------------------------------------------- fit


def _diagnostics(chains: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """Split R-hat and effective sample size of each array of shape [chains, draws]."""
    from jaxgrad.inference.sampler import ess_bulk, rhat_rank

    r_hat = {k: float(rhat_rank(v)) for k, v in chains.items()}
    ess = {k: float(ess_bulk(v)) for k, v in chains.items()}
    return r_hat, ess


def fit_population_table(
    values,
    err_plus,
    err_minus=None,
    covariates: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    num_warmup: int = 1000,
    num_samples: int = 2000,
    num_chains: int = 1,
    dropna: bool = False,
) -> dict:
    """Population mean and intrinsic scatter of published values with (asymmetric) errors.

    Model and priors: see the module docstring (split-normal measurement errors,
    non-centred Normal population, optional linear covariates). Sampled with NumPyro's NUTS
    kernel (diagonal mass matrix, target acceptance 0.9), every chain started at the
    sample mean with tau = 0.5 s and eta = 0.

    Args:
        values: published values, shape [n], any unit (gradients: dex/kpc).
        err_plus: upper 1σ errors (positive magnitudes), shape [n], unit of ``values``.
        err_minus: lower 1σ errors, shape [n]; ``None`` means symmetric (= err_plus).
        covariates: optional name -> values, shape [n] each, in their own units; each is
            standardised internally and its slope is reported per unit of the covariate.
        seed: seed of the JAX PRNG key (and of the bootstrap median).
        num_warmup: NUTS warm-up iterations per chain.
        num_samples: NUTS draws kept per chain.
        num_chains: independent chains, run one after the other (one compilation).
        dropna: drop rows with a NaN in any input instead of raising a ValueError.

    Returns:
        dict with
        ``mean``, ``mean_sd``: posterior median and std of the population mean (unit of
        ``values``); ``scatter``, ``scatter_sd``: the same for the intrinsic scatter tau;
        ``median``, ``median_err``: sample median and its bootstrap error (1000
        resamples, ``jaxgrad.stats.bootstrap_median``); ``n`` (rows used),
        ``n_dropped``; ``slopes`` (only with covariates): name -> {``slope``,
        ``slope_sd``} in unit of values per unit of covariate; ``divergences``;
        ``r_hat`` and ``ess``: name -> split R-hat / effective sample size of ``mean``,
        ``scatter`` and ``slope_<name>``; ``idata``: ``arviz.InferenceData`` with the
        posterior (``mean``, ``scatter``, ``slopes``, ``value_true`` in the units of the
        inputs; ``mu``, ``tau``, ``beta``, ``eta`` standardised), ``diverging``, the
        pointwise log likelihood and the observed values (not JSON-serialisable).

    Raises:
        ValueError: for a NaN value, error or covariate (unless ``dropna``), a
            non-positive or infinite error, mismatched lengths, fewer than 3 rows, a
            constant covariate, or bad sampler settings; the message names the argument
            (or covariate) and the row.
    """
    covariates = dict(covariates or {})
    cov_keys = {c: f"covariates[{c!r}]" for c in covariates}
    columns = {"values": values, "err_plus": err_plus}
    columns["err_minus"] = err_plus if err_minus is None else err_minus
    columns.update({cov_keys[c]: v for c, v in covariates.items()})
    kept, dropped = _clean_rows(columns, ("err_plus", "err_minus"), dropna)
    n = int(kept["values"].size)
    if n < 3:
        raise ValueError(f"values: expected at least 3 usable rows, got {n}")
    for name, setting, least in (
        ("num_warmup", num_warmup, 1),
        ("num_samples", num_samples, 4),
        ("num_chains", num_chains, 1),
    ):
        if int(setting) != setting or setting < least:
            raise ValueError(f"{name}: expected an integer >= {least}, got {setting!r}")

    v, ep, em = kept["values"], kept["err_plus"], kept["err_minus"]
    centre = float(np.mean(v))
    scale = float(np.std(v, ddof=1))
    if scale == 0.0:
        scale = float(np.mean(0.5 * (ep + em)))
    cov_names = list(covariates)
    raw = np.zeros((n, len(cov_names)))
    for j, c in enumerate(cov_names):
        raw[:, j] = kept[cov_keys[c]]
    cov_sd = raw.std(axis=0)
    for c, sd in zip(cov_names, cov_sd, strict=True):
        if sd == 0.0:
            raise ValueError(f"{cov_keys[c]}: expected some spread, got a constant")
    xs = (raw - raw.mean(axis=0)) / np.where(cov_sd > 0, cov_sd, 1.0)

    args = tuple(
        jnp.asarray(a) for a in ((v - centre) / scale, ep / scale, em / scale, xs)
    )
    zero = jnp.zeros((), dtype=args[0].dtype)
    init = {"mu": zero, "tau": zero + jnp.log(0.5), "eta": jnp.zeros_like(args[0])}
    if cov_names:
        init["beta"] = jnp.zeros(len(cov_names), dtype=args[0].dtype)
    runs = [
        _run_nuts(
            key,
            init,
            args,
            potential_gen=_population_potential_gen,
            num_warmup=int(num_warmup),
            num_samples=int(num_samples),
            dense_mass=False,
        )
        for key in jax.random.split(jax.random.key(seed), int(num_chains))
    ]  # chains run one after the other and share one compiled sampler
    std = {
        k: np.stack([np.asarray(r[0][k], dtype=np.float64) for r in runs]) for k in init
    }  # [chains, draws, ...], standardised units
    std["tau"] = np.exp(std["tau"])  # positive sites are sampled as their log
    diverging = np.stack([np.asarray(r[1]) for r in runs])

    # Back to the units of the inputs.
    beta = std.get("beta", np.zeros(std["mu"].shape + (0,)))
    post = {
        "mean": centre + scale * std["mu"],
        "scatter": scale * std["tau"],
        "slopes": beta * scale / cov_sd,
        "value_true": centre
        + scale
        * (std["mu"][..., None] + beta @ xs.T + std["tau"][..., None] * std["eta"]),
    }
    loglik = np.asarray(_SplitNormal(post["value_true"], ep, em).log_prob(v))
    med, med_err = bootstrap_median(v, n=1000, seed=seed)
    diag = {"mean": post["mean"], "scatter": post["scatter"]}
    diag |= {f"slope_{c}": post["slopes"][..., j] for j, c in enumerate(cov_names)}
    r_hat, ess = _diagnostics(diag)

    out = {
        "mean": float(np.median(post["mean"])),
        "mean_sd": float(np.std(post["mean"])),
        "scatter": float(np.median(post["scatter"])),
        "scatter_sd": float(np.std(post["scatter"])),
        "median": med,
        "median_err": med_err,
        "n": n,
        "n_dropped": int(dropped.sum()),
    }
    if cov_names:
        out["slopes"] = {
            c: {
                "slope": float(np.median(post["slopes"][..., j])),
                "slope_sd": float(np.std(post["slopes"][..., j])),
            }
            for j, c in enumerate(cov_names)
        }
    out["divergences"] = int(diverging.sum())
    out["r_hat"] = r_hat
    out["ess"] = ess
    from jaxgrad.inference.sampler import ConvergenceWarning, health_problems

    n_ch = int(np.shape(post["mean"])[0])
    out["problems"] = health_problems({
        "r_hat_max": max(r_hat.values()), "ess_bulk_min": min(ess.values()), "num_chains": n_ch,
        "divergences": out["divergences"], "divergent_fraction": out["divergences"] / max(diverging.size, 1)})
    if out["problems"]:
        warnings.warn("the population fit is not trustworthy yet: " + "; ".join(out["problems"]),
                      ConvergenceWarning, stacklevel=2)
    posterior = {**post, "mu": std["mu"], "tau": std["tau"], "eta": std["eta"]}
    if cov_names:
        posterior["beta"] = beta
    else:
        del posterior["slopes"]
    out["idata"] = az.from_dict(
        posterior=posterior,
        sample_stats={"diverging": diverging},
        log_likelihood={"obs": loglik},
        observed_data={"obs": v},
        coords={"object": np.arange(n), "covariate": cov_names},
        dims={
            "slopes": ["covariate"],
            "beta": ["covariate"],
            "value_true": ["object"],
            "eta": ["object"],
            "obs": ["object"],
        },
    )
    return out


# --------------------------------------------------------------------------- command


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file, every cell a string (IDs keep leading zeros)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise ValueError(f"table: {path} is empty, expected a CSV header")
        return list(reader.fieldnames), list(reader)


def _numeric_column(rows, column: str, labels: Sequence[str]) -> np.ndarray:
    """Column as float64; empty cells (and 'nan') become NaN."""
    out = np.empty(len(rows))
    for i, row in enumerate(rows):
        cell = (row[column] or "").strip()
        try:
            out[i] = float(cell) if cell else np.nan
        except ValueError:
            raise ValueError(
                f"{column}: expected a number, got {cell!r} at row {i} ({labels[i]})"
            ) from None
    return out


def _error_columns(column: str, header: Sequence[str]) -> tuple[str, str]:
    """Error columns by the convention of jaxgrad/data/README.md: ``<p>_err_hi`` (plus)
    and ``<p>_err_lo`` (minus) for the longest prefix ``<p>`` of ``column``."""
    candidates = [
        h[: -len("_err_hi")]
        for h in header
        if h.endswith("_err_hi")
        and column.startswith(h[: -len("_err_hi")])
        and f"{h[: -len('_err_hi')]}_err_lo" in header
    ]
    if not candidates:
        raise ValueError(
            f"err_plus: no '<prefix>_err_hi'/'<prefix>_err_lo' columns found for "
            f"{column!r}; name the error columns explicitly (err_plus=, err_minus=)"
        )
    prefix = max(candidates, key=len)
    return f"{prefix}_err_hi", f"{prefix}_err_lo"


def _json_safe(obj):
    """NumPy scalars -> Python numbers, NaN/inf -> None, recursively."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def population_command(
    table,
    column: str,
    err_plus: str | None = None,
    err_minus: str | None = None,
    covariates: Sequence[str] = (),
    json_out=None,
    seed: int = 0,
    quick: bool = False,
    dropna: bool = False,
) -> dict:
    """Fit the population model to one column of a CSV table and write a JSON summary.

    Backs ``jaxgrad population TABLE.csv --column COL [--err-plus COL --err-minus COL]
    [--covariate COL ...] --json OUT.json``.

    Args:
        table: path of a CSV file with a header row. Cells are read as strings (IDs keep
            their leading zeros); the first column labels rows in error messages.
        column: column holding the values (e.g. ``grad_method1_dex_per_kpc``).
        err_plus: column of the upper errors. ``None``: use ``<prefix>_err_hi`` and
            ``<prefix>_err_lo`` for the longest prefix of ``column`` that has both (the
            convention of the CRISTAL tables, data/README.md).
        err_minus: column of the lower errors; ``None`` with ``err_plus`` given means
            symmetric errors.
        covariates: numeric columns to regress the values on.
        json_out: path of the JSON file to write, or ``None`` to write nothing.
        seed: seed of the sampler and of the bootstrap.
        quick: 300 warm-up + 500 draws instead of 1000 + 2000 (smoke tests).
        dropna: drop rows with an empty cell in any used column (count reported).

    Returns:
        The JSON-serialisable summary that was written: the keys of
        ``fit_population_table`` except ``idata``, plus ``table``, ``column``,
        ``err_plus``, ``err_minus``, ``covariates``, ``dropped_rows`` (labels of dropped
        rows), ``seed``, ``num_warmup``, ``num_samples`` and ``error_model``.

    Raises:
        ValueError: for an unknown column (the message lists the columns that exist),
            a non-numeric cell, or any input rejected by ``fit_population_table``.
    """
    path = Path(table)
    if json_out is not None:  # checked before the fit: a finished result is never lost
        from jaxgrad.io.paths import check_writable_file

        check_writable_file(json_out, "--json")
    header, rows = _read_csv(path)
    if err_plus is None and err_minus is not None:
        raise ValueError("err_plus: required when err_minus is given")
    used = {"column": column, "err_plus": err_plus, "err_minus": err_minus}
    used |= {f"covariates[{c!r}]": c for c in covariates}
    for role, name in used.items():
        if name is not None and name not in header:
            raise ValueError(
                f"{role}: no column {name!r} in {path}; columns are: {', '.join(header)}"
            )
    if err_plus is None:
        err_plus, err_minus = _error_columns(column, header)
    labels = [f"{header[0]}={row[header[0]]}" for row in rows]
    names = [column, err_plus] + ([err_minus] if err_minus else []) + list(covariates)
    data = {name: _numeric_column(rows, name, labels) for name in dict.fromkeys(names)}
    errs = [err_plus] + ([err_minus] if err_minus else [])
    kept, dropped = _clean_rows(data, errs, dropna, row_labels=labels)

    num_warmup, num_samples = (300, 500) if quick else (1000, 2000)
    fit = fit_population_table(
        kept[column],
        kept[err_plus],
        kept[err_minus] if err_minus else None,
        covariates={c: kept[c] for c in covariates} or None,
        seed=seed,
        num_warmup=num_warmup,
        num_samples=num_samples,
    )
    fit.pop("idata")
    fit["n_dropped"] = int(dropped.sum())
    result = {
        **fit,
        "table": str(path),
        "column": column,
        "err_plus": err_plus,
        "err_minus": err_minus or err_plus,
        "covariates": list(covariates),
        "dropped_rows": [lab for lab, d in zip(labels, dropped, strict=True) if d],
        "seed": seed,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "error_model": "split_normal",
    }
    result = _json_safe(result)
    if json_out is not None:
        out_path = Path(json_out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        from jaxgrad.io.paths import atomic_write_text

        atomic_write_text(out_path, json.dumps(result, indent=2) + "\n")
    return result
