"""Input/output at the edges: FITS cubes and maps with WCS and units, result tables, NetCDF.

Astropy is imported here (and not by the numerical core); everything returned is a NumPy
array in jaxgrad's internal units. See :mod:`jaxgrad.io.fits`.
"""

from jaxgrad.io.fits import (
    BUNIT_INTERNAL,
    INTERNAL_FLUX_UNIT,
    CubeData,
    FitsFileNotFoundError,
    MapsData,
    as_arcsec,
    as_um,
    flux_conversion,
    read_cube,
    read_maps,
    read_psf,
    save_idata,
    write_cube,
    write_maps,
    write_table,
)

__all__ = [
    "BUNIT_INTERNAL", "INTERNAL_FLUX_UNIT", "CubeData", "FitsFileNotFoundError", "MapsData",
    "as_arcsec", "as_um", "flux_conversion", "read_cube", "read_maps", "read_psf", "save_idata",
    "write_cube", "write_maps", "write_table",
]
