"""Units at the edge: astropy Quantities in, jaxgrad's internal units inside.

Internal units (README "Conventions"): kpc for disk radii, arcsec on the sky, km/s, degrees,
magnitudes, dex; observed wavelengths in µm; fluxes in 1e-18 erg/s/cm². Every public entry
point that takes a physical value accepts either a plain number (in the internal unit) or an
astropy ``Quantity`` of any unit of the right dimension, converted here; a Quantity of the
wrong dimension is a ``ValueError`` naming the argument. Nothing is stripped silently.

    import astropy.units as u
    jg.make_params(psf_fwhm=150 * u.mas, r_e=2000 * u.pc, grad_z=-0.05 * u.dex / u.kpc)
    jg.ModelSpec(pixel_scale=50 * u.mas, cosmology=astropy.cosmology.Planck18)  # flat only
"""

from __future__ import annotations

import numpy as np

__all__ = ["PARAM_UNITS", "to_internal", "to_internal_params", "cosmology_tuple", "kpc_per_arcsec"]


def _u():
    import astropy.units as u

    return u


# internal unit of every GalaxyParams field, as an astropy unit string ("" = dimensionless)
PARAM_UNITS = {
    "logoh0": "dex", "grad_z": "dex / kpc", "av": "mag", "av_grad": "mag / kpc", "logu": "dex",
    "logu_grad": "dex / kpc", "flux_hb": "1e-18 erg / (s cm2)", "r_e": "kpc", "sersic_n": "",
    "x0": "arcsec", "y0": "arcsec", "pa": "deg", "inc": "deg", "vmax": "km / s", "r_t": "kpc",
    "sigma0": "km / s", "z": "", "psf_fwhm": "arcsec", "psf_axis_ratio": "", "psf_pa": "deg",
    "psf_beta": "", "lsf_sigma": "km / s",
}


def is_quantity(x) -> bool:
    return hasattr(x, "unit") and hasattr(x, "to_value")


def to_internal(value, unit: str, name: str):
    """``value`` in the internal ``unit`` (an astropy unit string; "" = dimensionless).

    Plain numbers and arrays pass through unchanged; a Quantity is converted, and one of
    the wrong dimension raises a ValueError naming ``name``.
    """
    if not is_quantity(value):
        return value
    u = _u()
    target = u.dimensionless_unscaled if unit == "" else u.Unit(unit)
    if unit in ("mag", "mag / kpc", "dex", "dex / kpc") and value.unit.physical_type == "dimensionless":
        return np.asarray(value.value)  # a bare number given as a dimensionless Quantity
    try:
        return np.asarray(value.to_value(target))
    except (u.UnitConversionError, u.UnitsError, TypeError):
        want = "a dimensionless number" if unit == "" else f"a quantity convertible to {target}"
        raise ValueError(f"{name} must be {want} (or a plain number in {unit or 'no unit'}), "
                         f"got a quantity in {value.unit}") from None


def to_internal_params(values: dict) -> dict:
    """Convert every Quantity among GalaxyParams fields to the internal unit."""
    return {k: to_internal(v, PARAM_UNITS[k], k) if k in PARAM_UNITS else v for k, v in values.items()}


def cosmology_tuple(cosmo) -> tuple[float, float]:
    """(H0 km/s/Mpc, Ωm) from a tuple or an astropy flat ΛCDM cosmology object."""
    if hasattr(cosmo, "H0") and hasattr(cosmo, "Om0"):
        ok0 = float(getattr(cosmo, "Ok0", 0.0))
        if abs(ok0) > 1e-6 or getattr(cosmo, "w0", -1.0) != -1.0:
            raise ValueError(f"cosmology must be a flat ΛCDM (jaxgrad's distances assume it), got {cosmo}")
        h0 = cosmo.H0.to_value("km / (s Mpc)") if is_quantity(cosmo.H0) else float(cosmo.H0)
        return float(h0), float(cosmo.Om0)
    try:
        h0, om = cosmo
        h0 = to_internal(h0, "km / (s Mpc)", "cosmology H0")
        return float(h0), float(om)
    except (TypeError, ValueError) as e:
        if isinstance(e, ValueError) and "cosmology" in str(e):
            raise
        raise ValueError(f"cosmology must be (H0 km/s/Mpc, Ωm) or an astropy FlatLambdaCDM, got {cosmo!r}") from None


def kpc_per_arcsec(z, cosmology=(70.0, 0.3)) -> np.ndarray:
    """Proper kpc per arcsec at redshift ``z`` from astropy (any astropy cosmology object,
    or (H0, Ωm) of a flat ΛCDM): the reference for :mod:`jaxgrad.physics.cosmology`."""
    from astropy.cosmology import FlatLambdaCDM

    cosmo = cosmology
    if not hasattr(cosmology, "angular_diameter_distance"):
        h0, om = cosmology_tuple(cosmology)
        cosmo = FlatLambdaCDM(H0=h0, Om0=om)
    return np.asarray(cosmo.kpc_proper_per_arcmin(np.asarray(z, float)).to_value("kpc / arcmin")) / 60.0
