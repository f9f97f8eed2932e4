"""Mock generation on the forward model's jitted kernels: one vmapped call per chunk.

Mock ``i`` of a suite uses the key ``fold_in(PRNGKey(seed), i)`` for every random draw
(PSF, S/N, gradient, noise), so any mock can be regenerated alone from (spec, seed, i) and
a batch, a resumed run and a sharded run give the same numbers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.forward import GalaxyParams, ModelSpec, line_windows, make_params
from jaxgrad.forward import model as fm
from jaxgrad.instrument.noise import noise_sigma_for_snr, standard_normal
from jaxgrad.mocks.spec import SuiteSpec


class MockBatch(NamedTuple):
    """A batch of mocks (leading axis = mock).

    Attributes:
        index: mock indices ``[B]``.
        params: :class:`GalaxyParams` with ``[B]`` leaves (the truth).
        data: noisy data, ``[B, n_chan, ny, nx]`` (cube) or ``[B, n_lines, ny, nx]`` (maps).
        sigma: per-mock constant noise σ ``[B]`` (same unit as data).
        snr: drawn target S/N ``[B]``.
        two_re_over_beam: 2 R_e / PSF FWHM ``[B]``.
        extent_kpc: the measured extent r_ext(∇Z) ``[B]``, kpc (annuli beyond it are not
            used; see :mod:`jaxgrad.mocks.spec`).
    """

    index: jax.Array
    params: GalaxyParams
    data: jax.Array
    sigma: jax.Array
    snr: jax.Array
    two_re_over_beam: jax.Array
    extent_kpc: jax.Array


@lru_cache(maxsize=16)
def model_spec(suite: SuiteSpec) -> ModelSpec:
    """The forward :class:`ModelSpec` of a suite (line windows in cube mode)."""
    spec = ModelSpec(lines=suite.lines, calibration=suite.calibration, ny=suite.ny, nx=suite.nx,
                     pixel_scale=suite.pixel_scale, oversample=suite.oversample, range_check="off")
    if suite.mode == "cube":
        spec = line_windows(spec, suite.z, n_chan=suite.n_chan_per_line, dv_kms=suite.channel_kms)
    return spec


def draw_params(suite: SuiteSpec, key, index):
    """Truth parameters and S/N of mock ``index`` (traceable; scalar outputs)."""
    k = jax.random.fold_in(key, index)
    k_psf, k_snr, k_grad, _ = jax.random.split(k, 4)
    if suite.psf_fwhm is not None:  # uniform FWHM: 2R_e/beam has density ∝ 1/x²
        psf = jax.random.uniform(k_psf, (), minval=suite.psf_fwhm[0], maxval=suite.psf_fwhm[1])
    else:  # log-uniform 2R_e/beam
        x_lo, x_hi = suite.x_range()
        x = jnp.exp(jax.random.uniform(k_psf, (), minval=np.log(x_lo), maxval=np.log(x_hi)))
        psf = 2.0 * suite.r_e / (x * suite.kpc_per_arcsec())
    snr = jax.random.uniform(k_snr, (), minval=suite.snr[0], maxval=suite.snr[1])
    if suite.grad_values:
        grad = jax.random.choice(k_grad, jnp.asarray(suite.grad_values, psf.dtype))
    else:
        grad = jax.random.uniform(k_grad, (), minval=suite.grad_range[0], maxval=suite.grad_range[1])
    z0 = suite.z0_for(grad)
    base = make_params(logoh0=0.0, grad_z=0.0, av=suite.av, logu=suite.logu, flux_hb=suite.flux_hb,
                       r_e=suite.r_e, sersic_n=suite.sersic_n, pa=suite.pa, inc=suite.inc,
                       vmax=suite.vmax, r_t=suite.r_t, sigma0=suite.sigma0, z=suite.z,
                       lsf_sigma=suite.lsf_sigma)
    p = base._replace(logoh0=z0.astype(base.logoh0.dtype), grad_z=grad.astype(base.grad_z.dtype),
                      psf_fwhm=psf.astype(base.psf_fwhm.dtype))
    return p, snr


def _one(suite: SuiteSpec, key, index):
    spec = model_spec(suite)
    p, snr = draw_params(suite, key, index)
    r = fm.radius_map(p, spec)
    inner = r <= suite.r_e
    o3 = spec.lines.index("OIII_5008")
    if suite.mode == "cube":
        clean = fm.cube_kernel(p, spec)
        # channels of the [OIII]5008 window
        start = sum(len(e) - 1 for names, e in spec.windows[: _window_of(spec, "OIII_5008")])
        n = len(spec.windows[_window_of(spec, "OIII_5008")][1]) - 1
        win = jax.lax.dynamic_slice_in_dim(clean, start, n, axis=0)
        brightest = win[jnp.argmax(jnp.sum(win, axis=(1, 2)))]
        ref = brightest
    else:
        clean = fm.line_maps_kernel(p, spec)
        ref = clean[o3]
    sigma = noise_sigma_for_snr(ref, snr, inner)
    k_noise = jax.random.split(jax.random.fold_in(key, index), 4)[3]
    # jax.random.normal's non-partitionable threefry layout (1.6x faster for these
    # per-mock [C, ny, nx] draws on CPU than the partitionable one), drawn bit for bit
    # by standard_normal with the rounds unrolled (another 1.25x); each mock has its own
    # key, so batches, sharding and regenerating one mock alone all give the same noise
    noise = standard_normal(k_noise, clean.shape, clean.dtype)
    data = clean + sigma * noise
    beam_kpc = p.psf_fwhm * suite.kpc_per_arcsec()
    return MockBatch(index=index, params=p, data=data, sigma=sigma, snr=snr,
                     two_re_over_beam=2.0 * suite.r_e / beam_kpc, extent_kpc=suite.extent_kpc(p.grad_z))


def _window_of(spec: ModelSpec, line: str) -> int:
    for i, (names, _) in enumerate(spec.windows):
        if line in names:
            return i
    raise ValueError(f"{line} is in no window")


@lru_cache(maxsize=16)
def _batched(suite: SuiteSpec):
    return jax.jit(jax.vmap(lambda key, i: _one(suite, key, i), in_axes=(None, 0)))


def generate(suite: SuiteSpec, seed: int, indices, sharding=None) -> MockBatch:
    """Generate the mocks with the given indices in one jitted, vmapped call.

    Args:
        suite: the suite spec.
        seed: integer seed of the suite.
        indices: 1-D integer array of mock indices.
        sharding: optional ``jax.sharding.Sharding`` for the batch axis (see
            :func:`jaxgrad.mocks.suite.batch_sharding`); results do not depend on it.
    """
    idx = jnp.asarray(np.asarray(indices, dtype=np.int32))
    if sharding is not None:
        idx = jax.device_put(idx, sharding)
    return _batched(suite)(jax.random.PRNGKey(seed), idx)


@lru_cache(maxsize=16)
def _single(suite: SuiteSpec):
    return jax.jit(lambda key, i: _one(suite, key, i))


def generate_one(suite: SuiteSpec, seed: int, index: int) -> MockBatch:
    """Regenerate mock ``index`` alone (scalar leaves)."""
    return _single(suite)(jax.random.PRNGKey(seed), jnp.int32(index))
