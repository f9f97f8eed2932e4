"""``jaxgrad fit CONFIG.toml``: forward-model fits of one galaxy or a population from FITS.

Example configuration (every key shown; ``[[galaxy]]`` repeats for a population)::

    [model]
    lines = ["OII_3727_30", "NeIII_3870", "Hb", "OIII_5008"]
    calibration = "sanders24"     # jaxgrad calibrations list
    dust_law = "calzetti"         # or "smc"
    psf_model = "gaussian"        # gaussian | elliptical | moffat | image
    use_logu = true
    oversample = 1

    [sampler]
    num_warmup = 500
    num_samples = 1000
    num_chains = 2
    seed = 0

    [output]
    dir = "jaxgrad_fit"

    [priors]                      # any GalaxyParams field; overrides the default prior
    grad_z = { dist = "normal", loc = 0.0, scale = 0.3 }
    inc = { dist = "uniform", low = 10.0, high = 50.0 }      # now sampled
    # dists: normal(loc, scale), truncnormal(loc, scale, low, high), uniform(low, high),
    #        lognormal(loc, scale) (of ln x), halfnormal(scale); "none" drops a default

    [fixed]                       # held at these values for every galaxy
    sersic_n = 1.0

    [[galaxy]]
    name = "cristal-01"
    maps = "cristal01_maps.fits"  # one extension per line (NAME, NAME_ERR); or
    # cube = "cristal01_s3d.fits"  (SCI/ERR/DQ; lines must lie in the cube)
    # psf_image = "psf.fits"       (with psf_model = "image")
    z = 5.0                       # redshift (required)
    psf_fwhm = 0.15               # arcsec (for the analytic PSF models)
    known = { inc = 20.0, pa = 0.0 }     # GalaxyParams fields held at these values
    covariates = { log_mstar = 10.1 }    # population fits only

Outputs in ``dir``: ``fit.nc`` (ArviZ InferenceData), ``summary.txt``, ``profile.png`` and
``corner.png`` (one galaxy), or ``population.nc``, ``summary.txt``, ``population.png``.
A population fit prints its stages and NUTS progress on stderr and keeps
``nuts_checkpoint.npz`` in ``dir`` while NUTS runs: start the same configuration again
after an interruption and it resumes where the chains stopped.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from pathlib import Path

from jaxgrad._log import progress_to
from jaxgrad._nuts import remove_checkpoint

SECTIONS = {
    "priors": set(),  # any GalaxyParams field (checked in _priors_from_config)
    "fixed": set(),
    "model": {"lines", "calibration", "dust_law", "psf_model", "use_logu", "oversample"},
    "sampler": {"num_warmup", "num_samples", "num_chains", "seed"},
    "output": {"dir"},
    "galaxy": {"name", "maps", "cube", "psf_image", "z", "psf_fwhm", "known", "covariates", "fixed"},
}


def load_config(path) -> dict:
    """Read and validate a fit configuration; ValueError naming the offending key."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config {str(p)!r} does not exist")
    if p.suffix.lower() != ".toml":
        raise ValueError(f"config {str(p)!r} must be a .toml file")
    try:
        cfg = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config {str(p)!r} is not valid TOML: {e}") from None
    unknown = set(cfg) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)} in {p.name}; valid: {sorted(SECTIONS)}")
    gals = cfg.get("galaxy")
    if not gals:
        raise ValueError(f"{p.name} needs at least one [[galaxy]] table")
    if isinstance(gals, dict):
        gals = [gals]
    cfg["galaxy"] = gals
    cfg["priors"] = _priors_from_config(cfg.get("priors", {}))
    cfg["fixed"] = _fixed_from_config(cfg.get("fixed", {}), cfg["priors"])
    for sec in ("model", "sampler", "output"):
        bad = set(cfg.get(sec, {})) - SECTIONS[sec]
        if bad:
            raise ValueError(f"unknown key(s) {sorted(bad)} in [{sec}]; valid: {sorted(SECTIONS[sec])}")
    for i, g in enumerate(gals):
        bad = set(g) - SECTIONS["galaxy"]
        if bad:
            raise ValueError(f"unknown key(s) {sorted(bad)} in galaxy {i}; valid: {sorted(SECTIONS['galaxy'])}")
        if ("maps" in g) == ("cube" in g):
            raise ValueError(f"galaxy {i} ({g.get('name', '?')}) needs exactly one of 'maps' or 'cube'")
        if "z" not in g:
            raise ValueError(f"galaxy {i} ({g.get('name', '?')}) needs its redshift 'z'")
    if "lines" not in cfg.get("model", {}):
        raise ValueError("[model] needs 'lines' (e.g. [\"Hb\", \"OIII_5008\", ...])")
    _check_types(cfg)
    base = p.parent
    for g in gals:
        for k in ("maps", "cube", "psf_image"):
            if k in g and not Path(g[k]).is_absolute():
                g[k] = str(base / g[k])
    # the output folder too resolves against the config's folder, as the inputs do
    out = Path(cfg.get("output", {}).get("dir", "jaxgrad_fit"))
    cfg.setdefault("output", {})["dir"] = str(out if out.is_absolute() else base / out)
    return cfg


_DISTS = {"normal": ("loc", "scale"), "truncnormal": ("loc", "scale", "low", "high"), "uniform": ("low", "high"),
          "lognormal": ("loc", "scale"), "halfnormal": ("scale",)}


def _param_name(k: str, where: str) -> None:
    from jaxgrad.forward import GalaxyParams

    if k not in GalaxyParams._fields:
        raise ValueError(f"{k} in [{where}] is not a model parameter; valid: {', '.join(GalaxyParams._fields)}")


def _priors_from_config(table: dict) -> dict:
    """[priors] -> {name: numpyro distribution or None}; ValueError naming the key."""
    out = {}
    for k, v in table.items():
        _param_name(k, "priors")
        if v == "none":
            out[k] = None
            continue
        if not isinstance(v, dict) or "dist" not in v:
            raise ValueError(f"{k} in [priors] must be a table {{ dist = \"normal\", loc = ..., scale = ... }} "
                             f"or \"none\", got {v!r}")
        name = v["dist"]
        if name not in _DISTS:
            raise ValueError(f"{k} in [priors]: unknown dist {name!r}; valid: {', '.join(_DISTS)}")
        args = {a: v[a] for a in v if a != "dist"}
        if set(args) != set(_DISTS[name]):
            raise ValueError(f"{k} in [priors]: {name} needs {', '.join(_DISTS[name])}, got {sorted(args)}")
        for a, x in args.items():
            if not _type_ok(x, float):
                raise ValueError(f"{k}.{a} in [priors] must be a number, got {x!r}")
        if "scale" in args and not args["scale"] > 0:
            raise ValueError(f"{k}.scale in [priors] must be > 0, got {args['scale']!r}")
        if "low" in args and not args["low"] < args["high"]:
            raise ValueError(f"{k} in [priors]: low must be < high, got {args['low']!r} >= {args['high']!r}")
        out[k] = _make_dist(name, {kk: float(x) for kk, x in args.items()})
    return out


def _make_dist(name: str, a: dict):
    import numpyro.distributions as dist

    if name == "normal":
        return dist.Normal(a["loc"], a["scale"])
    if name == "truncnormal":
        return dist.TruncatedNormal(a["loc"], a["scale"], low=a["low"], high=a["high"])
    if name == "uniform":
        return dist.Uniform(a["low"], a["high"])
    if name == "lognormal":
        return dist.LogNormal(a["loc"], a["scale"])
    return dist.HalfNormal(a["scale"])


def _fixed_from_config(table: dict, priors: dict) -> dict:
    out = {}
    for k, v in table.items():
        _param_name(k, "fixed")
        if not _type_ok(v, float):
            raise ValueError(f"{k} in [fixed] must be a number, got {v!r}")
        if priors.get(k) is not None:
            raise ValueError(f"{k} is both in [priors] and in [fixed]; choose one")
        out[k] = float(v)
    return out


# expected TOML types of the scalar keys (bool is not an int here: TOML has true/false)
_TYPES = {
    "model": {"lines": "list[str]", "calibration": str, "dust_law": str, "psf_model": str, "use_logu": bool,
              "oversample": int},
    "sampler": {"num_warmup": int, "num_samples": int, "num_chains": int, "seed": int},
    "output": {"dir": str},
    "galaxy": {"name": str, "maps": str, "cube": str, "psf_image": str, "z": float, "psf_fwhm": float,
               "known": dict, "covariates": dict, "fixed": dict},
}


def _type_ok(v, t) -> bool:
    if t == "list[str]":
        return isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)
    if t is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, t)


def _check_types(cfg: dict) -> None:
    """ValueError naming the key whose value has the wrong type (no silent coercion:
    ``use_logu = "no"`` is not True, ``oversample = 2.7`` is not 2)."""
    names = {"list[str]": "a list of strings", str: "a string", bool: "true or false", int: "an integer",
             float: "a number", dict: "a table { ... }"}
    tables = [(f"[{sec}]", cfg.get(sec, {}), sec) for sec in ("model", "sampler", "output")]
    tables += [(f"galaxy {i}", g, "galaxy") for i, g in enumerate(cfg["galaxy"])]
    for where, table, sec in tables:
        for k, v in table.items():
            t = _TYPES[sec].get(k)
            if t is not None and not _type_ok(v, t):
                raise ValueError(f"{k} in {where} must be {names[t]}, got {v!r}")
    for i, g in enumerate(cfg["galaxy"]):  # the values inside a galaxy's sub-tables
        for k in ("known", "fixed", "covariates"):
            for kk, vv in g.get(k, {}).items():
                if not _type_ok(vv, float):
                    raise ValueError(f"{k}.{kk} in galaxy {i} must be a number, got {vv!r}")
    for k in ("num_warmup", "num_samples", "num_chains"):
        v = cfg.get("sampler", {}).get(k)
        if v is not None and v < 1:
            raise ValueError(f"{k} in [sampler] must be >= 1, got {v!r}")


def _galaxy_data(g: dict, model: dict):
    import numpy as np

    import jaxgrad as jg
    from jaxgrad import io
    from jaxgrad.inference import GalaxyData

    lines = tuple(model["lines"])
    psf_img = io.read_psf(g["psf_image"]) if "psf_image" in g else None
    common = dict(lines=lines, calibration=model.get("calibration", "sanders24"),
                  dust_law=model.get("dust_law", "calzetti"), psf_model=model.get("psf_model", "gaussian"),
                  use_logu=bool(model.get("use_logu", True)), oversample=int(model.get("oversample", 1)),
                  range_check="warn")
    known = dict(g.get("known", {}))
    known["z"] = float(g["z"])
    if "psf_fwhm" in g:
        known["psf_fwhm"] = float(g["psf_fwhm"])
    if "maps" in g:
        md = io.read_maps(g["maps"], lines)
        ny, nx = md.flux.shape[1:]
        spec = jg.ModelSpec(ny=ny, nx=nx, pixel_scale=md.pixel_scale_arcsec, **common)
        return GalaxyData(md.flux, md.err, md.mask, spec, psf_image=psf_img, known=known,
                          name=g.get("name", Path(g["maps"]).stem))
    cd = io.read_cube(g["cube"])
    ny, nx = cd.flux.shape[1:]
    lam = np.asarray(cd.wavelength_um)
    width = np.asarray(cd.channel_width_um)
    edges = tuple(np.concatenate([lam - width / 2, lam[-1:] + width[-1:] / 2]))
    spec = jg.ModelSpec(ny=ny, nx=nx, pixel_scale=cd.pixel_scale_arcsec, channel_edges=edges, **common)
    return GalaxyData.from_cube(cd.flux, cd.err, spec, mask=cd.mask, psf_image=psf_img, known=known,
                                name=g.get("name", Path(g["cube"]).stem))


def run_fit(config_path, progress: bool = True, overwrite: bool = False) -> dict:
    """Run a configuration; returns a JSON-able summary (also written to the output dir).

    Relative paths — inputs and ``[output] dir`` — resolve against the config's folder. An
    output folder that already holds a finished fit (``result.json``) is refused unless
    ``overwrite`` (an interrupted population fit, with only its checkpoint, resumes).

    With ``progress`` the fit prints NUTS progress (about 20 lines per chain; a population
    fit its stages too) on stderr. A population fit checkpoints its chains in the output
    directory (``nuts_checkpoint.npz``) while it runs: run the same configuration again
    after an interruption and it resumes."""
    cfg = load_config(config_path)
    from jaxgrad import io
    from jaxgrad.inference import fit_galaxy, fit_population
    from jaxgrad.inference import plots as iplots

    model = cfg.get("model", {})
    smp = {"num_warmup": 500, "num_samples": 1000, "num_chains": 2, "seed": 0, **cfg.get("sampler", {})}
    from jaxgrad.io.paths import atomic_path, atomic_write_text, prepare_output_dir

    # checked before any work starts: a finished fit is never lost to an unwritable folder
    out = prepare_output_dir(cfg["output"]["dir"], "[output] dir")
    if (out / "result.json").exists() and not overwrite:
        raise ValueError(f"[output] dir {str(out)!r} already holds a finished fit (result.json); pass --overwrite "
                         "or choose another folder")
    gals = [_galaxy_data(g, model) for g in cfg["galaxy"]]
    seg = max(25, (int(smp["num_warmup"]) + int(smp["num_samples"])) // 20)  # ~20 progress lines per chain
    shown = progress_to if progress else contextlib.nullcontext
    if len(gals) == 1:
        g = cfg["galaxy"][0]
        with shown():
            fit = fit_galaxy(gals[0], priors=cfg["priors"] or None, fixed={**cfg["fixed"], **g.get("fixed", {})},
                             segment=seg, **smp)
        if fit.idata is not None:
            with atomic_path(out / "fit.nc") as tmp:
                io.save_idata(fit.idata, tmp)
        atomic_write_text(out / "summary.txt", fit.report() + "\n")
        with atomic_path(out / "profile.png") as tmp:
            iplots.plot_profile(fit, path=tmp)
        with atomic_path(out / "corner.png") as tmp:
            iplots.plot_corner(fit, path=tmp)
        res = {"name": gals[0].name, "divergences": int(fit.diagnostics.get("divergences", 0)),
               "problems": list(fit.diagnostics.get("problems", [])),
               "files": ["fit.nc", "summary.txt", "profile.png", "corner.png"]}
        used = fit.map_params
        # every parameter neither sampled, nor known from the data, nor fixed by the user: the
        # value it was held at (a silent make_params default before)
        res["defaults_used"] = {k: float(getattr(used, k)) for k in used._fields
                                if k not in fit.samples and k not in gals[0].known
                                and k not in cfg["fixed"] and k not in g.get("fixed", {})}
        for k in ("grad_z", "logoh0"):
            if k in fit.samples:
                res[k] = fit.median(k)
                res[f"{k}_68"] = list(fit.interval(k))
            else:  # held fixed (by the user or the data's known values): say so
                res[f"{k}_fixed"] = float(getattr(used, k))
    else:
        covs = {}
        for g in cfg["galaxy"]:
            for k in g.get("covariates", {}):
                covs.setdefault(k, [])
        for k in covs:
            try:
                covs[k] = [float(g["covariates"][k]) for g in cfg["galaxy"]]
            except KeyError:
                raise ValueError(f"covariate {k!r} must be given for every galaxy") from None
        # NUTS writes its chains here after every segment: a killed run, started again
        # with the same configuration, resumes; removed once the results are written
        ck = out / "nuts_checkpoint.npz"
        with shown():
            pop = fit_population(gals, covariates=covs or None, priors=cfg["priors"] or None,
                                 fixed=cfg["fixed"] or None, segment=seg, checkpoint=ck, **smp)
        if getattr(pop, "idata", None) is not None:
            with atomic_path(out / "population.nc") as tmp:
                io.save_idata(pop.idata, tmp)
        atomic_write_text(out / "summary.txt", json.dumps(pop.hyper, indent=1, default=float) + "\n")
        with atomic_path(out / "population.png") as tmp:
            iplots.plot_population(pop, path=tmp)
        res = {"n_galaxies": len(gals), "hyper": pop.hyper, "problems": list(pop.diagnostics.get("problems", [])),
               "files": ["population.nc", "summary.txt", "population.png"]}
    atomic_write_text(out / "result.json", json.dumps(res, indent=1, default=float))
    remove_checkpoint(out / "nuts_checkpoint.npz")
    res["out"] = str(out)
    return res
