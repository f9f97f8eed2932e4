"""The README's ten-line example runs as written."""

import re
from pathlib import Path

import pytest


def test_readme_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["maps"].shape == (4, 48, 48)
    assert ns["batch"].shape == (3, 4, 48, 48)
    assert abs(ns["cal"].invert("R3", 0.79, branch="lower") - 7.599) < 1e-3


@pytest.mark.slow
def test_readme_inference_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = next(c for c in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "fit_population" in c)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["fit"].diagnostics["divergences"] == 0
    assert abs(ns["fit"].map["grad_z"] + 0.1) < 0.1
    assert ns["pop"].hyper["tau_grad"]["median"] < 0.2
