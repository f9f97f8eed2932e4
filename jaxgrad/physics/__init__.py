"""Per-spaxel physics: dust attenuation, disk geometry and kinematics, cosmology."""

from jaxgrad.physics import cosmology, disk, dust

__all__ = ["cosmology", "disk", "dust"]
