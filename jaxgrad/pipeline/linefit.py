"""Emission-line fitting of 1-D spectra (summed annuli, bins or spaxels), traceable.

Paper A's recipe (docs/science.md §6): one Gaussian per line on a linear baseline; all lines
share one redshift (allowed to move ±2 channels from the input redshift) and one width
(±5 channels about its initial value); doublets tied at their fixed ratios ([OIII]
5008/4960 = 2.98, [NII] 6585/6550 = 3.071; the [OII] and [SII] blends keep the component
split of :mod:`jaxgrad.lines`); optionally a broad component (shared broad width) for
Hα, Hβ and [OIII].

Model. Every Gaussian is integrated over each channel (difference of error functions, as
the forward model does), so a line's amplitude is its total flux in the flux unit of the
spectrum (flux per channel summed over channels). Lines close in wavelength are grouped;
each group is fitted in one window of ``window`` channels (fixed, so shapes are static)
with its own linear baseline. The model is linear in fluxes and baselines, non-linear in
(Δv, σ[, σ_broad]); the fit

1. profiles the linear parameters out (weighted linear least squares) on a grid of the
   non-linear ones, then zooms in around the best point (``n_zoom`` rounds);
2. polishes all parameters with damped Gauss–Newton steps (bounds enforced);
3. takes errors from the Jacobian at the optimum, Cov = (Jᵀ W J)⁻¹ over all parameters
   (fluxes, baselines, Δv, σ), so the flux errors include the covariance with the shared
   redshift and width.

Everything is a pure function of one spectrum; vmap over annuli and galaxies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad import lines as _lines
from jaxgrad.pipeline._linalg import spd_inv, spd_solve

__all__ = ["LineFitSpec", "make_linefit_spec", "LineFitResult", "fit_spectrum",
           "spectrum_model", "BROAD_CAPABLE"]

C_KM_S = 299792.458
SQRT2 = math.sqrt(2.0)
BROAD_CAPABLE = ("Ha", "Hb", "OIII_5008")
# tied doublet partners: line -> (partner, partner flux / line flux); primaries first
_PRIMARY = {"OIII_4960": ("OIII_5008", _lines.OIII_RATIO), "NII_6550": ("NII_6585", _lines.NII_RATIO)}
_PARTNER = {"OIII_5008": ("OIII_4960", 1.0 / _lines.OIII_RATIO),
            "NII_6585": ("NII_6550", 1.0 / _lines.NII_RATIO),
            "OIII_4960": ("OIII_5008", _lines.OIII_RATIO),
            "NII_6550": ("NII_6585", _lines.NII_RATIO)}


@dataclass(frozen=True)
class LineFitSpec:
    """Static description of a line fit (hashable). Build with :func:`make_linefit_spec`.

    Attributes:
        lines: line names reported (fluxes come out in this order).
        free: indices (into ``lines``) of lines with a free flux.
        derived: (line index, free index, factor): lines whose flux is tied to a free one.
        components: (free index, rest wavelength Å, weight) of every narrow component,
            including tied doublet partners.
        broad: names of lines with a broad component.
        broad_components: (broad index, rest wavelength Å, weight).
        groups: (rest λ_lo, rest λ_hi) Å of each fitting window (padded, merged).
        window: channels per window.
        sigma_init_kms: initial line σ (km/s; intrinsic ⊕ LSF).
        dv_max_chan: redshift freedom, ± channels.
        dsigma_chan: width freedom, ± channels about ``sigma_init_kms``.
        broad_sigma_kms: (lo, hi) range of the broad σ, km/s.
        n_dv, n_sigma, n_sigma_broad: coarse grid sizes; n_zoom: zoom rounds;
        n_newton: Gauss–Newton polishing steps.
        component_windows: for each narrow component, the windows its profile can reach
            (within 6σ at the widest σ allowed plus the redshift freedom; beyond that a
            float32 erf is exactly ±1, so the profile is exactly zero there). Empty: every
            component on every window.
    """

    lines: tuple[str, ...]
    free: tuple[int, ...]
    derived: tuple[tuple[int, int, float], ...]
    components: tuple[tuple[int, float, float], ...]
    broad: tuple[str, ...]
    broad_components: tuple[tuple[int, float, float], ...]
    groups: tuple[tuple[float, float], ...]
    window: int
    sigma_init_kms: float = 150.0
    dv_max_chan: float = 2.0
    dsigma_chan: float = 5.0
    broad_sigma_kms: tuple[float, float] = (300.0, 1500.0)
    n_dv: int = 7
    n_sigma: int = 5
    n_sigma_broad: int = 5
    n_zoom: int = 2
    n_newton: int = 4
    component_windows: tuple[tuple[int, ...], ...] = ()

    @property
    def n_free(self) -> int:
        return len(self.free)

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_linear(self) -> int:
        return self.n_free + 2 * self.n_groups + len(self.broad)

    @property
    def n_nonlinear(self) -> int:
        return 3 if self.broad else 2


def _components(name):
    ln = _lines.get(name)
    return list(zip(ln.components, ln.weights, strict=True))


def make_linefit_spec(lines, channel_kms: float, *, broad=(), sigma_init_kms: float = 150.0,
                      pad_kms: float = 1500.0, dv_max_chan: float = 2.0,
                      dsigma_chan: float = 5.0, broad_sigma_kms=(300.0, 1500.0),
                      n_channels: int | None = None, channel_centres_um=None, **grid) -> LineFitSpec:
    """Build a :class:`LineFitSpec` (edge; plain Python).

    Args:
        lines: line names to report.
        channel_kms: the narrowest channel width of the data in km/s (sets the window
            length and the meaning of "± channels").
        broad: lines (among :data:`BROAD_CAPABLE` and ``lines``) given a broad
            component; ``True`` for all capable lines present.
        sigma_init_kms: initial σ (km/s) of the narrow lines, intrinsic ⊕ LSF.
        pad_kms: baseline margin beyond the outermost components of a window (km/s).
        dv_max_chan: redshift freedom in channels (Paper A: 2).
        dsigma_chan: width freedom in channels (Paper A: 5).
        broad_sigma_kms: (lo, hi) range of the broad σ (km/s).
        n_channels: number of channels of the data (caps the window length).
        channel_centres_um: the data's channel centres (µm, increasing), if known: the
            window length is then capped at the most channels any window's wavelength
            interval can hold at any redshift (+2) — much shorter than the span over the
            narrowest channel for grids with gaps, e.g. cubes cut into one window per line.
        **grid: ``n_dv``, ``n_sigma``, ``n_sigma_broad``, ``n_zoom``, ``n_newton``.
    """
    lines = _lines.validate(lines)
    if not (channel_kms > 0):
        raise ValueError(f"channel_kms must be > 0, got {channel_kms!r}")
    if not (sigma_init_kms > 0):
        raise ValueError(f"sigma_init_kms must be > 0, got {sigma_init_kms!r}")
    free, derived = [], []
    for i, n in enumerate(lines):
        if n in _PRIMARY and _PRIMARY[n][0] in lines:
            continue
        free.append(i)
    fpos = {lines[i]: j for j, i in enumerate(free)}
    for i, n in enumerate(lines):
        if n in _PRIMARY and _PRIMARY[n][0] in lines:
            prim = _PRIMARY[n][0]
            derived.append((i, fpos[prim], 1.0 / _PRIMARY[n][1]))
    comps = []
    for j, i in enumerate(free):
        n = lines[i]
        for lam, w in _components(n):
            comps.append((j, float(lam), float(w)))
        if n in _PARTNER:
            pn, fac = _PARTNER[n]
            for lam, w in _components(pn):
                comps.append((j, float(lam), float(w * fac)))
    if broad is True:
        broad = tuple(n for n in BROAD_CAPABLE if n in lines and lines.index(n) in free)
    broad = tuple(broad or ())
    for n in broad:
        if n not in BROAD_CAPABLE:
            raise ValueError(f"a broad component is available for {BROAD_CAPABLE}, got {n!r}")
        if n not in lines or lines.index(n) not in free:
            raise ValueError(f"broad line {n!r} must be among the fitted lines {lines}")
    bcomps = []
    for j, n in enumerate(broad):
        for lam, w in _components(n):
            bcomps.append((j, float(lam), float(w)))
        if n in _PARTNER:
            pn, fac = _PARTNER[n]
            for lam, w in _components(pn):
                bcomps.append((j, float(lam), float(w * fac)))
    # windows: each free line's components, padded, merged where they overlap
    extra = 3.0 * broad_sigma_kms[1] if broad else 0.0
    ivs = []
    for j in range(len(free)):
        lam = [c[1] for c in comps if c[0] == j]
        p = pad_kms + (extra if lines[free[j]] in broad else 0.0)
        ivs.append((min(lam) * math.exp(-p / C_KM_S), max(lam) * math.exp(p / C_KM_S)))
    ivs.sort()
    groups = []
    for lo, hi in ivs:
        if groups and lo <= groups[-1][1]:
            groups[-1] = (groups[-1][0], max(groups[-1][1], hi))
        else:
            groups.append((lo, hi))
    span = max(math.log(hi / lo) * C_KM_S for lo, hi in groups)
    window = int(math.ceil(span / channel_kms)) + 4
    window += window % 2
    if n_channels is not None:
        window = min(window, int(n_channels))
    if channel_centres_um is not None:
        logc = np.log(np.asarray(channel_centres_um, float))
        occupancy = max(int(np.max(np.searchsorted(logc, logc + math.log(hi / lo) + 1e-12, side="right")
                                   - np.arange(logc.size))) for lo, hi in groups)
        window = min(window, occupancy + 2)
    # windows each narrow component can reach: the design matrix keeps its zeros out of
    # the erf evaluations (about 1/G of them for G windows far apart)
    reach = math.exp((6.0 * (sigma_init_kms + dsigma_chan * channel_kms)
                      + dv_max_chan * channel_kms) / C_KM_S)
    comp_win = tuple(tuple(g for g, (lo, hi) in enumerate(groups) if lo / reach <= lam <= hi * reach)
                     for _, lam, _ in comps)
    return LineFitSpec(lines=lines, free=tuple(free), derived=tuple(derived),
                       components=tuple(comps), broad=broad, broad_components=tuple(bcomps),
                       groups=tuple(groups), window=window,
                       sigma_init_kms=float(sigma_init_kms), dv_max_chan=float(dv_max_chan),
                       dsigma_chan=float(dsigma_chan),
                       broad_sigma_kms=tuple(float(v) for v in broad_sigma_kms),
                       component_windows=comp_win, **grid)


class LineFitResult(NamedTuple):
    """Result of one spectrum's line fit.

    Fields:
        flux, flux_err: ``[L]`` line fluxes and 1σ (unit of the spectrum × channels,
            i.e. total flux), ordered as ``spec.lines``; tied lines follow their primary.
        snr: ``[L]`` flux / flux_err (0 where the error is not finite).
        dv, dv_err: velocity offset from the input redshift and 1σ, km/s.
        sigma, sigma_err: shared line σ and 1σ, km/s (observed, includes the LSF).
        broad_flux, broad_err: ``[B]`` broad-component fluxes and 1σ.
        sigma_broad: broad σ, km/s (NaN without broad components).
        chi2, n_used: χ² and number of channels fitted.
    """

    flux: jax.Array
    flux_err: jax.Array
    snr: jax.Array
    dv: jax.Array
    dv_err: jax.Array
    sigma: jax.Array
    sigma_err: jax.Array
    broad_flux: jax.Array
    broad_err: jax.Array
    sigma_broad: jax.Array
    chi2: jax.Array
    n_used: jax.Array


# ----------------------------------------------------------------------------- windows
def _windows(spec: LineFitSpec, flux, err, edges, z, chan_ok):
    """Cut the fixed-length windows: flux/err/ok ``[G, W]``, edges ``[G, W+1]``, u ``[G, W]``."""
    C = flux.shape[0]
    W = spec.window
    centres = 0.5 * (edges[1:] + edges[:-1])
    out = []
    for lo, hi in spec.groups:
        lam_c = math.sqrt(lo * hi) / 1e4 * (1.0 + z)
        # centred on the channels inside the group's interval (W holds them all)
        i_lo = jnp.searchsorted(centres, lo / 1e4 * (1.0 + z))
        i_hi = jnp.searchsorted(centres, hi / 1e4 * (1.0 + z), side="right")
        i0 = jnp.clip((i_lo + i_hi) // 2 - W // 2, 0, C - W)
        f = jax.lax.dynamic_slice(flux, (i0,), (W,))
        e = jax.lax.dynamic_slice(err, (i0,), (W,))
        ok = jax.lax.dynamic_slice(chan_ok, (i0,), (W,))
        ed = jax.lax.dynamic_slice(edges, (i0,), (W + 1,))
        cw = 0.5 * (ed[1:] + ed[:-1])
        inside = (cw >= lo / 1e4 * (1.0 + z)) & (cw <= hi / 1e4 * (1.0 + z))
        u = (cw - lam_c) / (0.5 * (ed[-1] - ed[0]))
        out.append((f, e, ok & inside, ed, u))
    return [jnp.stack(x) for x in zip(*out, strict=True)]


def _summed_profiles(comps, n_rows: int, edges_w, z, dv, sig_kms, windows=()):
    """``[n_rows, G, W]``: row j = Σ over components (j, λ, w) of w × the unit Gaussian
    integrated over each channel (difference of its CDF at the channel edges).

    ``windows`` (static; for each component, the windows it can reach, see
    :attr:`LineFitSpec.component_windows`) skips the erf calls where a profile is exactly
    zero; empty evaluates every component on every window.

    The weighted CDFs of a row's components are summed at each channel edge, then
    differenced. The optimization_barrier asks XLA to store the edge sums rather than fuse
    the difference (which evaluates each erf twice); the CPU backend of jax 0.10 drops
    it from the compiled program.
    """
    G = edges_w.shape[0]
    if not windows:
        windows = (tuple(range(G)),) * len(comps)
    pairs = [(k, g) for k, ws in enumerate(windows) for g in ws]
    k_of = np.array([k for k, _ in pairs])
    g_of = np.array([g for _, g in pairs])
    lam = jnp.asarray([comps[k][1] for k in k_of], edges_w.dtype) / 1e4
    mu = lam * (1.0 + z) * (1.0 + dv / C_KM_S)
    s = mu * sig_kms / C_KM_S
    cdf = jax.lax.erf((edges_w[g_of] - mu[:, None]) / (SQRT2 * s[:, None]))  # [pairs, W+1]
    zero = jnp.zeros_like(edges_w[0])
    rows = []
    for j in range(n_rows):
        per_g = []
        for g in range(G):
            acc = zero
            for i, (k, gg) in enumerate(pairs):
                if gg == g and comps[k][0] == j:
                    acc = acc + (0.5 * comps[k][2]) * cdf[i]
            per_g.append(acc)
        rows.append(jnp.stack(per_g))
    cum = jax.lax.optimization_barrier(jnp.stack(rows))
    return cum[..., 1:] - cum[..., :-1]


def _profile_rows(spec: LineFitSpec, edges_w, z, nl):
    """Line (then broad) rows of the design matrix ``[F + n_broad, G, W]``."""
    rows = [_summed_profiles(spec.components, spec.n_free, edges_w, z, nl[0], nl[1],
                             spec.component_windows)]
    if spec.broad:
        rows.append(_summed_profiles(spec.broad_components, len(spec.broad), edges_w, z, nl[0], nl[2]))
    return rows[0] if len(rows) == 1 else jnp.concatenate(rows, axis=0)


def _design(spec: LineFitSpec, edges_w, u, z, nl):
    """Design matrix ``[P, G*W]`` for non-linear parameters nl = (dv, σ[, σ_b]).

    Rows: the F free lines, one constant and one slope per window (each non-zero on its
    own window only), then the broad components.
    """
    G, W = u.shape
    dtype = edges_w.dtype
    Q = _profile_rows(spec, edges_w, z, nl)
    F = spec.n_free
    eye = jnp.eye(G, dtype=dtype)[:, :, None]
    cols = [Q[:F], jnp.broadcast_to(eye, (G, G, W)), eye * u[None]]
    if spec.broad:
        cols.append(Q[F:])
    return jnp.concatenate(cols, axis=0).reshape(-1, G * W)


class _Baseline(NamedTuple):
    """Per-window weighted baseline basis {1, ũ} (ũ = u minus its weighted mean), fixed
    for a spectrum: the profiled χ² eliminates the baseline against it."""

    u_c: jax.Array  # [G, W] centred u
    inv0: jax.Array  # [G] 1 / Σw (0 for a window without weight)
    inv2: jax.Array  # [G] 1 / Σw ũ² (0 where the slope is undetermined)
    y_perp: jax.Array  # [G, W] data minus their own weighted baseline fit


def _baseline(u, y, w):
    """:class:`_Baseline` of windows ``u [G, W]`` for data ``y`` and weights ``w`` ``[G*W]``."""
    G, W = u.shape
    wg, yg = w.reshape(G, W), y.reshape(G, W)
    s0 = jnp.sum(wg, axis=1)
    inv0 = jnp.where(s0 > 0, 1.0 / jnp.where(s0 > 0, s0, 1.0), 0.0)
    u_c = u - (jnp.sum(wg * u, axis=1) * inv0)[:, None]
    s2 = jnp.sum(wg * u_c * u_c, axis=1)
    ok2 = s2 > 1e-6 * jnp.maximum(s0, 1e-30) * jnp.max(jnp.abs(u)) ** 2
    inv2 = jnp.where(ok2, 1.0 / jnp.where(ok2, s2, 1.0), 0.0)
    y_perp = _perp(yg, wg, u_c, inv0, inv2)
    return _Baseline(u_c, inv0, inv2, y_perp)


def _perp(x, wg, u_c, inv0, inv2):
    """``x [..., G, W]`` minus its weighted least-squares fit by {1, ũ} in each window."""
    a = jnp.sum(wg * x, axis=-1) * inv0
    b = jnp.sum(wg * u_c * x, axis=-1) * inv2
    return x - a[..., None] - b[..., None] * u_c


def _profiled_chi2(spec: LineFitSpec, edges_w, u, z, nl, y, w, base: _Baseline | None = None):
    """χ² with the linear parameters profiled out, as ``_solve_linear(_design(...))[1]``.

    The baseline rows (a constant and a slope per window) are eliminated in closed form:
    in the basis {1, ũ} of each window (ũ centred so the two are w-orthogonal) the data and
    the line rows are replaced by their residuals from their own weighted baseline fits;
    the line fluxes then solve an ``[R, R]`` system (R line/broad rows) instead of the
    ``[R + 2G]`` one, and χ² is the weighted sum of the remaining residuals — the same
    minimum of the same model. ``base`` (:func:`_baseline`, fixed per spectrum) may be
    passed in to share it across grid points.
    """
    G, W = u.shape
    wg = w.reshape(G, W)
    if base is None:
        base = _baseline(u, y, w)
    Q = _perp(_profile_rows(spec, edges_w, z, nl), wg, base.u_c, base.inv0, base.inv2)  # [R, G, W]
    Qw = Q * wg[None]
    M = jnp.einsum("rgn,sgn->rs", Qw, Q)
    bq = jnp.einsum("rgn,gn->r", Qw, base.y_perp)
    coef = spd_solve(M, bq, eps=1e-9)
    r = base.y_perp - jnp.tensordot(coef, Q, axes=1)
    return jnp.sum(wg * r * r)


def _argmin_finite(c):
    """Index of the smallest χ², non-finite values (a degenerate grid point) ranked last."""
    return jnp.argmin(jnp.where(jnp.isfinite(c), c, jnp.inf))


def spectrum_model(spec: LineFitSpec, edges_w, u, z, theta):
    """Model of the windows ``[G*W]`` for parameters θ = (non-linear…, linear…)."""
    k = spec.n_nonlinear
    A = _design(spec, edges_w, u, z, theta[:k])
    return theta[k:] @ A


def _solve_linear(A, y, w):
    """Weighted linear least squares with a tiny ridge; returns (coef, χ²)."""
    Aw = A * w[None]
    N = Aw @ A.T
    b = Aw @ y
    coef = spd_solve(N, b, eps=1e-9)
    r = y - coef @ A
    return coef, jnp.sum(w * r * r)


def fit_spectrum(spec: LineFitSpec, flux, err, edges, z, chan_ok=None) -> LineFitResult:
    """Fit the lines of one spectrum (traceable; vmap over spectra).

    Args:
        spec: :class:`LineFitSpec` (static).
        flux: spectrum ``[C]``, flux per channel (any unit).
        err: 1σ per channel ``[C]``; non-finite or ≤ 0 channels are ignored.
        edges: channel edges ``[C+1]``, µm, increasing.
        z: input redshift (the fitted Δv is relative to it).
        chan_ok: optional ``[C]`` bool of usable channels.

    Returns:
        :class:`LineFitResult` (fluxes in the unit of ``flux`` integrated over channels).
    """
    dtype = jnp.result_type(flux, float)
    flux = jnp.asarray(flux, dtype)
    err = jnp.asarray(err, dtype)
    edges = jnp.asarray(edges, dtype)
    z = jnp.asarray(z, dtype)
    ok = jnp.isfinite(flux) & jnp.isfinite(err) & (err > 0)
    if chan_ok is not None:
        ok = ok & chan_ok
    f_w, e_w, ok_w, ed_w, u_w = _windows(spec, jnp.where(ok, flux, 0.0),
                                         jnp.where(ok, err, 1.0), edges, z, ok)
    # normalise by the typical error so float32 normal equations are well scaled
    scale = jnp.sum(jnp.where(ok_w, e_w, 0.0)) / jnp.maximum(jnp.sum(ok_w), 1)
    scale = jnp.where(scale > 0, scale, 1.0)
    y = (f_w / scale).ravel()
    w = jnp.where(ok_w, (scale / e_w) ** 2, 0.0).ravel()
    # bounds of the non-linear parameters
    chan_kms = C_KM_S * jnp.median((ed_w[:, 1:] - ed_w[:, :-1]) / (0.5 * (ed_w[:, 1:] + ed_w[:, :-1])))
    dv_max = spec.dv_max_chan * chan_kms
    s_lo = jnp.maximum(spec.sigma_init_kms - spec.dsigma_chan * chan_kms, 0.25 * chan_kms)
    s_hi = spec.sigma_init_kms + spec.dsigma_chan * chan_kms
    lo = [-dv_max, s_lo]
    hi = [dv_max, s_hi]
    sizes = [spec.n_dv, spec.n_sigma]
    if spec.broad:
        lo.append(jnp.maximum(spec.broad_sigma_kms[0], s_hi))
        hi.append(jnp.asarray(spec.broad_sigma_kms[1], dtype))
        sizes.append(spec.n_sigma_broad)
    lo = jnp.stack([jnp.asarray(v, dtype) for v in lo])
    hi = jnp.stack([jnp.asarray(v, dtype) for v in hi])

    k = spec.n_nonlinear

    base = _baseline(u_w, y, w)

    def chi2_at(nl):
        return _profiled_chi2(spec, ed_w, u_w, z, nl, y, w, base)

    # 1. coarse grid of the non-linear parameters, linear ones profiled out
    axes = [jnp.linspace(0.0, 1.0, n, dtype=dtype) for n in sizes]
    mesh = jnp.meshgrid(*axes, indexing="ij")
    pts = lo + (hi - lo) * jnp.stack([m.ravel() for m in mesh], axis=1)
    best = pts[_argmin_finite(jax.vmap(chi2_at)(pts))]

    # 2. zoom: 3^k points around the best, halving the step each round
    step0 = (hi - lo) / jnp.asarray(np.array(sizes) - 1, dtype)
    offs = jnp.stack([m.ravel() for m in jnp.meshgrid(*([jnp.arange(-1.0, 2.0, dtype=dtype)] * k),
                                                      indexing="ij")], axis=1)

    def zoom(carry, _):
        b, st = carry
        st = st / 2.0
        p = jnp.clip(b + offs * st, lo, hi)
        return (p[_argmin_finite(jax.vmap(chi2_at)(p))], st), None

    (best, _), _ = jax.lax.scan(zoom, (best, step0), None, length=spec.n_zoom)

    # 3. Gauss-Newton on all parameters (Jacobian: design matrix for the linear ones,
    #    forward-mode derivatives for the non-linear ones)
    def model_and_jac(th):
        nl, coef = th[:k], th[k:]

        def m_of(nl_):
            return coef @ _design(spec, ed_w, u_w, z, nl_)

        A = _design(spec, ed_w, u_w, z, nl)
        J_nl = jax.jacfwd(m_of)(nl)  # [N, k]
        return coef @ A, jnp.concatenate([J_nl, A.T], axis=1)

    A0 = _design(spec, ed_w, u_w, z, best)
    coef, c0 = _solve_linear(A0, y, w)
    theta = jnp.concatenate([best, coef])
    _, J0 = model_and_jac(theta)

    # each step evaluates the model and its Jacobian once, at the trial point; the carry
    # keeps the Jacobian of the current point (the next step's linearisation and, at the
    # end, the covariance's). The model is linear in the fluxes and baselines, whose
    # Jacobian columns are the design rows, so the current model is J[:, k:] @ θ[k:].
    def gn(carry, _):
        th, c, lam, J = carry
        Jw = J * w[:, None]
        N = J.T @ Jw
        d = spd_solve(N + lam * jnp.diag(jnp.diag(N) + 1e-12), Jw.T @ (y - J[:, k:] @ th[k:]), eps=1e-9)
        tn = th + d
        tn = tn.at[:k].set(jnp.clip(tn[:k], lo, hi))
        mn, Jn = model_and_jac(tn)
        cn = jnp.sum(w * (y - mn) ** 2)
        better = jnp.isfinite(cn) & (cn < c)
        return (jnp.where(better, tn, th), jnp.where(better, cn, c),
                jnp.where(better, lam * 0.1, lam * 10.0), jnp.where(better, Jn, J)), None

    (theta, c_best, _, J), _ = jax.lax.scan(gn, (theta, c0, jnp.asarray(1e-3, dtype), J0), None,
                                            length=spec.n_newton)
    N = J.T @ (J * w[:, None])
    cov = spd_inv(N, eps=1e-9)
    sd = jnp.sqrt(jnp.maximum(jnp.diag(cov), 0.0))
    F = spec.n_free
    f_free = theta[k:k + F] * scale
    e_free = sd[k:k + F] * scale
    # a free line whose window has no usable channel is undetermined
    L = len(spec.lines)
    flux_out = jnp.zeros((L,), dtype)
    err_out = jnp.full((L,), jnp.inf, dtype)
    flux_out = flux_out.at[np.array(spec.free)].set(f_free)
    err_out = err_out.at[np.array(spec.free)].set(e_free)
    for li, fj, fac in spec.derived:
        flux_out = flux_out.at[li].set(f_free[fj] * fac)
        err_out = err_out.at[li].set(e_free[fj] * fac)
    has = _line_has_channels(spec, ok_w, ed_w, z, theta[1])
    err_out = jnp.where(has, err_out, jnp.inf)
    snr = jnp.where(jnp.isfinite(err_out) & (err_out > 0), flux_out / err_out, 0.0)
    nb = len(spec.broad)
    off = k + F + 2 * spec.n_groups
    bflux = theta[off:off + nb] * scale
    berr = sd[off:off + nb] * scale
    return LineFitResult(
        flux=flux_out, flux_err=err_out, snr=snr, dv=theta[0], dv_err=sd[0], sigma=theta[1],
        sigma_err=sd[1], broad_flux=bflux, broad_err=berr,
        sigma_broad=theta[2] if spec.broad else jnp.asarray(jnp.nan, dtype),
        chi2=c_best, n_used=jnp.sum(ok_w))


def _line_has_channels(spec, ok_w, ed_w, z, sigma):
    """``[L]`` bool: some usable channel lies within ±2σ of each line's components."""
    L = len(spec.lines)
    cw = 0.5 * (ed_w[:, 1:] + ed_w[:, :-1])  # [G, W]
    res = []
    for i in range(L):
        comps = [c[0] for c in _components(spec.lines[i])]
        lam = jnp.asarray(comps, cw.dtype) / 1e4 * (1.0 + z)
        near = jnp.abs(cw[None] / lam[:, None, None] - 1.0) * C_KM_S <= 2.0 * sigma + 1.0
        res.append(jnp.any(near & ok_w[None]))
    return jnp.stack(res)
