"""Sampler plumbing: divergences are reported loudly; ESS and R-hat helpers."""

import warnings

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from jaxgrad.inference.galaxy import summary_table
from jaxgrad.inference.sampler import (
    DivergenceWarning,
    diagnose,
    ess_bulk,
    flatten_model,
    rhat_rank,
    run_nuts,
)


def _funnel():
    y = numpyro.sample("y", dist.Normal(0.0, 3.0))
    numpyro.sample("x", dist.Normal(0.0, jax.numpy.exp(y / 2)).expand([4]).to_event(1))


def test_divergences_are_loud_in_warning_field_and_summary():
    flat = flatten_model(_funnel, ())
    run = run_nuts(flat, (), flat.u_init[None], key=jax.random.key(0), num_warmup=100,
                   num_samples=300, dense_mass=False, target_accept_prob=0.6)
    with pytest.warns(DivergenceWarning, match="divergent transition"):
        d = diagnose(run, flat.names, 8)
    assert d["divergences"] > 0 and d["divergent_fraction"] > 0
    table = summary_table(run.samples, ["y"], d)
    assert table.attrs["divergences"] == d["divergences"]
    assert "divergent" in table.attrs["warning"]


def test_ess_and_rhat_helpers():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(2, 2000))
    assert 3000 < ess_bulk(iid) < 5000
    assert abs(rhat_rank(iid) - 1) < 0.01
    ar = np.zeros((1, 4000))
    for t in range(1, 4000):
        ar[0, t] = 0.9 * ar[0, t - 1] + rng.normal()
    assert ess_bulk(ar) < 400  # tau ~ (1 + 0.9)/(1 - 0.9) = 19
    shifted = np.stack([rng.normal(size=1000), rng.normal(size=1000) + 3])
    assert rhat_rank(shifted) > 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(ess_bulk(np.ones((1, 100))))


@pytest.mark.parametrize("family", ["location", "scale", "tails"])
def test_rhat_and_ess_are_arviz_on_three_chain_families(family):
    """R-hat and bulk ESS equal ArviZ's (rank-normalised, folded, split) to 1e-6 on chains
    that differ in location, in spread, and in tails; and the folded part catches chains
    that differ only in spread (the bulk-only R-hat reported 1.02 where ArviZ says 1.04)."""
    import arviz as az

    rng = np.random.default_rng({"location": 0, "scale": 1, "tails": 2}[family])
    n = 1000
    if family == "location":
        x = np.stack([rng.normal(0, 1, n), rng.normal(0.3, 1, n)])
    elif family == "scale":
        x = np.stack([rng.normal(0, 1, n), rng.normal(0, 2, n)])
    else:
        x = np.stack([rng.normal(0, 1, n), rng.standard_t(2, n)])
    want_r = float(az.rhat(x, method="rank"))
    want_e = float(az.ess(x, method="bulk"))
    assert rhat_rank(x) == pytest.approx(want_r, abs=1e-6)
    assert ess_bulk(x) == pytest.approx(want_e, rel=1e-6)
    if family == "scale":
        # the bulk (location) R-hat alone is blind to this: rank-normalised split R-hat of
        # the draws themselves vs of the folded draws |x - median|
        assert rhat_rank(x) > 1.03


def test_ess_and_rhat_vectorised_match_one_by_one():
    """Trailing components in one pass (what diagnose does for 10^4-galaxy hierarchies)
    equal the per-component values; constant components give NaN."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 200, 4, 3)).cumsum(axis=1) * 0.02 + rng.normal(size=(3, 200, 4, 3))
    x[1, :, 2, 1] += 3.0  # one component with a shifted chain
    x[:, :, 0, 0] = 5.0  # one constant component
    ess, rhat = ess_bulk(x), rhat_rank(x)
    assert ess.shape == rhat.shape == (4, 3)
    assert np.isnan(ess[0, 0]) and np.isnan(rhat[0, 0])
    for idx in np.ndindex(4, 3):
        if idx != (0, 0):
            assert ess[idx] == pytest.approx(ess_bulk(x[(..., *idx)]), rel=1e-9)
            assert rhat[idx] == pytest.approx(rhat_rank(x[(..., *idx)]), rel=1e-9)
    assert rhat[2, 1] > 1.3 and np.nanmax(np.delete(rhat.ravel(), 7)) < 1.1


def _regression(x, y):
    a = numpyro.sample("a", dist.Normal(0.0, 5.0))
    b = numpyro.sample("b", dist.Normal(0.0, 5.0))
    s = numpyro.sample("s", dist.HalfNormal(2.0))
    numpyro.sample("y", dist.Normal(a + b * x, s), obs=y)


def test_segmented_nuts_gives_the_same_draws_and_reports_progress(caplog):
    """Segments of a sequential run continue the same Markov chains (warm-up included),
    with progress lines: the first and last segment of each chain, and between them at most
    one per PROGRESS_EVERY_S seconds (a fast run printed one line per segment)."""
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 30)
    args = (x, 0.3 + 1.7 * x + 0.2 * rng.normal(size=30))
    flat = flatten_model(_regression, args)
    u0 = np.stack([np.asarray(flat.u_init), np.asarray(flat.u_init) + 0.3])
    kw = dict(key=jax.random.key(3), num_warmup=120, num_samples=80, dense_mass=False)
    one = run_nuts(flat, args, u0, **kw)
    with caplog.at_level("INFO", logger="jaxgrad.inference.sampler"):
        seg = run_nuts(flat, args, u0, segment=50, **kw)
    # chain 0 is bitwise equal; later chains differ by float32 rounding (another compiled program)
    np.testing.assert_allclose(seg.u, one.u, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(seg.stats["num_steps"], one.stats["num_steps"])
    np.testing.assert_array_equal(seg.stats["warmup_steps"], one.stats["warmup_steps"])
    np.testing.assert_allclose(seg.stats["step_size"], one.stats["step_size"], rtol=1e-3)
    msgs = [r.getMessage() for r in caplog.records if "iterations" in r.getMessage()]
    assert "200/200 iterations (sampling)" in msgs[-1]
    for c in (1, 2):  # a run of well under 5 s: first and last segment of each chain only
        mine = [m for m in msgs if f"chain {c}/2" in m]
        assert len(mine) == 2 and "50/200" in mine[0] and "200/200" in mine[1], mine
    assert abs(np.mean(seg.samples["b"]) - 1.7) < 0.2


@pytest.mark.parametrize("vectorize", [False, True])
def test_checkpointed_nuts_resumes_bit_for_bit(tmp_path, vectorize):
    """A run stopped after some segments (several times, mid-chain and between chains)
    and resumed from its checkpoint gives exactly the uninterrupted run's output."""
    from jaxgrad._nuts import _segment_file, nuts_chains_segmented, remove_checkpoint

    def gen(mu):
        return lambda u: 0.5 * jax.numpy.sum(((u - mu) / jax.numpy.array([1.0, 10.0, 0.1])) ** 2)

    keys = jax.random.split(jax.random.key(0), 3)
    u0 = np.zeros((3, 3), np.float32)
    args = (np.array([1.0, 2.0, 3.0], np.float32),)
    kw = dict(potential_gen=gen, num_warmup=60, num_samples=50, dense_mass=False, max_tree_depth=6,
              segment=30, vectorize=vectorize)
    ref, _ = nuts_chains_segmented(keys, u0, args, **kw)
    path = tmp_path / "nuts.npz"

    class Stop(Exception):
        pass

    stops = [(-1, 30), (-1, 90)] if vectorize else [(0, 60), (1, 110), (2, 30)]
    for stop in stops:
        def cb(c, done, total, sec, stop=stop):
            if (c, done) == stop:
                raise Stop

        with pytest.raises(Stop):
            nuts_chains_segmented(keys, u0, args, on_segment=cb, checkpoint=path, **kw)
    # one file per segment (written once) beside a small head file: 110 iterations in
    # segments of 30 make 4 per chain; vmapped, the last stop came after 3
    segs = sorted(p.name for p in tmp_path.glob("nuts.c*.s*.npz"))
    assert len(segs) == (3 if vectorize else 4 * 2 + 1)  # sequential: chain 2 stopped after 1
    out, t = nuts_chains_segmented(keys, u0, args, checkpoint=path, **kw)
    assert t["resumed_from"]["iterations_done"] == stops[-1][1]
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # finished: resuming again returns the same chains without sampling
    again, t2 = nuts_chains_segmented(keys, u0, args, checkpoint=path, **kw)
    assert t2["resumed_from"]["chains_finished"] == (1 if vectorize else 3)
    np.testing.assert_array_equal(np.asarray(again.z), np.asarray(ref.z))
    with pytest.raises(ValueError, match="other data, seed or sampler settings"):
        nuts_chains_segmented(keys, u0, (args[0] + 1,), checkpoint=path, **kw)
    # a truncated head file or segment file is named, dropped, and the chains run afresh to
    # the same draws (it was a raw BadZipFile)
    for victim in (path, sorted(tmp_path.glob("nuts.c*.s*.npz"))[0]):
        blob = victim.read_bytes()
        victim.write_bytes(blob[: len(blob) // 3])
        with pytest.warns(UserWarning, match="is damaged"):
            fresh, _ = nuts_chains_segmented(keys, u0, args, checkpoint=path, **kw)
        np.testing.assert_array_equal(np.asarray(fresh.z), np.asarray(ref.z))
    _segment_file(path, 0 if not vectorize else -1, 1).unlink()  # a missing segment: damaged too
    with pytest.warns(UserWarning, match="segment file .* is missing"):
        fresh, _ = nuts_chains_segmented(keys, u0, args, checkpoint=path, **kw)
    np.testing.assert_array_equal(np.asarray(fresh.z), np.asarray(ref.z))
    remove_checkpoint(path)
    assert not list(tmp_path.iterdir())


def test_time_budget_keeps_the_draws_made_so_far():
    """Out of time, sampling stops at a segment boundary after warm-up: the draws kept are
    the uninterrupted run's first ones, the same number for every chain."""
    from jaxgrad._nuts import nuts_chains_segmented

    def gen(mu):
        return lambda u: 0.5 * jax.numpy.sum((u - mu) ** 2)

    keys = jax.random.split(jax.random.key(1), 2)
    u0 = np.zeros((2, 2), np.float32)
    args = (np.array([1.0, -1.0], np.float32),)
    kw = dict(potential_gen=gen, num_warmup=60, num_samples=50, dense_mass=False, max_tree_depth=5, segment=30)
    full, t_full = nuts_chains_segmented(keys, u0, args, **kw)
    assert t_full["num_samples"] == 50
    cut, t = nuts_chains_segmented(keys, u0, args, time_budget_s=0.0, **kw)
    assert t["num_samples"] == 30 and np.asarray(cut.z).shape == (2, 30, 2)  # warm-up + one segment
    np.testing.assert_array_equal(np.asarray(cut.z), np.asarray(full.z)[:, :30])
    with pytest.raises(ValueError, match="cannot be combined"):
        nuts_chains_segmented(keys, u0, args, time_budget_s=1.0, checkpoint="x.npz", **kw)


def test_health_checks_name_every_failure():
    from jaxgrad.inference.sampler import health_problems

    ok = {"r_hat_max": 1.003, "ess_bulk_min": 450.0, "num_chains": 2, "divergences": 0, "divergent_fraction": 0.0,
          "frac_max_treedepth": 0.0}
    assert health_problems(ok) == []
    bad = {**ok, "r_hat_max": 1.2, "ess_bulk_min": 31.0, "divergences": 3, "divergent_fraction": 0.003,
           "frac_max_treedepth": 1.0}
    probs = health_problems(bad)
    assert len(probs) == 4
    assert "R-hat 1.200" in probs[0] and "ESS 31 < 200" in probs[1] and "3 divergent" in probs[2]
    assert "maximum tree depth" in probs[3]
    assert health_problems({**ok, "r_hat_max": float("nan")})  # NaN R-hat is not a pass
