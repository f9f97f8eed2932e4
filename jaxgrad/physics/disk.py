"""Thin-disk geometry, Sérsic surface brightness and rotation curve (pure JAX).

Sky conventions (used everywhere in jaxgrad): images are ``[ny, nx]`` with x the column
index increasing to the right (towards West when North is up) and y the row index
increasing upwards (North). Offsets are in arcsec from the field centre. The position
angle PA of the major axis is measured from North (+y) through East (−x),
counter-clockwise on the sky, in degrees. The inclination i is 0 for face-on; the disk is
infinitely thin, so its projected axis ratio is b/a = cos i (floored at 1e-2 to keep the
edge-on limit finite).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammaln

Q_MIN = 1e-2


def safe_sqrt(x):
    """sqrt with a finite (zero) gradient at 0 (cf. jaxoplanet ``zero_safe_sqrt``)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def disk_coordinates(dx, dy, pa_deg, inc_deg):
    """Project sky offsets onto the disk plane.

    Args:
        dx, dy: sky offsets from the galaxy centre, arcsec (x right, y up).
        pa_deg: position angle of the major axis, degrees East of North.
        inc_deg: inclination, degrees (0 = face-on).

    Returns:
        (x_maj, y_min_deproj, cos_i): coordinate along the major axis and the
        de-projected coordinate along the minor axis (both arcsec, disk plane), and the
        axis ratio used.
    """
    pa = jnp.deg2rad(pa_deg)
    cos_i = jnp.maximum(jnp.cos(jnp.deg2rad(inc_deg)), Q_MIN)
    x_maj = -dx * jnp.sin(pa) + dy * jnp.cos(pa)
    y_min = -dx * jnp.cos(pa) - dy * jnp.sin(pa)
    return x_maj, y_min / cos_i, cos_i


def sersic_bn(n):
    """b_n of the Sérsic profile (Ciotti & Bertin 1999 asymptotic series).

    Relative error 3.6e-4 at n = 0.5, 2.5e-5 at n = 1, 1.3e-6 at n = 2 (the total flux
    normalisation is exact for the b_n used; only r_e's meaning as the half-light radius
    carries this error).
    """
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2) + 131.0 / (
        1148175.0 * n**3
    ) - 2194697.0 / (30690717750.0 * n**4)


def sersic_surface_density(r, total, r_e, n):
    """Face-on Sérsic surface density normalised to a total ``total`` over the plane.

    Σ(r) = Σ_e exp(−b_n[(r/r_e)^{1/n} − 1]),  total = 2π n Γ(2n) e^{b_n} b_n^{−2n} Σ_e r_e².

    Args:
        r: radius (same unit as r_e).
        total: integrated quantity (e.g. a flux).
        r_e: effective (half-light) radius.
        n: Sérsic index (1 = exponential disk).
    """
    bn = sersic_bn(n)
    log_norm = (jnp.log(2.0 * jnp.pi * n) + gammaln(2.0 * n) + bn - 2.0 * n * jnp.log(bn)
                + 2.0 * jnp.log(r_e))
    rr = jnp.maximum(r, 0.0) / r_e
    # (r/r_e)^(1/n) with a finite derivative at r = 0
    pw = jnp.where(rr > 0, jnp.exp(jnp.log(jnp.where(rr > 0, rr, 1.0)) / n), 0.0)
    return total * jnp.exp(-bn * (pw - 1.0) - log_norm)


def arctan_velocity_over_r(r, vmax, r_t):
    """V(r)/r for the arctan rotation curve V(r) = (2/π) V_max arctan(r / r_t).

    Returned as V/r so that the line-of-sight velocity V(r) cosθ = (V/r) x_maj is finite
    and smooth at r = 0 (limit 2 V_max / (π r_t)).
    """
    u = r / r_t
    small = u < 1e-4
    us = jnp.where(small, 1.0, u)
    ratio = jnp.where(small, 1.0 - u**2 / 3.0, jnp.arctan(us) / us)
    return 2.0 / jnp.pi * vmax * ratio / r_t


def los_velocity(x_maj, y_min_deproj, vmax, r_t, inc_deg):
    """Line-of-sight velocity (km/s) of a thin rotating disk at disk-plane coordinates.

    v_los = V(r) sin i cosθ = (V(r)/r) x_maj sin i, r = sqrt(x_maj² + y²), same length
    unit for r, r_t and the coordinates.
    """
    r = safe_sqrt(x_maj**2 + y_min_deproj**2)
    return arctan_velocity_over_r(r, vmax, r_t) * x_maj * jnp.sin(jnp.deg2rad(inc_deg))
