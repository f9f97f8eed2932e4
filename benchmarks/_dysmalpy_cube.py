"""Time DysmalPy 2.0 building one model cube of the SCIENCE.md §7 spec (run as a script).

z = 5, Sérsic n = 1, R_e = 2 kpc, σ0 = 80 km/s, i = 20°, 64×64 pixels of 0.05″, Gaussian
PSF FWHM 0.2″ (or each of ``--psf`` in turn), LSF σ = 125 km/s, channels of 106 km/s
(``--nspec`` of them), one line. Prints one JSON line: {"dysmalpy": version, "median_s": ...,
...}; with several ``--psf`` values, ``per_psf`` holds each one's timings and ``median_s``
is the mean of their medians (the expected time per cube when the PSF FWHM is drawn
uniformly and the values are the midpoints of equal-probability strata).
"""

import argparse
import json
import logging
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nspec", type=int, default=21)
    ap.add_argument("--nrep", type=int, default=7)
    ap.add_argument("--psf", type=float, nargs="+", default=[0.2], help="Gaussian PSF FWHM(s), arcsec")
    args = ap.parse_args()
    import dysmalpy

    per_psf = [_time_one(args, fwhm) for fwhm in args.psf]
    out = {"dysmalpy": dysmalpy.__version__, "nspec": args.nspec, "ny": 64, "nx": 64, "nrep": args.nrep,
           "median_s": float(np.mean([r["median_s"] for r in per_psf])),
           "min_s": float(np.mean([r["min_s"] for r in per_psf]))}
    if len(per_psf) > 1:
        out["per_psf"] = per_psf
    else:
        out["psf_fwhm"] = per_psf[0]["psf_fwhm"]
    print(json.dumps(out))


def _time_one(args, fwhm: float) -> dict:
    import astropy.units as u
    from dysmalpy import galaxy, instrument, models, observation
    from dysmalpy.fitting_wrappers.tied_functions import tie_sigz_reff

    gal = galaxy.Galaxy(z=5.0, name="mock")
    ms = models.ModelSet()
    bary = models.Sersic(total_mass=10.5, r_eff=2.0, n=1.0, invq=5.0, noord_flat=True, name="sersic")
    disp = models.DispersionConst(sigma0=80.0, name="dispprof", tracer="line")
    zh = models.ZHeightGauss(sigmaz=2.0 * 2.0 / 5.0 / 2.35482, name="zheightgaus")
    zh.sigmaz.tied = tie_sigz_reff
    geom = models.Geometry(inc=20.0, pa=0.0, xshift=0.0, yshift=0.0, name="geom", obs_name="cube")
    for comp, light in ((bary, True), (disp, False), (zh, False), (geom, False)):
        ms.add_component(comp, light=light)
    ms.kinematic_options.adiabatic_contract = False
    ms.kinematic_options.pressure_support = True
    gal.model = ms
    obs = observation.Observation(name="cube", tracer="line")
    inst = instrument.Instrument()
    inst.beam = instrument.GaussianBeam(major=fwhm * u.arcsec)
    inst.lsf = instrument.LSF(125.0 * u.km / u.s)
    inst.ndim = 3
    inst.pixscale = 0.05 * u.arcsec
    inst.fov = [64, 64]
    inst.spec_type = "velocity"
    inst.spec_step = 106.0 * u.km / u.s
    inst.spec_start = -(args.nspec // 2) * 106.0 * u.km / u.s
    inst.nspec = args.nspec
    inst.set_beam_kernel()
    inst.set_lsf_kernel()
    obs.instrument = inst
    obs.mod_options = observation.ObsModOptions(oversample=1)
    gal.add_observation(obs)
    gal.create_model_data()
    ts = []
    for _ in range(args.nrep):
        t0 = time.perf_counter()
        gal.create_model_data()
        ts.append(time.perf_counter() - t0)
    return {"psf_fwhm": fwhm, "median_s": float(np.median(ts)), "min_s": float(np.min(ts))}


if __name__ == "__main__":
    main()
