"""Forward model: parameter pytree + static spec -> line-flux maps and spectral cubes."""

from jaxgrad.forward.model import (
    apply_psf,
    batch_cube,
    batch_line_maps,
    cube,
    cube_kernel,
    default_channels,
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
    "FLUX_UNIT", "GalaxyParams", "ModelSpec", "apply_psf", "batch_cube", "batch_line_maps",
    "cube", "cube_kernel", "default_channels", "intrinsic_cube_kernel", "intrinsic_maps_kernel",
    "line_maps", "line_maps_kernel", "line_windows", "make_params", "metallicity_map", "radius_map",
    "stack_params", "validate_params",
]
