"""MAP helpers: Newton polishing from near a mode, distinct start points."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.inference.optim import POLISH, distinct_rows, find_map


def _student_potential():
    """−log of a product of Student-t (ν = 5) densities with a dense scale: not quadratic,
    so Newton needs several steps; the mode is ``mu`` and the Hessian there is
    (ν + 1)/ν · Σ⁻¹ (analytic)."""
    mu = jnp.array([0.3, -1.2, 2.0])
    a = np.array([[1.0, 0.0, 0.0], [0.6, 0.5, 0.0], [-0.3, 0.2, 0.2]])
    prec = jnp.asarray(np.linalg.inv(a @ a.T))
    nu = 5.0

    def u(x):
        d = x - mu
        return 0.5 * (nu + 3.0) * jnp.log1p(d @ prec @ d / nu)

    return jax.jit(jax.value_and_grad(u)), np.asarray(mu), np.asarray(prec) * (nu + 3.0) / nu


def test_polish_from_near_a_mode_converges_with_few_gradient_calls():
    vg, mu, hess = _student_potential()
    x0 = mu + np.array([0.4, -0.3, 0.2])  # about one to two widths away
    m = find_map(vg, x0, **POLISH)
    np.testing.assert_allclose(m.x, mu, atol=2e-3)
    # the Laplace covariance is the inverse of the analytic Hessian at the mode
    np.testing.assert_allclose(m.cov, np.linalg.inv(hess), rtol=2e-2, atol=1e-4)
    # Newton only: (2d + 1) calls per step and a final Hessian, no 300 Adam steps
    full = find_map(vg, x0)
    assert m.num_evals < 60 < full.num_evals
    np.testing.assert_allclose(m.x, full.x, atol=2e-3)


def test_polish_works_row_by_row_on_a_batch():
    vg1, mu, _ = _student_potential()

    def vg(x):  # three independent rows, as fit_population's per-galaxy potential
        v, g = jax.vmap(vg1)(x)
        return v, g

    x0 = mu[None] + np.array([[0.4, -0.3, 0.2], [-0.2, 0.1, 0.05], [0.0, 0.0, 0.0]])
    m = find_map(vg, x0, **POLISH)
    np.testing.assert_allclose(m.x, np.broadcast_to(mu, (3, 3)), atol=2e-3)


def test_distinct_rows_keeps_first_of_each_cluster_in_order():
    xs = [np.array([0.0, 0.0]), np.array([0.005, -0.002]), np.array([1.0, 0.0]),
          np.array([0.0, 0.02]), np.array([1.0, 0.009])]
    out = distinct_rows(xs)
    np.testing.assert_array_equal(out, np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.02]]))
    assert distinct_rows(xs, tol=0.5).shape == (2, 2)
