"""Dust attenuation curves: Calzetti et al. (2000) and the Gordon et al. (2003) SMC bar.

Both are evaluated at the (static) rest wavelengths of the catalogue lines in NumPy, so
inside the forward model the attenuation of line l is simply A_l = A_V * k_l / R_V with a
constant k_l — exact, cheap and differentiable in A_V.
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import lines as _lines

CALZETTI_RV = 4.05
SMC_RV = 2.74
LAWS = ("calzetti", "smc")


def calzetti_k(wavelength_um):
    """Calzetti et al. (2000) k(λ) = A_λ / E(B−V), R_V = 4.05 (their eq. 4).

    Args:
        wavelength_um: rest wavelength in µm, valid 0.12–2.2 µm.
    """
    lam = np.asarray(wavelength_um, dtype=float)
    if np.any((lam < 0.12) | (lam > 2.2)):
        raise ValueError(f"Calzetti+2000 is defined for 0.12-2.2 µm, got {wavelength_um}")
    red = 2.659 * (-1.857 + 1.040 / lam) + CALZETTI_RV
    blue = 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3) + CALZETTI_RV
    return np.where(lam >= 0.63, red, blue)


def smc_alav(wavelength_um):
    """Gordon et al. (2003) SMC-bar A_λ/A_V (R_V = 2.74), optical/NIR part.

    Follows the published construction: a natural cubic spline through the optical/NIR
    measurements (2.198 ... 0.37 µm, with the 2.198 and 1.25 µm values smoothed as in
    Gordon et al. 2016), zero at infinite wavelength, and the FM90 UV curve (C1 = −4.959,
    C2 = 2.264, C3 = 0.389, x0 = 4.6 µm⁻¹, γ = 1) at 0.27 and 0.26 µm.

    Args:
        wavelength_um: rest wavelength in µm, valid 0.27–3.3 µm.
    """
    from scipy.interpolate import CubicSpline

    lam = np.asarray(wavelength_um, dtype=float)
    if np.any((lam < 0.27) | (lam > 1 / 0.3)):
        raise ValueError(f"the SMC curve is implemented for 0.27-3.3 µm, got {wavelength_um}")
    c1, c2, c3, x0, gamma = -4.959, 2.264, 0.389, 4.6, 1.0
    x_uv = 1e4 / np.array([2700.0, 2600.0])
    ebv = c1 + c2 * x_uv + c3 * x_uv**2 / ((x_uv**2 - x0**2) ** 2 + x_uv**2 * gamma**2)
    y_uv = ebv / SMC_RV + 1.0
    x_opt = 1.0 / np.array([2.198, 1.65, 1.25, 0.81, 0.65, 0.55, 0.44, 0.37])
    y_opt = np.array([0.11, 0.169, 0.25, 0.567, 0.801, 1.00, 1.374, 1.672])
    xs = np.concatenate([[0.0], x_opt, x_uv])
    ys = np.concatenate([[0.0], y_opt, y_uv])
    return CubicSpline(xs, ys, bc_type="natural")(1.0 / lam)


def alav(wavelength_um, law: str = "calzetti"):
    """A_λ / A_V for a dust law ("calzetti" or "smc")."""
    if law == "calzetti":
        return calzetti_k(wavelength_um) / CALZETTI_RV
    if law == "smc":
        return smc_alav(wavelength_um)
    raise ValueError(f"unknown dust law {law!r}; choose one of {LAWS}")


@cache
def line_alav(line_names: tuple[str, ...], law: str = "calzetti") -> tuple[float, ...]:
    """A_line / A_V for catalogue lines (flux-weighted mean wavelength of blends)."""
    lam = np.array([_lines.get(n).wavelength for n in line_names]) / 1e4
    return tuple(float(v) for v in alav(lam, law))


def balmer_decrement_av(ratio, law: str = "calzetti", line: str = "Ha"):
    """A_V from an observed Balmer ratio X/Hβ relative to case B (Hα/Hβ = 2.86 by default).

    A_V = 2.5 log10((X/Hβ)/(X/Hβ)_B) / (A_Hβ/A_V − A_X/A_V). Negative values (ratios
    below case B) are returned as they are; clip them if you need A_V ≥ 0. NumPy in,
    NumPy (float64) out; a JAX array (or tracer) in, JAX out — the observer pipeline's
    per-annulus A_V uses the same function inside jit.
    """
    a_x, a_hb = line_alav((line, "Hb"), law)
    xp = jnp if isinstance(ratio, jax.Array) else np
    return 2.5 * xp.log10(xp.asarray(ratio) / _lines.CASE_B[line]) / (a_hb - a_x)
