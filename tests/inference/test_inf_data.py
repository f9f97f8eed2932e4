"""Input validation, priors and the likelihood's building blocks (no sampling)."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import jaxgrad as jg
from jaxgrad.inference import GalaxyData, SoftUniform, default_priors, line_scatter
from jaxgrad.inference.data import DataWarning, logoh_range, pad_to
from jaxgrad.inference.galaxy import build_galaxy_model
from jaxgrad.inference.likelihood import DEFAULT_SCATTER_DEX, add_scatter
from jaxgrad.inference.priors import branch_breaking, check_logoh_prior, turnover

SPEC = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), ny=8, nx=8, pixel_scale=0.1,
                    use_logu=False)


def _data(maps=None, errs=None, mask=None, name="g1", spec=SPEC):
    shape = (spec.n_lines, spec.ny, spec.nx)
    maps = np.ones(shape) if maps is None else maps
    errs = np.full(shape, 0.1) if errs is None else errs
    return GalaxyData(maps, errs, mask, spec, known={"z": 2.0, "psf_fwhm": 0.2}, name=name)


def test_all_masked_galaxy_raises_naming_it():
    mask = np.zeros((3, 8, 8), bool)
    with pytest.raises(ValueError, match="'NGC-42'.*every pixel is masked"):
        _data(mask=mask, name="NGC-42")


def test_all_nan_galaxy_raises_naming_it():
    maps = np.full((3, 8, 8), np.nan)
    with pytest.raises(ValueError, match="'deep-7'"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        _data(maps=maps, name="deep-7")


def test_nans_are_masked_and_counted():
    maps = np.ones((3, 8, 8))
    maps[0, 1, 1] = np.nan
    maps[2, 3, :2] = np.inf
    errs = np.full((3, 8, 8), 0.1)
    errs[1, 0, 0] = 0.0  # non-positive error
    with pytest.warns(DataWarning, match="masked 4 pixel"):
        d = _data(maps=maps, errs=errs)
    assert d.n_bad_masked == 4
    assert not d.mask[0, 1, 1] and not d.mask[1, 0, 0] and d.mask.sum() == 3 * 64 - 4
    assert np.all(np.isfinite(d.maps)) and np.all(d.errs > 0)
    obs = d.obs()
    assert float(jnp.sum(obs.weight)) == 3 * 64 - 4


def test_shape_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"\[n_lines, ny, nx\] = \(3, 8, 8\)"):
        _data(maps=np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="mask must be boolean"):
        _data(mask=np.ones((3, 8, 8)))


def test_prior_outside_valid_range_raises_before_sampling():
    lo, hi = logoh_range(SPEC)
    d = _data()
    with pytest.raises(ValueError, match="outside the valid range"):
        build_galaxy_model(d, priors={"logoh0": dist.Uniform(lo - 0.3, hi)})
    with pytest.raises(ValueError, match="outside the valid range"):
        build_galaxy_model(d, priors={"logoh0": dist.Normal(hi + 0.5, 0.1)})
    with pytest.raises(ValueError, match="outside the valid range"):
        build_galaxy_model(d, priors={"logoh0": None}, fixed={"logoh0": hi + 0.2})


def test_bad_prior_and_fixed_combinations():
    d = _data()
    with pytest.raises(ValueError, match="unknown parameter"):
        build_galaxy_model(d, priors={"metallicity": dist.Normal(8, 1)})
    with pytest.raises(ValueError, match="both fixed and given a prior"):
        build_galaxy_model(d, priors={"r_e": dist.LogNormal(0, 1)}, fixed={"r_e": 2.0})
    with pytest.raises(ValueError, match="must be a numpyro Distribution"):
        build_galaxy_model(d, priors={"r_e": 2.0})
    with pytest.raises(ValueError, match="inc outside its allowed range"):
        build_galaxy_model(d, fixed={"inc": 120.0})


def test_unbounded_logoh_prior_is_truncated_to_range():
    lo, hi = logoh_range(SPEC)
    p = check_logoh_prior(dist.Normal(0.5 * (lo + hi), 1.0), SPEC)
    x = p.sample(jax.random.key(0), (2000,))
    assert float(x.min()) >= lo and float(x.max()) <= hi


def test_default_priors_and_branch_logic():
    d = _data()
    pri = default_priors(d)
    assert set(pri) == {"logoh0", "grad_z", "flux_hb", "r_e", "sersic_n"}  # no Balmer pair: no A_V
    assert isinstance(pri["logoh0"], SoftUniform)
    assert branch_breaking(SPEC)  # [OII] via the monotonic O2
    r3_only = SPEC.replace(lines=("Hb", "OIII_5008"))
    assert not branch_breaking(r3_only)
    assert 7.8 < turnover(r3_only) < 8.0
    with_ha = SPEC.replace(lines=("OII_3727_30", "Hb", "OIII_5008", "Ha"))
    assert "av" in default_priors(_data(maps=np.ones((4, 8, 8)), errs=np.full((4, 8, 8), 0.1), spec=with_ha))


def test_soft_uniform_is_normalised_and_samples_match():
    d = SoftUniform(7.5, 8.2, 0.05)
    x = jnp.linspace(7.0, 8.7, 20001)
    integral = float(jnp.sum(jnp.exp(d.log_prob(x))) * (x[1] - x[0]))
    assert abs(integral - 1.0) < 3e-3  # float32 Riemann sum of 20001 terms
    s = d.sample(jax.random.key(1), (200_000,))
    # fraction in the shoulders: s sqrt(2π) / (w + s sqrt(2π))
    tail = 0.05 * math.sqrt(2 * math.pi) / (0.7 + 0.05 * math.sqrt(2 * math.pi))
    frac = float(jnp.mean((s < 7.5) | (s > 8.2)))
    assert abs(frac - tail) < 0.01
    assert float(d.icdf(0.5)) == pytest.approx(7.85)


def test_line_scatter_sources():
    s, used = line_scatter(SPEC, "calibration")
    assert s[SPEC.lines.index("Hb")] == 0.0
    assert s[SPEC.lines.index("OII_3727_30")] == pytest.approx(0.22)  # published O2
    assert used["R3"] == (0.09, "unverified")
    s2, _ = line_scatter(SPEC.replace(lines=("OII_3727_30", "NeIII_3870", "Hb")), "calibration")
    assert s2[1] == pytest.approx(math.hypot(0.22, DEFAULT_SCATTER_DEX))  # Ne3O2 has none published
    s0, used0 = line_scatter(SPEC, 0)
    assert np.all(s0 == 0) and used0 == {}
    with pytest.raises(ValueError, match="cal_scatter"):
        line_scatter(SPEC, "bogus")


def test_add_scatter_uses_reference_model():
    d = _data()
    obs = d.obs()
    ref = jnp.full(obs.data.shape, 2.0)
    out = add_scatter(obs, jnp.array([0.1, 0.0, 0.2]), ref)
    np.testing.assert_allclose(out.err[0], np.hypot(0.1, 0.2), rtol=1e-5)
    np.testing.assert_allclose(out.err[1], 0.1, rtol=1e-6)
    np.testing.assert_allclose(out.err[2], np.hypot(0.1, 0.4), rtol=1e-5)


def test_pad_keeps_the_galaxy_in_place():
    # a narrow PSF: on the padded grid the model also gets light the PSF scatters in
    # from outside the original field, which the small field's model omits
    spec = SPEC.replace(ny=7, nx=8)
    known = {"z": 2.0, "psf_fwhm": 0.01, "x0": 0.05, "y0": -0.1, "r_e": 1.0}
    maps = np.asarray(jg.line_maps(jg.make_params(**known), spec))
    d = GalaxyData(maps, np.full(maps.shape, 0.01), None, spec, known=known)
    big = pad_to(d, 12, 11)
    assert big.maps.shape == (3, 12, 11) and big.mask.sum() == 3 * 7 * 8
    model = np.asarray(jg.line_maps(big.base_params(), big.spec))
    np.testing.assert_allclose(model[big.mask].reshape(3, 7, 8), maps, rtol=2e-3, atol=1e-6)


def test_prior_medians_in_one_reusable_program():
    from scipy import stats

    from jaxgrad.inference.priors import medians, prior_medians

    pri = {"n": dist.TruncatedNormal(1.0, 1.0, low=0.5, high=4.0), "f": dist.LogNormal(0.3, 1.0),
           "z": SoftUniform(7.4, 8.9), "u": dist.Uniform(-3.5, -1.5)}
    m = medians(pri)
    tn = stats.truncnorm(-0.5, 3.0, loc=1.0, scale=1.0).median()  # bounds in units of scale
    np.testing.assert_allclose([m["n"], m["f"], m["z"], m["u"]], [tn, np.exp(0.3), 8.15, -2.5], rtol=1e-5)
    # priors of the same kinds with other values reuse the compiled program
    n0 = prior_medians._cache_size()
    m2 = medians({"n": dist.TruncatedNormal(2.0, 0.5, low=0.5, high=4.0), "f": dist.LogNormal(1.0, 0.2),
                  "z": SoftUniform(7.0, 8.0), "u": dist.Uniform(0.0, 1.0)})
    assert prior_medians._cache_size() == n0
    np.testing.assert_allclose(float(m2["n"]), stats.truncnorm(-3.0, 4.0, loc=2.0, scale=0.5).median(), rtol=1e-5)


@pytest.mark.parametrize("factor", [1e-18, 1e-19, 1e30])
def test_fluxes_in_an_implausible_unit_are_refused(factor):
    """Maps in erg/s/cm² read as 1e-18 erg/s/cm² (no BUNIT) underflowed the float32
    likelihood and returned a wrong gradient with exit 0; now a clear error says so."""
    import jaxgrad as jg
    from jaxgrad.inference import GalaxyData

    spec = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), calibration="sanders25", ny=16, nx=16)
    maps = np.asarray(jg.line_maps(jg.make_params(logoh0=8.0, z=2.0), spec))
    errs = np.full(maps.shape, 0.05 * maps.max())
    GalaxyData(maps, errs, spec=spec)  # internal units: fine
    with pytest.raises(ValueError, match="errors' median" + (".*erg/s/cm²: multiply by 1e18" if factor < 1 else "")):
        GalaxyData(maps * factor, errs * factor, spec=spec)


def test_cube_lines_outside_the_cube_are_refused():
    """A z = 2 cube given z = 5: every line outside the cube; the fit returned its prior."""
    import jaxgrad as jg
    from jaxgrad.inference import GalaxyData

    spec = jg.default_channels(jg.ModelSpec(lines=("Hb", "OIII_5008"), calibration="sanders25", ny=8, nx=8),
                               z=2.0, dv_kms=100.0)
    n = spec.n_chan
    cube = np.ones((n, 8, 8))
    GalaxyData.from_cube(cube, cube, spec, known={"z": 2.0})
    with pytest.raises(ValueError, match=r"fall outside the cube"):
        GalaxyData.from_cube(cube, cube, spec, known={"z": 5.0})
