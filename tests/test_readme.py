"""The README's ten-line example runs as written."""

import re
from pathlib import Path


def test_readme_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["maps"].shape == (4, 48, 48)
    assert ns["batch"].shape == (3, 4, 48, 48)
    assert abs(ns["cal"].invert("R3", 0.79, branch="lower") - 7.599) < 1e-3
