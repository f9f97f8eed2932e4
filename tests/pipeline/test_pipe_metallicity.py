"""Per-bin metallicities: Method I grid, Method II inversion, dust, Paper B, NumPyro."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxgrad as jg
from jaxgrad.physics import dust
from jaxgrad.pipeline import metallicity as M
from jaxgrad.pipeline import sampling

CAL = jg.calibrations.get("sanders24")
LINES6 = ("OII_3727_30", "NeIII_3870", "Hg", "Hb", "OIII_5008", "Ha")


def fluxes(lines, logoh, av=0.0, law="calzetti", hb=100.0):
    """Dust-attenuated line fluxes predicted by the calibration (as the forward model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
        lr = np.asarray(CAL.line_log_ratios(lines, logoh), float)
    k = np.asarray(dust.line_alav(tuple(lines), law))
    return hb * 10 ** (lr - 0.4 * av * k)


@pytest.fixture(scope="module")
def spec6():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
        spec, _ = M.make_metallicity_spec(LINES6, "sanders24", diagnostics=("R3", "O2", "Ne3O2"),
                                          warn=False)
    return spec


@pytest.fixture(scope="module")
def m1_fn():
    return jax.jit(M.method1_grid, static_argnums=2)


@pytest.fixture(scope="module")
def m2_fn():
    return jax.jit(M.method2_inversion, static_argnums=2)


def test_method1_grid_is_the_truncated_normal_for_a_linear_calibration(m1_fn):
    """O2 of sanders24 is linear in Z: the exact posterior is a truncated normal."""
    lines = ("OII_3727_30", "Hb")
    spec, _ = M.make_metallicity_spec(lines, "sanders24", diagnostics=("O2",), dust_correct=False,
                                      warn=False)
    z_true = 7.9
    f = fluxes(lines, z_true)
    sy = 0.05  # dex, measurement error of the ratio
    ferr = f * sy * np.log(10) / np.sqrt(2)  # split over the two lines
    r = m1_fn(jnp.asarray(f), jnp.asarray(ferr), spec)
    slope = 1.069
    s = np.hypot(sy, spec.scatter[0]) / slope
    lo, hi = spec.ranges[0]
    tn = stats.truncnorm((lo - z_true) / s, (hi - z_true) / s, loc=z_true, scale=s)
    dz = (spec.grid[1] - spec.grid[0]) / spec.grid[2]
    assert float(r.median) == pytest.approx(tn.median(), abs=dz)
    assert float(r.lo) == pytest.approx(tn.ppf(0.15865525), abs=dz)
    assert float(r.hi) == pytest.approx(tn.ppf(0.84134475), abs=dz)
    assert float(r.std) == pytest.approx(tn.std(), rel=0.01)
    assert bool(r.measurable)


@pytest.mark.parametrize("z_true", [7.65, 8.15])
def test_method2_matches_calibration_invert_on_the_right_branch(spec6, m2_fn, z_true):
    f = fluxes(LINES6, z_true)
    r = m2_fn(jnp.asarray(f), jnp.asarray(f * 0.01), spec6)
    i = spec6.diagnostics.index("R3")
    y = np.log10(f[LINES6.index("OIII_5008")] / f[LINES6.index("Hb")])
    branch = "lower" if z_true < CAL.turnover("R3") else "upper"
    expect = CAL.invert("R3", y, branch=branch)
    assert float(r.logoh[i]) == pytest.approx(expect, abs=2e-3)
    assert float(r.logoh[i]) == pytest.approx(z_true, abs=2e-3)
    np.testing.assert_allclose(np.asarray(r.logoh), z_true, atol=2e-3)
    assert np.all(np.asarray(r.valid))


def test_balmer_decrement_dust_correction(spec6, m1_fn):
    spec = spec6
    clean = fluxes(LINES6, 7.8)
    dusty = fluxes(LINES6, 7.8, av=1.2)
    r0 = m1_fn(jnp.asarray(clean), jnp.asarray(clean * 0.01), spec)
    r1 = m1_fn(jnp.asarray(dusty), jnp.asarray(dusty * 0.01), spec)
    assert float(r1.av) == pytest.approx(1.2, abs=1e-3)
    assert bool(r1.av_measured)
    assert float(r1.median) == pytest.approx(float(r0.median), abs=2e-3)
    # Hγ/Hβ alone (no Hα): the same A_V
    no_ha = dusty.copy()
    e = dusty * 0.01
    e[LINES6.index("Ha")] = np.inf
    r2 = m1_fn(jnp.asarray(no_ha), jnp.asarray(e), spec)
    assert float(r2.av) == pytest.approx(1.2, abs=1e-3)
    # uncorrected, the dust-sensitive O2 would bias Z
    r3 = m1_fn(jnp.asarray(dusty), jnp.asarray(dusty * 0.01), spec.replace(dust_correct=False))
    assert abs(float(r3.median) - float(r0.median)) > 0.02


def test_balmer_decrement_with_the_smc_curve(spec6):
    spec = spec6.replace(dust_law="smc")
    dusty = fluxes(LINES6, 7.8, av=0.9, law="smc")
    f = jax.jit(lambda a, b: M.deredden(a, b, M.balmer_av(a, b, spec)[0], spec))
    av = jax.jit(lambda a, b: M.balmer_av(a, b, spec)[0])(jnp.asarray(dusty), jnp.asarray(dusty * 0.01))
    assert float(av) == pytest.approx(0.9, abs=1e-3)
    corrected, _ = f(jnp.asarray(dusty), jnp.asarray(dusty * 0.01))
    np.testing.assert_allclose(np.asarray(corrected), fluxes(LINES6, 7.8), rtol=2e-4)


def test_diagnostic_used_only_inside_its_valid_range(spec6, m1_fn):
    # narrow R3's range artificially: at Z = 7.6 it must be dropped, at 8.1 kept
    ranges = tuple((7.9, 8.3) if d == "R3" else r for d, r in zip(spec6.diagnostics, spec6.ranges,
                                                               strict=True))
    spec = spec6.replace(ranges=ranges)
    i = spec.diagnostics.index("R3")
    lo = m1_fn(jnp.asarray(fluxes(LINES6, 7.6)), jnp.asarray(fluxes(LINES6, 7.6) * 0.01), spec)
    hi = m1_fn(jnp.asarray(fluxes(LINES6, 8.1)), jnp.asarray(fluxes(LINES6, 8.1) * 0.01), spec)
    assert bool(lo.avail[i]) and not bool(lo.used[i])
    assert bool(hi.used[i])
    assert float(lo.median) == pytest.approx(7.6, abs=0.02)


def test_lines_below_snr_are_dropped_and_nothing_measurable_is_flagged(spec6, m1_fn, m2_fn):
    f = fluxes(LINES6, 7.8)
    err = f * 0.01
    err[LINES6.index("NeIII_3870")] = f[LINES6.index("NeIII_3870")] / 2.0  # S/N 2 < 2.5
    r = m1_fn(jnp.asarray(f), jnp.asarray(err), spec6)
    used = dict(zip(spec6.diagnostics, np.asarray(r.used), strict=True))
    assert used == {"R3": True, "O2": True, "Ne3O2": False}
    weak = m1_fn(jnp.asarray(f), jnp.asarray(f), spec6)  # S/N = 1 everywhere
    assert not bool(weak.measurable)
    assert np.isnan(float(weak.median))
    w2 = m2_fn(jnp.asarray(f), jnp.asarray(f), spec6)
    assert not np.any(np.asarray(w2.valid))


def test_method1_vmap_equals_loop(spec6, m1_fn):
    zs = np.array([7.55, 7.8, 8.05])
    F = np.stack([fluxes(LINES6, z) for z in zs])
    rng = np.random.default_rng(0)
    F = F * (1 + 0.03 * rng.standard_normal(F.shape))
    E = 0.03 * np.abs(F)
    batch = sampling._method1_grid_batch(spec6)(jnp.asarray(F), jnp.asarray(E), jnp.zeros(3))
    for k in range(3):
        one = m1_fn(jnp.asarray(F[k]), jnp.asarray(E[k]), spec6)
        np.testing.assert_allclose(float(batch.median[k]), float(one.median), atol=1e-5)
        np.testing.assert_allclose(float(batch.err[k]), float(one.err), atol=1e-5)


def test_make_metallicity_spec_reports_missing_lines():
    with pytest.warns(UserWarning, match=r"Ne3O2 \(needs NeIII_3870\)"):
        spec, dropped = M.make_metallicity_spec(("OII_3727_30", "Hb", "OIII_5008"), "sanders24")
    assert "Ne3O2" in dropped and "R3" in spec.diagnostics and "O32" in spec.diagnostics
    # the calibration's missing scatter falls back to the documented default
    spec2, _ = M.make_metallicity_spec(("OII_3727_30", "Hb", "OIII_5008"), "maiolino08",
                                       default_scatter=0.07, warn=False)
    assert set(spec2.scatter) == {0.07}
    with pytest.raises(ValueError, match="default_scatter"):
        M.make_metallicity_spec(("Hb", "OIII_5008"), "sanders24", default_scatter=-1.0)


def test_paper_b_likelihood_peaks_at_the_truth(spec6):
    """Paper B's published likelihood is maximal (χ² = 0) at the truth for noiseless data."""
    z_true, av_true = 7.8, 0.6
    f = fluxes(LINES6, z_true, av=av_true)
    err = 0.01 * f
    ll = jax.jit(jax.vmap(jax.vmap(lambda z, a: M.paper_b_loglike(z, a, 100.0, jnp.asarray(f),
                                                                  jnp.asarray(err), spec6),
                                   in_axes=(None, 0)), in_axes=(0, None)))
    zg = jnp.linspace(7.5, 8.1, 121)
    ag = jnp.linspace(0.0, 1.5, 151)
    L = np.asarray(ll(zg, ag))
    i, j = np.unravel_index(np.argmax(L), L.shape)
    assert float(zg[i]) == pytest.approx(z_true, abs=0.01)
    assert float(ag[j]) == pytest.approx(av_true, abs=0.02)


def test_method1_grid_and_numpyro_agree(spec6):
    """The gridded exact posterior and NUTS sample the same density."""
    zs = np.array([7.6, 7.85, 8.1])
    rng = np.random.default_rng(2)
    F = np.stack([fluxes(LINES6, z, av=0.3) for z in zs])
    E = 0.05 * F
    F = F + E * rng.standard_normal(F.shape)
    # the same compiled grid function method1_numpyro uses internally
    grid = sampling._method1_grid_batch(spec6)(jnp.asarray(F), jnp.asarray(E), jnp.zeros(3))
    res = sampling.method1_numpyro(jax.random.key(0), F, E, spec6, num_warmup=300,
                                   num_samples=2000)
    med = res.median["logoh"]
    width = res.hi["logoh"] - res.lo["logoh"]
    np.testing.assert_allclose(med, np.asarray(grid.median), atol=0.01)
    np.testing.assert_allclose(width, np.asarray(grid.hi - grid.lo), rtol=0.10)
    assert res.extra["divergences"] == 0


@pytest.mark.slow
def test_paper_b_numpyro_recovers_metallicity_and_dust(spec6):
    zs = np.array([7.6, 7.9])
    F = np.stack([fluxes(LINES6, z, av=0.5) for z in zs])
    E = 0.02 * F
    res = sampling.paper_b_numpyro(jax.random.key(1), F, E, spec6, num_warmup=500,
                                   num_samples=1000)
    # the intrinsic scatter of the calibration (0.09-0.24 dex) sets the posterior width
    for k, truth in (("logoh", zs), ("av", 0.5), ("f_hb", 100.0)):
        sd = 0.5 * (res.hi[k] - res.lo[k])
        assert np.all(np.abs(res.median[k] - truth) < 2.0 * sd), k


def test_method1_flags_and_fisher_width_sanders25():
    """R3 alone is two-peaked on the lower/upper branch (flagged); R3 + O2 is not; a ratio
    beyond what the range allows saturates at the edge; the Fisher width equals the analytic
    s / |P'(Z)| of a single diagnostic (float64 NumPy derivative of the public coefficients)."""
    cal = jg.calibrations.get("sanders25")
    lines = ("OII_3727_30", "Hb", "OIII_5008")
    spec, _ = M.make_metallicity_spec(lines, "sanders25", diagnostics=("O2", "R3"), warn=False)
    z_true = 7.6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = np.asarray(cal.line_log_ratios(lines, z_true), float)
    f = 100.0 * 10 ** lr
    e = np.full(3, 1e-3)
    flags = jax.jit(lambda m: M.method1_flags(m, spec))
    both = M.method1_grid(f, e, spec)
    assert not any(bool(v) for v in flags(both))
    r3_only = M.method1_grid(f, np.array([np.inf, 1e-3, 1e-3]), spec)  # [OII] missing
    sat, trunc, multi = (bool(v) for v in flags(r3_only))
    assert multi and not sat
    # the Fisher width of R3 alone at the truth: s_R3 / |dR3/dZ|
    dg = cal.diagnostic("R3")
    p = np.polynomial.Polynomial(dg.coeffs)(np.polynomial.Polynomial([-dg.x_offset, 1.0]))
    want = cal.scatter("R3") / abs(p.deriv()(z_true))
    got = float(M.method1_fisher_err(r3_only, spec, jnp.asarray(z_true)))
    np.testing.assert_allclose(got, want, rtol=1e-3)
    # an O2 far below the range's lowest value: the mode sits in the edge cell
    low = f.copy()
    low[0] = f[1] * 10 ** -2.5
    sat, trunc, _ = (bool(v) for v in flags(M.method1_grid(low, e, spec)))
    assert sat and trunc
