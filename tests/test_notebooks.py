"""Notebooks run end to end in their small mode (code cells executed as one script)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(path: Path, tmp_path: Path, timeout: int = 600) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    script = tmp_path / (path.stem + ".py")
    script.write_text(code)
    # fast compilation, as in-process tests (see conftest.py)
    env = dict(os.environ, JAXGRAD_SMALL="1", MPLBACKEND="Agg", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]


FAST = ["01_quickstart.ipynb", "02_paper_a_population.ipynb"]


@pytest.mark.parametrize("name", FAST)
def test_fast_notebooks(name, tmp_path):
    path = NB / name
    if not path.exists():
        pytest.fail(f"missing notebook {name}")
    run_notebook(path, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NB.glob("*.ipynb") if p.name not in FAST))
def test_slow_notebooks(name, tmp_path):
    run_notebook(NB / name, tmp_path, timeout=3000)
