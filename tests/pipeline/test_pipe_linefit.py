"""Line fitting of spectra, error spectra and the supporting helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

import jaxgrad as jg
from jaxgrad.pipeline import annuli, linefit

C = 299792.458
Z = 5.0
LINES = ("OII_3727_30", "Hb", "OIII_5008")


def synth(spec, edges, fluxes, z, dv=0.0, sigma=150.0, base=(0.0, 0.0), broad=None):
    """Independent NumPy model: erf-integrated Gaussians (doublets by lines.py weights)."""
    out = np.zeros(len(edges) - 1)
    comps = list(spec.components)
    amps = {j: fluxes[spec.free.index(spec.lines.index(n))] for j, n in
            ((spec.free.index(spec.lines.index(n)), n) for n in spec.lines
             if spec.lines.index(n) in spec.free)}
    for j, lam, w in comps:
        mu = lam / 1e4 * (1 + z) * (1 + dv / C)
        s = mu * sigma / C
        out += amps[j] * w * 0.5 * (erf((edges[1:] - mu) / (np.sqrt(2) * s))
                                    - erf((edges[:-1] - mu) / (np.sqrt(2) * s)))
    if broad is not None:
        fb, sb = broad
        for j, lam, w in spec.broad_components:
            mu = lam / 1e4 * (1 + z) * (1 + dv / C)
            s = mu * sb / C
            out += fb[j] * w * 0.5 * (erf((edges[1:] - mu) / (np.sqrt(2) * s))
                                      - erf((edges[:-1] - mu) / (np.sqrt(2) * s)))
    x = 0.5 * (edges[1:] + edges[:-1])
    return out + base[0] + base[1] * (x - x.mean()) / np.ptp(x)


@pytest.fixture(scope="module")
def setup():
    edges = np.asarray(jg.instrument.grid.channels_around_lines([3727.0, 5008.24], Z, 106.0, 2500.0))
    spec = linefit.make_linefit_spec(LINES, 106.0, n_channels=len(edges) - 1)
    fit = jax.jit(jax.vmap(lambda f, e: linefit.fit_spectrum(spec, f, e, jnp.asarray(edges), Z)))
    return spec, edges, fit


def test_spec_ties_doublets_and_groups_windows():
    spec = linefit.make_linefit_spec(("Hb", "OIII_4960", "OIII_5008", "NII_6585", "Ha"), 50.0)
    # [OIII]4960 follows 5008 at 1/2.98; [NII]6550 is a tied nuisance of 6585
    assert spec.lines[spec.derived[0][0]] == "OIII_4960"
    assert spec.derived[0][2] == pytest.approx(1 / 2.98)
    lams = sorted(c[1] for c in spec.components)
    assert 6549.86 in lams and 4960.30 in lams
    # Hα and [NII] share one window (one baseline); Hβ and [OIII] are separate
    assert len(spec.groups) == 3
    with pytest.raises(ValueError, match="broad"):
        linefit.make_linefit_spec(("Hb", "OII_3727_30"), 50.0, broad=("OII_3727_30",))


def test_flux_coverage_over_500_noise_draws_and_parameter_bounds(setup):
    """Fluxes within their 1σ errors in 68% ± 5% of 500 noise realisations.

    Two more spectra ride in the same (compiled once) batch: lines 5 channels away and
    lines far too broad; the fit may move only ±2 channels in redshift and ±5 channels
    in width (Paper A).
    """
    spec, edges, fit = setup
    true = np.array([40.0, 15.0, 60.0])
    clean = synth(spec, edges, true, Z, dv=35.0, sigma=140.0, base=(0.5, 0.2))
    sig = 0.6
    rng = np.random.default_rng(42)
    spectra = clean[None] + sig * rng.standard_normal((500, len(clean)))
    far = np.stack([synth(spec, edges, true, Z, dv=5 * 106.0, sigma=140.0),
                    synth(spec, edges, true, Z, sigma=1200.0)])
    r = fit(jnp.asarray(np.concatenate([spectra, far])), jnp.full((502, len(clean)), sig))
    flux, err = np.asarray(r.flux)[:500], np.asarray(r.flux_err)[:500]
    cover = np.mean(np.abs(flux - true) < err, axis=0)
    assert np.all(np.abs(cover - 0.683) < 0.05), cover
    # unbiased, and the errors match the scatter of the estimates
    bias = flux.mean(0) - true
    assert np.all(np.abs(bias) < 3 * err.mean(0) / np.sqrt(500)), bias
    np.testing.assert_allclose(flux.std(0), err.mean(0), rtol=0.1)
    dv, dv_err = np.asarray(r.dv)[:500], np.asarray(r.dv_err)[:500]
    assert np.mean(np.abs(dv - 35.0) < dv_err) == pytest.approx(0.683, abs=0.06)
    assert float(np.median(np.asarray(r.sigma)[:500])) == pytest.approx(140.0, abs=2.0)
    assert np.all(np.abs(np.asarray(r.dv)[500:]) <= 2 * 106.0 * 1.01)
    assert np.all(np.asarray(r.sigma)[500:] <= 150.0 + 5 * 106.0 * 1.01)


def test_broad_component_is_recovered():
    edges = np.asarray(jg.instrument.grid.channels_around_lines([4862.68, 5008.24], 2.0, 60.0, 8000.0))
    spec = linefit.make_linefit_spec(("Hb", "OIII_5008"), 60.0, n_channels=len(edges) - 1,
                                     broad=True, pad_kms=1500.0)
    assert spec.broad == ("Hb", "OIII_5008")
    true = np.array([20.0, 80.0])
    broad = (np.array([8.0, 25.0]), 600.0)
    clean = synth(spec, edges, true, 2.0, sigma=120.0, broad=broad)
    rng = np.random.default_rng(0)
    sig = 0.05
    spec_obs = clean + sig * rng.standard_normal(clean.shape)
    r = jax.jit(lambda f, e: linefit.fit_spectrum(spec, f, e, jnp.asarray(edges), 2.0))(
        jnp.asarray(spec_obs), jnp.full(clean.shape, sig))
    assert np.all(np.abs(np.asarray(r.flux) - true) < 4 * np.asarray(r.flux_err)), r.flux
    assert np.all(np.abs(np.asarray(r.broad_flux) - broad[0]) < 4 * np.asarray(r.broad_err)), r.broad_flux
    assert float(r.sigma_broad) == pytest.approx(600.0, rel=0.1)


def test_moving_rms_estimates_white_noise_and_masks_lines():
    rng = np.random.default_rng(3)
    n = 600
    x = rng.normal(0.0, 2.0, n) + 5.0
    x[300:310] += 200.0  # a line
    masked = np.zeros(n, bool)
    masked[295:315] = True
    rms = jax.jit(annuli.moving_rms, static_argnames=("window", "min_count"))
    e = np.asarray(rms(jnp.asarray(x), jnp.asarray(masked), window=160))
    assert np.median(e) == pytest.approx(2.0, rel=0.1)
    assert e[305] == pytest.approx(2.0, rel=0.25)  # the line does not inflate its own error
    # direct reference for one channel
    c = 400
    w = np.arange(c - 80, c + 80)
    w = w[~masked[w]]
    assert e[c] == pytest.approx(np.std(x[w], ddof=1), rel=1e-4)
    # without the mask the line inflates the RMS
    e2 = np.asarray(rms(jnp.asarray(x), jnp.zeros(n, bool), window=160))
    assert e2[305] > 5 * e[305]


def test_channel_edges_from_centres_roundtrip():
    edges = np.asarray(jg.instrument.grid.velocity_channel_edges(2.5, 50, 106.0))
    centres = np.sqrt(edges[1:] * edges[:-1])
    np.testing.assert_allclose(np.asarray(annuli.channel_edges_from_centres(jnp.asarray(centres))),
                               edges, rtol=1e-6)
