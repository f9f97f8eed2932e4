"""CLI: each command on tiny inputs; bad inputs give one clear line and a non-zero exit."""

import json
import subprocess
import sys

import pytest

from jaxgrad import cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "jaxgrad.cli", *args], capture_output=True, text=True, timeout=600)


def test_demo_quick_writes_outputs(tmp_path):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    for f in s["files"]:
        assert (out / f).stat().st_size > 0
    # the point of the demo: at 2R_e/beam = 1.2 the annulus pipeline is flattened, the
    # forward model's posterior holds the injected gradient
    assert s["two_re_over_beam"] == pytest.approx(1.2, rel=1e-4)
    g = s["truth"]["grad_z"]
    assert g == pytest.approx(-0.10)
    assert 0.0 < s["pipeline"]["grad_z"] / g < 0.8
    lo, hi = s["forward_model"]["grad_z_95"]
    assert lo < g < hi and hi - lo < 0.1
    # verified calibrations only
    import jaxgrad as jg

    cal = jg.calibrations.get(s["calibration"])
    assert s["diagnostics"] and all(cal.verified(d) for d in s["diagnostics"])


def test_calibrations_commands(capsys):
    assert cli.main(["calibrations", "invert", "sanders24", "R3", "0.79", "--branch", "lower"]) == 0
    assert "7.5989" in capsys.readouterr().out
    assert cli.main(["calibrations", "eval", "curti20", "N2", "8.25"]) == 0
    assert "-1.3058" in capsys.readouterr().out
    assert cli.main(["calibrations", "list"]) == 0
    assert "UNVERIFIED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["calibrations", "eval", "nope", "R3", "8.0"], "unknown calibration"),
        (["calibrations", "eval", "sanders25", "N2", "8.0"], "not found"),
        (["population", "missing.csv", "--column", "x"], "does not exist"),
        (["mocks", "curves", "no_such_dir"], "no finished chunks"),
        (["mocks", "run", "missing.toml", "--n", "2", "--out", "x"], "does not exist"),
    ],
)
def test_bad_inputs_one_line_no_traceback(args, needle, tmp_path):
    res = subprocess.run([sys.executable, "-m", "jaxgrad.cli", *args], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_population_command_on_shipped_cristal_table(tmp_path):
    from jaxgrad import data

    out = tmp_path / "pop.json"
    assert cli.main(["population", str(data.path("cristal_t3_gradients")), "--column", "grad_method1_dex_per_kpc",
                     "--err-plus", "grad_method1_err_hi", "--err-minus", "grad_method1_err_lo",
                     "--json", str(out), "--quick", "--allow-unconverged"]) == 0
    res = json.loads(out.read_text())
    for k in ("mean", "mean_sd", "scatter", "scatter_sd", "median", "median_err", "n"):
        assert k in res
    assert res["n"] == 20
    assert res["median"] == pytest.approx(0.039)
    assert abs(res["mean"] - 0.041) < 2 * res["mean_sd"]
    # Method II has two empty cells: a clear error, or dropped on request
    bad = run("population", str(data.path("cristal_t3_gradients")), "--column", "grad_method2_median_dex_per_kpc",
              "--json", str(tmp_path / "x.json"), "--quick")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert cli.main(["population", str(data.path("cristal_t3_gradients")), "--column",
                     "grad_method2_median_dex_per_kpc", "--dropna", "--quick", "--json", str(tmp_path / "y.json"),
                     "--allow-unconverged"]) == 0
    assert json.loads((tmp_path / "y.json").read_text())["n"] == 18


def _write_fit_inputs(tmp_path, n_warm=150, n_samp=150):
    import numpy as np

    import jaxgrad as jg
    from jaxgrad import io

    spec = jg.ModelSpec(lines=("OII_3727_30", "Hb", "OIII_5008"), ny=16, nx=16, pixel_scale=0.1)
    p = jg.make_params(logoh0=7.7, grad_z=-0.05, z=2.0, psf_fwhm=0.15, r_e=1.5, inc=30.0)
    maps = np.asarray(jg.line_maps(p, spec))
    err = np.full_like(maps, 0.02 * maps.max())
    noisy = maps + err * np.random.default_rng(0).normal(size=maps.shape)
    io.write_maps(tmp_path / "g.fits", noisy, err, spec.lines, 0.1)
    cfg = f"""
[model]
lines = ["OII_3727_30", "Hb", "OIII_5008"]
calibration = "sanders24"
[sampler]
num_warmup = {n_warm}
num_samples = {n_samp}
num_chains = 1
seed = 1
[output]
dir = "{tmp_path / 'out'}"
[[galaxy]]
name = "mock"
maps = "g.fits"
z = 2.0
psf_fwhm = 0.15
known = {{ inc = 30.0, pa = 0.0, r_e = 1.5 }}
"""
    (tmp_path / "fit.toml").write_text(cfg)
    return tmp_path / "fit.toml"


@pytest.mark.slow
def test_fit_command_recovers_gradient_from_fits_maps(tmp_path):
    cfg = _write_fit_inputs(tmp_path)
    assert cli.main(["fit", str(cfg)]) == 0
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    lo, hi = res["grad_z_68"]
    assert lo - 0.02 < -0.05 < hi + 0.02
    for f in res["files"]:
        assert (tmp_path / "out" / f).exists()


def test_fit_config_errors(tmp_path, capsys):
    """In process (cli.main, what the executable calls; the subprocess path is covered by
    test_bad_inputs_one_line_no_traceback): one clear line, no traceback."""
    cfg = _write_fit_inputs(tmp_path)
    text = cfg.read_text()
    (tmp_path / "bad1.toml").write_text(text.replace("[sampler]", "[sampler]\nnum_steps = 3"))
    (tmp_path / "bad2.toml").write_text(text.replace('maps = "g.fits"', 'maps = "missing.fits"'))
    (tmp_path / "bad3.toml").write_text(text.replace('z = 2.0\n', ""))
    (tmp_path / "bad.txt").write_text(text)
    for name, needle in [("bad1.toml", "unknown key"), ("bad2.toml", "missing.fits"), ("bad3.toml", "redshift"),
                         ("bad.txt", ".toml"), ("nope.toml", "does not exist")]:
        assert cli.main(["fit", str(tmp_path / name)]) != 0, name
        err = capsys.readouterr().err
        assert "Traceback" not in err and needle in err, (name, err)


def test_fit_command_population_prints_progress(tmp_path, capsys):
    """Several [[galaxy]] tables: the hierarchical fit, its stages and NUTS progress on stderr."""
    cfg = _write_fit_inputs(tmp_path, 60, 40)
    text = cfg.read_text()
    block = text[text.index("[[galaxy]]"):]
    text += "".join(block.replace('name = "mock"', f'name = "mock{i}"') for i in (1, 2))
    cfg.write_text(text)
    # 40 draws of one chain cannot reach 100 effective samples: everything is written, the
    # health check says so on stderr and in result.json, and the exit code is 3
    assert cli.main(["fit", str(cfg)]) == cli.EXIT_UNCONVERGED
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    assert any("bulk ESS" in p for p in res["problems"])
    err = capsys.readouterr().err
    assert "NOT converged" in err and "bulk ESS" in err
    assert "3 galaxies prepared" in err and "per-galaxy MAPs" in err
    assert "NUTS chain 1/1: 25/100 iterations (warm-up)" in err
    assert "100/100 iterations (sampling)" in err
    assert (tmp_path / "out" / "population.nc").exists()
    assert not (tmp_path / "out" / "nuts_checkpoint.npz").exists()  # removed once the results are written
    assert not list((tmp_path / "out").glob("nuts_checkpoint.*"))  # and its segment files


def test_fit_command_with_grad_z_fixed_writes_its_result(tmp_path, capsys):
    """grad_z held fixed: the fit finishes, result.json says it was fixed (it died with
    "error: 'grad_z'" after writing the plots, and no result.json)."""
    cfg = _write_fit_inputs(tmp_path, 60, 40)
    cfg.write_text(cfg.read_text().replace("known = {", "fixed = { grad_z = -0.05 }\nknown = {"))
    assert cli.main(["fit", str(cfg), "--allow-unconverged"]) == 0
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    assert res["grad_z_fixed"] == pytest.approx(-0.05) and "grad_z" not in res
    assert "logoh0" in res and "∇Z fixed at -0.0500" in capsys.readouterr().out


def test_calibrations_outside_the_range_are_flagged_and_no_root_fails(capsys):
    assert cli.main(["calibrations", "eval", "sanders24", "R3", "10.5", "8.0"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert "EXTRAPOLATED" in lines[0] and "EXTRAPOLATED" not in lines[1]
    assert "1 value(s) outside" in cap.err
    assert cli.main(["calibrations", "invert", "sanders24", "R3", "2.0"]) == 1
    cap = capsys.readouterr()
    assert "no 12+log(O/H)" in cap.out and "[]" not in cap.out and "no solution" in cap.err
    assert cli.main(["calibrations", "eval", "sanders24", "R3", "8.0", "--logu", "0"]) != 0
    assert "--logu" in capsys.readouterr().err


def test_unusable_output_paths_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """An output folder that is a file, or a --json that is a folder: one clear line before
    the fit starts (it computed the whole fit, then died with a traceback)."""
    import jaxgrad.inference as inference
    from jaxgrad import data

    cfg = _write_fit_inputs(tmp_path, 60, 40)
    (tmp_path / "taken").write_text("a file")
    cfg.write_text(cfg.read_text().replace(f'dir = "{tmp_path / "out"}"', f'dir = "{tmp_path / "taken"}"'))
    monkeypatch.setattr(inference, "fit_galaxy", lambda *a, **k: pytest.fail("the fit started"))
    assert cli.main(["fit", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err
    (tmp_path / "adir").mkdir()
    assert cli.main(["population", str(data.path("cristal_t3_gradients")), "--column", "grad_method1_dex_per_kpc",
                     "--json", str(tmp_path / "adir"), "--quick"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_atomic_writes_replace_a_planted_symlink(tmp_path):
    from jaxgrad.io.paths import atomic_write_text

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "summary.json"
    link.symlink_to(victim)
    atomic_write_text(link, "{}")
    assert victim.read_text() == "keep me" and not link.is_symlink() and link.read_text() == "{}"


@pytest.mark.parametrize("old,new,needle", [
    ('calibration = "sanders24"', 'calibration = "sanders24"\nuse_logu = "no"', "use_logu in [model] must be true or false"),
    ('calibration = "sanders24"', 'calibration = "sanders24"\noversample = 2.7', "oversample in [model] must be an integer"),
    ('lines = ["OII_3727_30", "Hb", "OIII_5008"]', 'lines = "OIII_5008"', "lines in [model] must be a list of strings"),
    ("z = 2.0", 'z = "two"', "z in galaxy 0 must be a number"),
    ("inc = 30.0", 'inc = "thirty"', "known.inc in galaxy 0 must be a number"),
    ("num_chains = 1", "num_chains = 0", "num_chains in [sampler] must be >= 1"),
])
def test_fit_config_values_are_type_checked(tmp_path, capsys, old, new, needle):
    cfg = _write_fit_inputs(tmp_path)
    assert old in cfg.read_text()
    cfg.write_text(cfg.read_text().replace(old, new))
    assert cli.main(["fit", str(cfg)]) == 2
    assert needle in capsys.readouterr().err


def test_multi_host_flags_are_validated_together(tmp_path, capsys):
    for extra in (["--num-processes", "2", "--process-id", "0"], ["--coordinator", "127.0.0.1:1", "--process-id", "0"]):
        assert cli.main(["mocks", "run", "maps", "--n", "4", "--out", str(tmp_path / "s"), *extra]) == 2
        assert "together" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before any work
    assert cli.main(["mocks", "run", "maps", "--n", "4", "--out", str(tmp_path / "s"), "--coordinator", "127.0.0.1:1",
                     "--num-processes", "2", "--process-id", "2"]) == 2
    assert "--process-id must be in [0, 1]" in capsys.readouterr().err


def test_fit_config_priors_and_fixed_sections(tmp_path, capsys):
    """[priors] samples a parameter the data do not know (here the inclination), [fixed]
    holds one, and every parameter left at a default is listed with its value."""
    cfg = _write_fit_inputs(tmp_path, 60, 40)
    text = cfg.read_text().replace("known = { inc = 30.0, pa = 0.0, r_e = 1.5 }", "known = { pa = 0.0 }")
    text = text.replace("[output]", '[priors]\ninc = { dist = "uniform", low = 10.0, high = 50.0 }\n'
                                     'grad_z = { dist = "normal", loc = 0.0, scale = 0.2 }\n'
                                     "[fixed]\nsersic_n = 1.0\n[output]")
    cfg.write_text(text)
    assert cli.main(["fit", str(cfg), "--allow-unconverged"]) == 0
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    out = capsys.readouterr().out
    assert "inc" not in res["defaults_used"] and "sersic_n" not in res["defaults_used"]
    assert res["defaults_used"]["x0"] == 0.0 and "logu" in res["defaults_used"]
    assert "held at jaxgrad's defaults" in out and "x0 = 0" in out
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "inc" in summary  # sampled


@pytest.mark.parametrize("block,needle", [
    ('[priors]\nfoo = { dist = "normal", loc = 0.0, scale = 1.0 }', "foo in [priors] is not a model parameter"),
    ('[priors]\ninc = { dist = "cauchy", loc = 0.0, scale = 1.0 }', "unknown dist 'cauchy'"),
    ('[priors]\ninc = { dist = "uniform", low = 50.0, high = 10.0 }', "low must be < high"),
    ('[priors]\ninc = { dist = "normal", loc = 0.0 }', "normal needs loc, scale"),
    ('[priors]\ninc = 3.0', "must be a table"),
    ('[fixed]\ninc = "thirty"', "inc in [fixed] must be a number"),
    ('[priors]\ninc = { dist = "normal", loc = 20.0, scale = 5.0 }\n[fixed]\ninc = 20.0', "both in [priors] and in [fixed]"),
])
def test_fit_config_prior_errors(tmp_path, capsys, block, needle):
    cfg = _write_fit_inputs(tmp_path)
    cfg.write_text(cfg.read_text().replace("[output]", block + "\n[output]"))
    assert cli.main(["fit", str(cfg)]) == 2
    assert needle in capsys.readouterr().err


def test_fit_output_dir_resolves_against_the_config_and_is_not_overwritten(tmp_path, monkeypatch, capsys):
    from jaxgrad import fitconfig

    cfg = _write_fit_inputs(tmp_path, 60, 40)
    cfg.write_text(cfg.read_text().replace(f'dir = "{tmp_path / "out"}"', 'dir = "rel_out"'))
    monkeypatch.chdir("/")  # the working directory must not matter
    assert fitconfig.load_config(cfg)["output"]["dir"] == str(tmp_path / "rel_out")
    (tmp_path / "rel_out").mkdir()
    (tmp_path / "rel_out" / "result.json").write_text("{}")
    assert cli.main(["fit", str(cfg)]) == 2
    assert "already holds a finished fit" in capsys.readouterr().err
