"""Forward model: parameter pytree + static spec -> line-flux maps and spectral cubes."""

from jaxgrad.forward.model import (
    SamplingWarning,
    apply_psf,
    batch_cube,
    batch_line_maps,
    check_sampling,
    cube,
    cube_kernel,
    default_channels,
    grid_flux_fraction,
    intrinsic_cube_kernel,
    intrinsic_maps_kernel,
    line_maps,
    line_maps_kernel,
    line_windows,
    metallicity_map,
    radius_map,
)
from jaxgrad.forward.params import (
    FLUX_UNIT,
    GalaxyParams,
    ModelSpec,
    make_params,
    stack_params,
    validate_params,
)

__all__ = [
    "SamplingWarning", "check_sampling", "grid_flux_fraction",
    "FLUX_UNIT", "GalaxyParams", "ModelSpec", "apply_psf", "batch_cube", "batch_line_maps",
    "cube", "cube_kernel", "default_channels", "intrinsic_cube_kernel", "intrinsic_maps_kernel",
    "line_maps", "line_maps_kernel", "line_windows", "make_params", "metallicity_map", "radius_map",
    "stack_params", "validate_params",
]
