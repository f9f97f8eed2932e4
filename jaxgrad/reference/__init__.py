"""Independent float64 NumPy reference implementations used to validate the JAX code.

:mod:`jaxgrad.reference.forward_np` re-implements the forward model (line maps and
cubes) with SciPy quadrature, explicit channel integration and direct real-space PSF
convolution; see ``tests/test_reference_forward.py``.
"""

from jaxgrad.reference.forward_np import reference_cube, reference_line_maps

__all__ = ["reference_cube", "reference_line_maps"]
