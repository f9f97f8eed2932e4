"""Mock suite infrastructure: regeneration, resume, sharding, spec I/O, curves."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxgrad import mocks

SMALL = mocks.SuiteSpec(ny=24, nx=24, n_chan_per_line=6)
SMALL_MAPS = mocks.SuiteSpec(mode="maps", ny=24, nx=24)


def _sum_measure(batch, suite):
    """A cheap deterministic stand-in for the pipeline (infrastructure tests only)."""
    d = np.asarray(batch.data, np.float64)
    return {"grad_meas": d.sum(axis=(1, 2, 3)), "grad_err": d.std(axis=(1, 2, 3))}


def test_mock_regenerated_alone_equals_batch_member():
    b = mocks.generate(SMALL_MAPS, 3, np.arange(8))
    for i in (0, 5):
        one = mocks.generate_one(SMALL_MAPS, 3, i)
        np.testing.assert_allclose(np.asarray(one.data), np.asarray(b.data[i]), rtol=1e-5,
                                   atol=1e-5 * float(np.abs(b.data[i]).max()))
        assert float(one.params.grad_z) == float(b.params.grad_z[i])
        assert float(one.params.psf_fwhm) == float(b.params.psf_fwhm[i])
    # the batch order does not matter: index 5 inside another batch is the same mock
    b2 = mocks.generate(SMALL_MAPS, 3, np.array([5, 1, 2, 3, 4, 0, 6, 7]))
    np.testing.assert_array_equal(np.asarray(b2.data[0]), np.asarray(b.data[5]))


def test_draws_cover_spec_and_snr_definition():
    b = mocks.generate(SMALL_MAPS, 0, np.arange(400))
    g = np.asarray(b.params.grad_z)
    assert {round(float(v), 3) for v in np.unique(g)} <= {-0.2, -0.1, -0.05, 0.05, 0.1, 0.2}
    # 2R_e/beam log-uniform over Paper A's 0.6-6.4: each half of the log range holds half the mocks
    x = np.asarray(b.two_re_over_beam)
    assert x.min() >= 0.6 - 1e-4 and x.max() <= 6.4 + 1e-4
    mid = np.sqrt(0.6 * 6.4)
    assert 160 < np.sum(x < mid) < 240, np.sum(x < mid)
    k = SMALL_MAPS.kpc_per_arcsec()
    np.testing.assert_allclose(np.asarray(b.params.psf_fwhm), 2 * SMALL_MAPS.r_e / (x * k), rtol=1e-5)
    # Z0 keeps the profile inside the valid interval (less the margin) over [0, r_ext]
    z0 = np.asarray(b.params.logoh0)
    ext = np.asarray(b.extent_kpc)
    lo, hi = SMALL_MAPS.valid_interval()
    assert (lo, hi) == (7.3, 8.6)  # Sanders+25 R3 and O2, Paper A's ranges
    zend = z0 + g * ext
    m = SMALL_MAPS.range_margin
    assert np.all(np.minimum(z0, zend) >= lo + m - 1e-5) and np.all(np.maximum(z0, zend) <= hi - m + 1e-5)
    # the extent is the full max_radius_re where the profile fits, else where it reaches the edge
    room = hi - lo - 2 * m
    np.testing.assert_allclose(ext, np.minimum(SMALL_MAPS.max_radius_re * SMALL_MAPS.r_e, room / np.abs(g)), rtol=1e-5)
    # noise level: mean S/N inside R_e of the noiseless [OIII] map equals the drawn S/N
    clean = mocks.generate(SMALL_MAPS.__class__(**{**SMALL_MAPS.to_dict(), "snr": (1e9, 1e9)}), 0, np.arange(4))
    assert np.all(np.asarray(clean.sigma) < 1e-6)


def test_uniform_psf_draws_stay_available():
    s = mocks.SuiteSpec(mode="maps", ny=24, nx=24, psf_fwhm=(0.1, 1.0))
    psf = np.asarray(mocks.generate(s, 0, np.arange(64)).params.psf_fwhm)
    assert psf.min() >= 0.1 and psf.max() <= 1.0
    with pytest.raises(ValueError, match="not both"):
        mocks.SuiteSpec(psf_fwhm=(0.1, 1.0), two_re_over_beam=(1, 5))


def test_profile_leaving_the_range_is_refused_or_cut():
    # |grad| 0.2 over 10 kpc spans 2 dex; Sanders+25's R3/O2 interval leaves 1.2 dex
    with pytest.raises(ValueError, match=r"leave the range at 6.00 kpc"):
        mocks.SuiteSpec(range_policy="refuse")
    ok = mocks.SuiteSpec(range_policy="refuse", max_radius_re=2.5, mode="maps", ny=24, nx=24)
    np.testing.assert_allclose(np.asarray(ok.extent_kpc(np.array([-0.2, 0.05]))), [5.0, 5.0])
    cut = mocks.SuiteSpec(mode="maps")
    np.testing.assert_allclose(np.asarray(cut.extent_kpc(np.array([-0.2, 0.1, 0.05]))), [6.0, 10.0, 10.0])
    # physical parameters go through the forward model's validation
    for bad, match in (({"r_e": 0.0}, "r_e"), ({"inc": 90.0}, "inc"), ({"z": 0.0}, "z"),
                       ({"sersic_n": 0.0}, "sersic_n"), ({"flux_hb": -1.0}, "flux_hb"), ({"av": 50.0}, "av"),
                       ({"logu": 0.0}, "log"), ({"logoh_center": 10.5}, "logoh_center"),
                       ({"estimator": "max"}, "estimator"), ({"channel_kms": 0.0}, "channel_kms"),
                       ({"oversample": 2.7}, "oversample"), ({"pixel_scale": float("inf")}, "pixel_scale")):
        with pytest.raises(ValueError, match=match):
            mocks.SuiteSpec(**bad)


def test_resumed_run_equals_uninterrupted(tmp_path):
    full = tmp_path / "full"
    part = tmp_path / "part"
    r1 = mocks.run_suite(SMALL, 10, full, seed=1, chunk_size=4, measure=_sum_measure, progress=False)
    assert r1["chunks_computed"] == 3
    r2 = mocks.run_suite(SMALL, 10, part, seed=1, chunk_size=4, measure=_sum_measure, progress=False, max_chunks=1)
    assert r2["chunks_computed"] == 1
    # a stale temp file from a killed write is ignored
    (part / "chunks" / ".chunk_000001.tmp.h5").write_bytes(b"garbage")
    r3 = mocks.run_suite(SMALL, 10, part, seed=1, chunk_size=4, measure=_sum_measure, progress=False)
    assert r3["chunks_computed"] == 2 and r3["chunks_skipped"] == 1
    a, b = mocks.load_results(full), mocks.load_results(part)
    assert list(a["index"]) == list(range(10))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # a different suite in the same folder is refused
    with pytest.raises(ValueError, match="different suite"):
        mocks.run_suite(SMALL, 10, part, seed=2, chunk_size=4, measure=_sum_measure, progress=False)


def test_suite_chunks_in_cpu_sub_batches_equal_one_call(tmp_path, monkeypatch):
    """On a CPU a chunk is generated and measured in sub-batches (cache-sized); the stored
    rows are the mocks of their indices, as one call on the whole chunk gives them."""
    from jaxgrad.mocks import suite as suite_mod

    monkeypatch.setattr(suite_mod, "_cpu_sub_batch", lambda: 4)
    calls = []

    def measure(batch, suite):
        calls.append(len(batch.index))
        return _sum_measure(batch, suite)

    mocks.run_suite(SMALL, 11, tmp_path, seed=2, chunk_size=11, measure=measure, progress=False)
    assert calls == [4, 4, 4]  # 11 padded to 12, in three calls
    got = mocks.load_results(tmp_path)
    whole = mocks.generate(SMALL, 2, np.arange(11))
    ref = {**mocks.truth_columns(whole), **_sum_measure(whole, SMALL)}
    assert list(got["index"]) == list(range(11))
    for k, v in ref.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-6, err_msg=k)


def test_spec_toml_round_trip_and_bad_keys(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SMALL.to_toml())
    assert mocks.SuiteSpec.from_toml(p) == SMALL
    p.write_text('mode = "cube"\nbeam = 0.3\n')
    with pytest.raises(ValueError, match="unknown suite-spec key"):
        mocks.SuiteSpec.from_toml(p)
    with pytest.raises(ValueError, match="mode"):
        mocks.SuiteSpec(mode="slit")
    with pytest.raises(FileNotFoundError):
        mocks.SuiteSpec.from_toml(tmp_path / "missing.toml")


def test_sharded_equals_unsharded(tmp_path):
    """4 fake CPU devices (fresh process: the flag must precede JAX's start)."""
    code = textwrap.dedent(f"""
        import os, numpy as np, jax
        from jaxgrad import mocks
        assert jax.local_device_count() == 4, jax.local_device_count()
        s = mocks.SuiteSpec(mode="maps", ny=24, nx=24)
        b = mocks.generate(s, 7, np.arange(8), sharding=mocks.batch_sharding())
        assert len(b.data.sharding.device_set) == 4
        np.save(r"{tmp_path / 'sharded.npy'}", np.asarray(b.data))
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    sharded = np.load(tmp_path / "sharded.npy")
    ref = np.asarray(mocks.generate(SMALL_MAPS, 7, np.arange(8)).data)
    np.testing.assert_allclose(sharded, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_curves_fit_and_correct_on_synthetic_table(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    x = np.exp(rng.uniform(np.log(0.6), np.log(6.4), n))
    g = rng.choice([-0.2, -0.1, -0.05, 0.05, 0.1, 0.2], n)

    def truth(xx):
        return 1 - 0.9 * np.exp(-0.6 * np.asarray(xx))  # monotonic, -> 1

    res = {"two_re_over_beam": x, "grad_true": g, "grad_meas": g * (truth(x) + rng.normal(0, 0.05, n))}
    curves = mocks.fit_curves(res, n_bins=8)
    for c in curves.values():
        ok = np.isfinite(c.median)
        assert c.n_total == np.sum(c.n) and np.all(c.n[ok] >= 3)
        # medians of the bins: the truth at the bin's median x, within 4 bootstrap errors
        assert np.all(np.abs(c.median[ok] - truth(c.x_center[ok])) < 4 * c.median_err[ok] + 0.01)
        assert np.all((c.median_err[ok] > 0.002) & (c.median_err[ok] < 0.03))
        np.testing.assert_allclose(c.ratio([1.0, 3.0, 5.0]), truth([1.0, 3.0, 5.0]), atol=0.03)
        # never extrapolated beyond the supported bins
        assert np.isnan(c.ratio(0.3)) and np.isnan(c.ratio(8.0))
        assert set(c.per_sign) == {"positive", "negative"}
    # a bin with fewer than min_n mocks stays in the table but not in the fit
    keep = (x < 4.5) | (rng.uniform(size=n) < 0.05)
    sparse = mocks.fit_curves({k: v[keep] for k, v in res.items()}, n_bins=8, x_range=(0.6, 6.4))
    for c in sparse.values():
        assert c.n[-1] < 10 and c.fit_range[1] < c.x_lo[-1] and np.isnan(c.ratio(6.0))
    corr, fac = mocks.correct(np.array([0.05, -0.1]), np.array([2.0, 4.0]), curves=curves)
    np.testing.assert_allclose(corr, [0.05, -0.1] / truth(np.array([2.0, 4.0])), rtol=0.05)
    with pytest.warns(UserWarning, match="outside the range"):
        corr, _ = mocks.correct(np.array([0.05, 0.05]), np.array([2.0, 20.0]), curves=curves)
    assert np.isfinite(corr[0]) and np.isnan(corr[1])
    path = mocks.write_curves_csv(curves, tmp_path / "c.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "abs_grad,sign,x_lo,x_hi,x_center,n,ratio_median,ratio_median_err,ratio_p16,ratio_p84,ratio_fit"
    assert len(lines) == 1 + 3 * 3 * 8  # classes x (all, positive, negative) x bins
    back = mocks.load_curves_csv(path)
    for a, c in curves.items():
        np.testing.assert_array_equal(back[a].n, c.n)
        np.testing.assert_allclose(back[a].ratio([1.0, 3.0]), c.ratio([1.0, 3.0]), rtol=1e-4)
    fig = mocks.plot_curves(res, curves)
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
    json.dumps(mocks.curves_table(curves))


def test_processes_split_chunks_without_overlap(tmp_path):
    a = mocks.run_suite(SMALL_MAPS, 9, tmp_path, seed=4, chunk_size=2, measure=_sum_measure, progress=False,
                        process_index=0, process_count=2)
    b = mocks.run_suite(SMALL_MAPS, 9, tmp_path, seed=4, chunk_size=2, measure=_sum_measure, progress=False,
                        process_index=1, process_count=2)
    assert a["chunks_computed"] == 3 and b["chunks_computed"] == 2
    assert list(mocks.load_results(tmp_path)["index"]) == list(range(9))


def test_damaged_and_foreign_chunks_are_recomputed_bit_for_bit(tmp_path):
    """Fault injection: a killed run left a zero-byte chunk, another run's chunk was copied in,
    and a third is truncated. The resumed run names each, recomputes it, and ends
    bit-identical to an uninterrupted run; load_results refuses what it cannot trust."""
    import shutil

    full, part, other = tmp_path / "full", tmp_path / "part", tmp_path / "other"
    mocks.run_suite(SMALL, 12, full, seed=1, chunk_size=4, measure=_sum_measure, progress=False)
    mocks.run_suite(SMALL, 12, part, seed=1, chunk_size=4, measure=_sum_measure, progress=False)
    mocks.run_suite(SMALL, 12, other, seed=9, chunk_size=4, measure=_sum_measure, progress=False)
    ch = part / "chunks"
    (ch / "chunk_000000.h5").write_bytes(b"")  # killed mid-write (zero bytes)
    shutil.copy(other / "chunks" / "chunk_000001.h5", ch / "chunk_000001.h5")  # foreign
    data = (ch / "chunk_000002.h5").read_bytes()
    (ch / "chunk_000002.h5").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match="chunk_000000.h5"):
        mocks.load_results(part)
    with pytest.warns(UserWarning) as rec:
        r = mocks.run_suite(SMALL, 12, part, seed=1, chunk_size=4, measure=_sum_measure, progress=False)
    msgs = " ".join(str(w.message) for w in rec)
    assert r["chunks_computed"] == 3
    assert "chunk_000000.h5' unreadable" in msgs and "another suite" in msgs and "chunk_000002.h5' unreadable" in msgs
    a, b = mocks.load_results(full), mocks.load_results(part)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # a suite with chunks missing loads with a warning that says how many mocks it holds
    (ch / "chunk_000001.h5").unlink()
    with pytest.warns(UserWarning, match="holds 8 of the suite's 12 mocks"):
        mocks.load_results(part)
