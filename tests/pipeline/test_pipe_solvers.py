"""The pipeline's small solvers against float64 references: the written-out Cholesky,
the closed-form baseline elimination of the line fit's profiled χ², the windows a line
component reaches, the geometry fit's analytic Jacobian, and a per-channel error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgrad.pipeline import _linalg, annuli, geometry, linefit


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_spd_solve_and_inverse_match_numpy(x64):
    """P ≤ 8 goes through the written-out Cholesky, 24 and 30 through LAPACK; batched by vmap
    (how the fits call it)."""
    solve = jax.jit(jax.vmap(lambda N, b: _linalg.spd_solve(N, b, eps=0.0)))
    inv = jax.jit(jax.vmap(lambda N: _linalg.spd_inv(N, eps=0.0)))
    for P in (1, 6, 8, 24, 30):
        rng = np.random.default_rng(P)
        A = rng.normal(size=(2, P, P + 4))
        N = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(P)
        b = rng.normal(size=(2, P))
        np.testing.assert_allclose(np.asarray(solve(jnp.asarray(N), jnp.asarray(b))),
                                   np.linalg.solve(N, b[..., None])[..., 0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(inv(jnp.asarray(N))), np.linalg.inv(N), rtol=1e-9, atol=1e-12)


def test_spd_solve_ridge_and_indefinite(x64):
    # a singular direction stays finite through the ridge
    N = np.diag([4.0, 0.0, 1.0])
    x = np.asarray(_linalg.spd_solve(jnp.asarray(N), jnp.asarray([4.0, 0.0, 2.0]), eps=1e-9))
    np.testing.assert_allclose(x, [1.0, 0.0, 2.0], rtol=1e-8)
    # not positive definite: NaN, as LAPACK's Cholesky gives, never a silent number
    bad = _linalg.spd_solve(jnp.asarray([[1.0, 2.0], [2.0, 1.0]]), jnp.ones(2), eps=0.0)
    assert np.all(np.isnan(np.asarray(bad)))


def _windows_setup(lines, centres_um, z, seed=0):
    from jaxgrad.pipeline import batched as pb

    spec = pb.linefit_spec_for(lines, centres_um)
    edges = annuli.channel_edges_from_centres(jnp.asarray(centres_um))
    rng = np.random.default_rng(seed)
    flux = jnp.asarray(rng.normal(size=len(centres_um)))
    err = jnp.asarray(rng.uniform(0.5, 2.0, len(centres_um)))
    ok = jnp.ones(len(centres_um), bool).at[3].set(False)
    f_w, e_w, ok_w, ed_w, u_w = linefit._windows(spec, flux, err, edges, z, ok)
    return spec, f_w, e_w, ok_w, ed_w, u_w


def test_profiled_chi2_equals_the_full_least_squares(x64):
    """Eliminating the baselines in closed form gives the χ² of the full [P, P] system,
    also with a window holding no usable channel and one holding a single channel."""
    z = 5.0
    centres = np.exp(np.linspace(np.log(2.2), np.log(3.1), 400))
    spec, f_w, e_w, ok_w, ed_w, u_w = _windows_setup(("OII_3727_30", "Hb", "OIII_5008", "NeIII_3870"),
                                                     centres, z)
    G, W = u_w.shape
    rng = np.random.default_rng(1)
    for case in ("all", "empty_window", "one_channel"):
        ok = np.asarray(ok_w).copy()
        if case == "empty_window":
            ok[1] = False
        elif case == "one_channel":
            ok[2] = False
            ok[2, W // 2] = True
        y = jnp.asarray(rng.normal(size=G * W) + 3.0 * rng.uniform(size=G * W))
        w = jnp.asarray(np.where(ok, rng.uniform(0.5, 2.0, (G, W)), 0.0).ravel())
        for nl in ([0.0, 150.0], [120.0, 300.0], [-200.0, 60.0]):
            nl = jnp.asarray(nl)
            got = float(linefit._profiled_chi2(spec, ed_w, u_w, jnp.asarray(z), nl, y, w))
            A = linefit._design(spec, ed_w, u_w, jnp.asarray(z), nl)
            # the reference: weighted least squares over the non-empty rows, float64 NumPy
            A = np.asarray(A)
            Aw = A * np.asarray(w)[None]
            keep = np.abs(Aw).sum(axis=1) > 0
            coef, *_ = np.linalg.lstsq((A[keep] * np.sqrt(np.asarray(w))[None]).T,
                                       np.asarray(y) * np.sqrt(np.asarray(w)), rcond=None)
            r = np.asarray(y) - coef @ A[keep]
            ref = float(np.sum(np.asarray(w) * r * r))
            assert got == pytest.approx(ref, rel=1e-8, abs=1e-8), (case, nl)


def test_components_reach_only_nearby_windows(x64):
    """A component is evaluated on the windows within reach (6σ at the widest σ plus the
    redshift freedom); the design matrix equals the one with every component on every
    window (float64: the skipped terms are below 1e-9 of a line's flux)."""
    z = 5.0
    centres = np.exp(np.linspace(np.log(2.2), np.log(3.1), 400))
    spec, f_w, e_w, ok_w, ed_w, u_w = _windows_setup(("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008"),
                                                     centres, z)
    # [OII] and [NeIII] lie 11 000 km/s apart: own windows only
    groups_of = {lam: ws for (_, lam, _), ws in zip(spec.components, spec.component_windows, strict=True)}
    assert all(len(ws) == 1 for lam, ws in groups_of.items() if lam < 4000)
    full = linefit.LineFitSpec(**{**spec.__dict__, "component_windows": ()})
    for nl in ([0.0, 150.0], [200.0, 700.0]):
        a = linefit._design(spec, ed_w, u_w, jnp.asarray(z), jnp.asarray(nl))
        b = linefit._design(full, ed_w, u_w, jnp.asarray(z), jnp.asarray(nl))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-9)
    # channels ten times wider: every narrow line reaches its neighbours' windows
    wide = linefit.make_linefit_spec(("Hb", "OIII_5008"), 1000.0)
    assert all(len(ws) == len(wide.groups) for ws in wide.component_windows)


def test_geometry_jacobian_is_the_derivative_of_the_residuals(x64):
    dx, dy = geometry.pixel_grid(24, 30, 0.05)
    rng = np.random.default_rng(3)
    img = jnp.asarray(rng.normal(size=(24, 30)))
    sw = jnp.asarray(rng.uniform(0.5, 1.0, (24, 30)))
    for p in ([0.3, 0.05, -0.02, np.log(0.2), np.log(0.12), 35.0],
              [-0.1, -0.1, 0.1, np.log(0.3), np.log(0.31), 170.0]):
        p = jnp.asarray(p)
        r, jt = geometry._resid_jac(p, img, sw, dx, dy)

        def resid(q):
            return ((img - geometry._gauss_model(q, dx, dy)) * sw).ravel()

        np.testing.assert_allclose(np.asarray(r), np.asarray(resid(p)), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(jt), np.asarray(jax.jacfwd(resid)(p)).T, rtol=1e-10, atol=1e-13)


def test_per_channel_error_equals_the_error_cube(x64):
    """An error the same in every spaxel, given as [C, 1, 1], sums like the full cube
    (float64: a GPU's TF32 matrix products would blur the comparison to ~1e-4)."""
    rng = np.random.default_rng(4)
    C, ny, nx, K = 7, 9, 8, 3
    cube = jnp.asarray(rng.normal(size=(C, ny, nx)))
    e_c = jnp.asarray(rng.uniform(0.5, 2.0, C))
    idx = jnp.asarray(rng.integers(0, K + 1, (ny, nx)))
    good = jnp.asarray(rng.uniform(size=(ny, nx)) > 0.2)
    weights = annuli.annulus_weights(idx, K, good, jnp.float64)
    s_full, e_full = annuli.sum_spectra(cube, jnp.broadcast_to(e_c[:, None, None], (C, ny, nx)), weights)
    s_uni, e_uni = annuli.sum_spectra(cube, e_c[:, None, None], weights)
    np.testing.assert_allclose(np.asarray(s_uni), np.asarray(s_full), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(e_uni), np.asarray(e_full), rtol=1e-12)
    # and the reference: σ_c √(pixels in the annulus)
    n = np.array([np.sum((np.asarray(idx) == k) & np.asarray(good)) for k in range(K)])
    np.testing.assert_allclose(np.asarray(e_uni), np.sqrt(n)[:, None] * np.asarray(e_c)[None], rtol=1e-12)
