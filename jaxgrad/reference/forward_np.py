"""Independent float64 NumPy/SciPy reference of the jaxgrad forward model.

This module re-implements, from the documented conventions only, what
:mod:`jaxgrad.forward.model` computes, so the JAX code can be checked against it
(``tests/test_reference_forward.py``). It is deliberately written differently:

* the angular scale comes from :func:`scipy.integrate.quad` (not Gauss–Legendre);
* the Sérsic normalisation uses :func:`scipy.special.gamma` directly (not log-gamma);
* line ratios are evaluated from the raw calibration coefficients (``Diagnostic.coeffs``,
  ``x_offset``, ``form``, ``log_offset``) and the raw ionisation surfaces
  (:func:`jaxgrad.calibrations.ionisation.surfaces`) by explicit power sums;
* each line component is integrated over each channel with :func:`scipy.stats.norm.cdf`;
* every PSF is turned into a 2-D kernel and applied by direct real-space convolution
  (explicit loop over kernel offsets, zero padding), never by FFT or dense matrices.

Only constant tables are taken from jaxgrad: :mod:`jaxgrad.lines` (wavelengths, blend
weights, case-B and doublet ratios), the calibration coefficients and line recipes
(:meth:`jaxgrad.calibrations.Calibration.line_recipe`), the ionisation-surface
coefficients, and the dust constants :func:`jaxgrad.physics.dust.line_alav` (tested
separately). Nothing here imports jaxgrad.forward, jaxgrad.instrument,
jaxgrad.physics.disk or jaxgrad.physics.cosmology.

Model (see :mod:`jaxgrad.forward.model`), per sub-pixel at sky offset (dx, dy) arcsec
from the galaxy centre (x = column, to the right; y = row, up):

* x_maj = −dx sin PA + dy cos PA,  y = (−dx cos PA − dy sin PA) / max(cos i, 1e-2),
  r = sqrt(x_maj² + y²) × kpc_per_arcsec(z);
* 12+log(O/H)(r) = logoh0 + grad_z r; log U(r) = logu + logu_grad r;
  A_V(r) = max(av + av_grad r, 0);
* Hβ(sub-pixel) = Σ_Sérsic(r) × (s/k × kpc_per_arcsec)² / cos i;
* F_l = Hβ × 10^{log(F_l/F_Hβ)(Z, U)} × 10^{−0.4 A_V(r) A_l/A_V};
* sub-pixels are summed into pixels; maps (or cube channels) are convolved with the PSF.

All arithmetic is float64. Like the JAX model, the reference extrapolates the
calibration polynomials and the (quartic in log U) ionisation surfaces to every radius of
the field, so far-out sub-pixels of steep Z / log U gradients (or of nearly edge-on disks,
whose de-projected radii reach hundreds of kpc) can get absurd line ratios (10^±100) and
overflow; keep test parameters inside a sane extrapolation range.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special, stats

from jaxgrad import calibrations as _cal
from jaxgrad import lines as _lines
from jaxgrad.calibrations import ionisation as _ion
from jaxgrad.physics.dust import line_alav as _line_alav

__all__ = [
    "C_KM_S",
    "kpc_per_arcsec",
    "sersic_bn",
    "sersic_surface_density",
    "fine_geometry",
    "line_log_ratios",
    "intrinsic_line_maps",
    "intrinsic_cube",
    "gaussian_kernel_1d",
    "psf_kernel",
    "convolve_direct",
    "reference_line_maps",
    "reference_cube",
]

C_KM_S = 299792.458  # speed of light, km/s
ARCSEC_PER_RAD = 180.0 * 3600.0 / math.pi
COS_I_MIN = 1e-2
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
PSF_SUBSAMPLE = 5  # sub-samples per pixel and axis of the elliptical / Moffat kernels


# --------------------------------------------------------------------------- physics
def kpc_per_arcsec(z: float, h0: float = 70.0, om0: float = 0.3) -> float:
    """Proper kpc per arcsec in flat ΛCDM (no radiation), by adaptive quadrature."""
    z = float(z)

    def inv_e(zp):
        return 1.0 / math.sqrt(om0 * (1.0 + zp) ** 3 + (1.0 - om0))

    integral, _ = integrate.quad(inv_e, 0.0, z, epsabs=0.0, epsrel=1e-13, limit=200)
    d_c = C_KM_S / h0 * integral  # comoving distance, Mpc
    d_a = d_c / (1.0 + z)
    return d_a * 1e3 / ARCSEC_PER_RAD


def sersic_bn(n: float) -> float:
    """Ciotti & Bertin (1999) asymptotic series for b_n."""
    return (2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)
            + 131.0 / (1148175.0 * n**3) - 2194697.0 / (30690717750.0 * n**4))


def sersic_surface_density(r, total: float, r_e: float, n: float):
    """Σ(r) = total exp(−b_n((r/r_e)^{1/n} − 1)) / (2π n Γ(2n) e^{b_n} b_n^{−2n} r_e²)."""
    bn = sersic_bn(n)
    norm = 2.0 * math.pi * n * special.gamma(2.0 * n) * math.exp(bn) * bn ** (-2.0 * n) * r_e**2
    rr = np.maximum(np.asarray(r, float), 0.0) / r_e
    return total * np.exp(-bn * (rr ** (1.0 / n) - 1.0)) / norm


def fine_geometry(p: dict, spec):
    """Disk-plane coordinates on the oversampled grid.

    Returns:
        dict with ``x_maj``, ``y_min`` (de-projected), ``r`` (all kpc, ``[ny*k, nx*k]``),
        ``cos_i`` and ``scale`` (kpc/arcsec).
    """
    k, s = spec.oversample, spec.pixel_scale
    ox = ((np.arange(spec.nx * k) + 0.5) / k - spec.nx / 2.0) * s
    oy = ((np.arange(spec.ny * k) + 0.5) / k - spec.ny / 2.0) * s
    dx = ox[None, :] - p["x0"]
    dy = oy[:, None] - p["y0"]
    dx, dy = np.broadcast_arrays(dx, dy)
    pa = math.radians(p["pa"])
    cos_i = max(math.cos(math.radians(p["inc"])), COS_I_MIN)
    x_maj = -dx * math.sin(pa) + dy * math.cos(pa)
    y_min = (-dx * math.cos(pa) - dy * math.sin(pa)) / cos_i
    scale = kpc_per_arcsec(p["z"], *spec.cosmology)
    x_maj, y_min = x_maj * scale, y_min * scale
    r = np.hypot(x_maj, y_min)
    return {"x_maj": x_maj, "y_min": y_min, "r": r, "cos_i": cos_i, "scale": scale}


# --------------------------------------------------------------------------- chemistry
def _diagnostic_log_ratio(d, logoh):
    """log R of one calibration diagnostic from its raw coefficients (float64)."""
    z = np.asarray(logoh, float)
    if d.form == "Z_linear":  # Z = c0 + c1 log R  ->  log R = (Z − c0) / c1
        c0, c1 = d.coeffs
        return (z - c0) / c1 + d.log_offset
    x = z - d.x_offset if d.form == "poly_x" else z
    if d.form == "poly_Z" and d.x_offset:
        raise ValueError(f"poly_Z diagnostic {d.name} with a non-zero x_offset")
    out = np.zeros_like(x)
    for i, c in enumerate(d.coeffs):
        out = out + c * x**i
    return out + d.log_offset


def _species_delta(species: str, logoh, logu):
    """Ionisation response of one species: Σ_k c_k u^pu_k x^px_k (x = Z − 8, u = log U + 2.5)."""
    s = _ion.surfaces()
    x = np.asarray(logoh, float) - s["x_offset"]
    u = np.asarray(logu, float) - s["logu_ref"]
    out = np.zeros(np.broadcast_shapes(x.shape, u.shape))
    for c, (pu, px) in zip(s["species"][species]["coeffs"], s["terms_pu_px"], strict=True):
        out = out + c * u**pu * x**px
    return out


def _ionisation_delta(diagnostic: str, logoh, logu):
    num, den = _ion.DIAGNOSTIC_SPECIES[diagnostic]
    out = 0.0
    for sp in num:
        out = out + _species_delta(sp, logoh, logu)
    for sp in den:
        out = out - _species_delta(sp, logoh, logu)
    return out


def line_log_ratios(calibration: str, lines, logoh, logu=None):
    """log10(F_line / F_Hβ), ``[n_lines, *shape]`` (dust-free), float64.

    Balmer lines take case-B ratios; other lines the signed sum of the calibration's
    diagnostics given by its line recipe (each with the ionisation term when ``logu`` is
    given), plus log(Hα/Hβ) for lines referenced to Hα ([NII], [SII]) and the fixed
    doublet ratios for [OIII]4960 and [NII]6550.
    """
    cal = _cal.get(calibration)
    z = np.asarray(logoh, float)
    shape = z.shape if logu is None else np.broadcast_shapes(z.shape, np.shape(logu))
    out = []
    for ln in lines:
        if ln in _lines.CASE_B:
            out.append(np.full(shape, math.log10(_lines.CASE_B[ln])))
            continue
        recipe = cal.line_recipe(ln)
        if recipe is None:
            raise ValueError(f"{calibration} cannot predict {ln}")
        val = np.zeros(shape)
        for dname, sign in recipe:
            term = _diagnostic_log_ratio(cal.diagnostic(dname), z)
            if logu is not None:
                term = term + _ionisation_delta(dname, z, logu)
            val = val + sign * term
        if ln in ("NII_6585", "NII_6550", "SII_6718_33"):
            val = val + math.log10(_lines.CASE_B["Ha"])
        if ln == "OIII_4960":
            val = val - math.log10(_lines.OIII_RATIO)
        if ln == "NII_6550":
            val = val - math.log10(_lines.NII_RATIO)
        out.append(val)
    return np.stack(out)


def _fine_line_fluxes(p: dict, spec):
    """Attenuated line fluxes per sub-pixel ``[n_lines, ny*k, nx*k]`` and the geometry."""
    g = fine_geometry(p, spec)
    r = g["r"]
    logoh = p["logoh0"] + p["grad_z"] * r
    logu = p["logu"] + p["logu_grad"] * r if spec.use_logu else None
    log_ratio = line_log_ratios(spec.calibration, spec.lines, logoh, logu)
    sub_area = (spec.pixel_scale / spec.oversample * g["scale"]) ** 2  # kpc² per sub-pixel
    hb = sersic_surface_density(r, p["flux_hb"], p["r_e"], p["sersic_n"]) * sub_area / g["cos_i"]
    av = np.maximum(p["av"] + p["av_grad"] * r, 0.0)
    alav = np.asarray(_line_alav(tuple(spec.lines), spec.dust_law), float)
    flux = np.empty((len(spec.lines),) + r.shape)
    for i in range(len(spec.lines)):
        flux[i] = hb * 10.0 ** log_ratio[i] * 10.0 ** (-0.4 * av * alav[i])
    return flux, g


def _bin_subpixels(fine, k: int):
    """Sum k×k sub-pixels into pixels (explicit loop over the sub-pixel offsets)."""
    fy, fx = fine.shape[-2:]
    out = np.zeros(fine.shape[:-2] + (fy // k, fx // k))
    for a in range(k):
        for b in range(k):
            out += fine[..., a::k, b::k]
    return out


def intrinsic_line_maps(p: dict, spec):
    """Line-flux maps before the PSF, ``[n_lines, ny, nx]``."""
    flux, _ = _fine_line_fluxes(p, spec)
    return _bin_subpixels(flux, spec.oversample)


def _los_velocity(g: dict, p: dict):
    """v_los = (2/π) V_max arctan(r/r_t) (x_maj / r) sin i (km/s), → 2V_max x_maj/(π r_t) at r = 0."""
    r, x_maj = g["r"], g["x_maj"]
    pos = r > 0
    v_over_r = np.where(pos, 2.0 / math.pi * p["vmax"] * np.arctan(r / p["r_t"]) / np.where(pos, r, 1.0),
                        2.0 * p["vmax"] / (math.pi * p["r_t"]))
    return v_over_r * x_maj * math.sin(math.radians(p["inc"]))


def intrinsic_cube(p: dict, spec):
    """Spectral cube before the PSF, ``[n_chan, ny, nx]`` (flux per channel per pixel)."""
    if spec.channel_edges is None:
        raise ValueError("spec has no channel_edges")
    edges = np.asarray(spec.channel_edges, float)
    flux, g = _fine_line_fluxes(p, spec)
    v = _los_velocity(g, p)
    sig_v = math.sqrt(p["sigma0"] ** 2 + p["lsf_sigma"] ** 2)
    fine = np.zeros((len(edges) - 1,) + v.shape)
    for i, name in enumerate(spec.lines):
        line = _lines.get(name)
        for lam_aa, w in zip(line.components, line.weights, strict=True):
            mu = lam_aa / 1e4 * (1.0 + p["z"]) * (1.0 + v / C_KM_S)  # µm
            sig = mu * sig_v / C_KM_S
            for c in range(len(edges) - 1):
                frac = stats.norm.cdf(edges[c + 1], loc=mu, scale=sig) - stats.norm.cdf(edges[c], loc=mu, scale=sig)
                fine[c] += flux[i] * w * frac
    return _bin_subpixels(fine, spec.oversample)


# --------------------------------------------------------------------------- PSF
def gaussian_kernel_1d(n: int, pixel_scale: float, fwhm: float):
    """Pixel-integrated Gaussian on offsets −(n−1)…(n−1) pixels, unit sum."""
    sigma = fwhm * FWHM_TO_SIGMA / pixel_scale
    d = np.arange(-(n - 1), n, dtype=float)
    k = stats.norm.cdf((d + 0.5) / sigma) - stats.norm.cdf((d - 0.5) / sigma)
    return k / k.sum()


def _subsampled_kernel(ny: int, nx: int, pixel_scale: float, profile):
    """2-D kernel ``[2ny−1, 2nx−1]``: profile(dx, dy) (arcsec) summed over 5×5 sub-samples."""
    sub = (np.arange(PSF_SUBSAMPLE) + 0.5) / PSF_SUBSAMPLE - 0.5
    ker = np.zeros((2 * ny - 1, 2 * nx - 1))
    oy = np.arange(-(ny - 1), ny, dtype=float)
    ox = np.arange(-(nx - 1), nx, dtype=float)
    for sy in sub:
        for sx in sub:
            dy = (oy + sy)[:, None] * pixel_scale
            dx = (ox + sx)[None, :] * pixel_scale
            ker += profile(dx, dy)
    return ker / ker.sum()


def psf_kernel(p: dict, spec, psf_image=None):
    """The PSF as a 2-D kernel (odd sizes, centre at the middle, row index = +y offset)."""
    ny, nx, s = spec.ny, spec.nx, spec.pixel_scale
    m = spec.psf_model
    if m == "gaussian":
        return np.outer(gaussian_kernel_1d(ny, s, p["psf_fwhm"]), gaussian_kernel_1d(nx, s, p["psf_fwhm"]))
    if m == "elliptical":
        pa = math.radians(p["psf_pa"])
        s_maj = p["psf_fwhm"] * FWHM_TO_SIGMA
        s_min = s_maj * p["psf_axis_ratio"]

        def prof(dx, dy):
            u = -dx * math.sin(pa) + dy * math.cos(pa)
            v = -dx * math.cos(pa) - dy * math.sin(pa)
            return np.exp(-0.5 * ((u / s_maj) ** 2 + (v / s_min) ** 2))

        return _subsampled_kernel(ny, nx, s, prof)
    if m == "moffat":
        beta = p["psf_beta"]
        alpha = p["psf_fwhm"] / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))

        def prof(dx, dy):
            return (1.0 + (dx**2 + dy**2) / alpha**2) ** (-beta)

        return _subsampled_kernel(ny, nx, s, prof)
    if m == "image":
        if psf_image is None:
            raise ValueError("psf_model='image' needs psf_image")
        img = np.asarray(psf_image, float)
        if img.ndim != 2 or img.shape[0] % 2 == 0 or img.shape[1] % 2 == 0:
            raise ValueError("psf_image must be 2-D with odd sizes")
        return img / img.sum()
    raise ValueError(f"unknown psf_model {m!r}")


def convolve_direct(stack, kernel):
    """'Same'-size zero-padded convolution by an explicit loop over kernel offsets.

    out[..., y, x] = Σ_{dy, dx} K[dy, dx] · in[..., y − dy, x − dx], with the kernel
    centre (ky//2, kx//2) at offset (0, 0) and zero outside the field.
    """
    stack = np.asarray(stack, float)
    kernel = np.asarray(kernel, float)
    ny, nx = stack.shape[-2:]
    ky, kx = kernel.shape
    cy, cx = ky // 2, kx // 2
    out = np.zeros_like(stack)
    for a in range(ky):
        dy = a - cy
        y0, y1 = max(0, dy), min(ny, ny + dy)  # output rows with a source row inside
        if y0 >= y1:
            continue
        for b in range(kx):
            dx = b - cx
            x0, x1 = max(0, dx), min(nx, nx + dx)
            if x0 >= x1 or kernel[a, b] == 0.0:
                continue
            out[..., y0:y1, x0:x1] += kernel[a, b] * stack[..., y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return out


# --------------------------------------------------------------------------- public
def _as_float_dict(params) -> dict:
    if hasattr(params, "_asdict"):
        params = params._asdict()
    return {k: float(np.asarray(v, dtype=float)) for k, v in params.items()}


def reference_line_maps(params_dict, spec, psf_image=None) -> np.ndarray:
    """PSF-convolved line-flux maps ``[n_lines, ny, nx]`` (float64 reference).

    Args:
        params_dict: mapping of every :class:`jaxgrad.GalaxyParams` field to a scalar
            (e.g. ``make_params(...)._asdict()``).
        spec: a :class:`jaxgrad.ModelSpec` (only its fields are read).
        psf_image: the PSF image for ``psf_model='image'``.
    """
    p = _as_float_dict(params_dict)
    return convolve_direct(intrinsic_line_maps(p, spec), psf_kernel(p, spec, psf_image))


def reference_cube(params_dict, spec, psf_image=None) -> np.ndarray:
    """PSF-convolved spectral cube ``[n_chan, ny, nx]`` (float64 reference)."""
    p = _as_float_dict(params_dict)
    return convolve_direct(intrinsic_cube(p, spec), psf_kernel(p, spec, psf_image))
