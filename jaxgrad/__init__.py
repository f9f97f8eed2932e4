"""jaxgrad: differentiable forward models and hierarchical inference of galaxy
metallicity gradients, in JAX.

Quick start::

    import jaxgrad as jg
    spec = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), calibration="sanders24")
    params = jg.make_params(logoh0=8.0, grad_z=-0.05, psf_fwhm=0.2)
    maps = jg.line_maps(params, spec)          # [n_lines, ny, nx]
"""

from jaxgrad import calibrations, forward, instrument, lines, physics
from jaxgrad.forward import (
    GalaxyParams,
    ModelSpec,
    batch_cube,
    batch_line_maps,
    cube,
    default_channels,
    line_maps,
    line_windows,
    make_params,
    stack_params,
)

__version__ = "0.1.0"
__all__ = [
    "GalaxyParams", "ModelSpec", "batch_cube", "batch_line_maps", "calibrations", "cube",
    "default_channels", "forward", "instrument", "line_maps", "line_windows", "lines", "make_params",
    "physics", "stack_params", "__version__",
]
