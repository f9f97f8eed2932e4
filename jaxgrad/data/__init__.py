"""Embedded data: the CRISTAL tables of Lee et al. (Paper A), as shipped CSV files.

    from jaxgrad import data
    t3 = data.load_table("cristal_t3_gradients")   # dict of columns
    t3["id"][:3], t3["grad_method1_dex_per_kpc"][:3]

IDs and other text columns stay strings (leading zeros: ``01``, ``04a``); numeric columns
become float arrays with NaN for empty cells. Column meanings: the data README in the
repository's reference material (units: dex/kpc, 12+log(O/H), dex).
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np

TABLES = (
    "cristal_t1_sample",
    "cristal_t2_diagnostics",
    "cristal_t3_gradients",
    "cristal_t4_mock_params",
    "cristal_tE1_individual_diagnostics",
    "cristal_tE2_azimuthal",
    # not a CRISTAL table: the beam-smearing curves of jaxgrad's 1500-mock Paper A suite
    # (a copy of benchmarks/results/mock_curves.csv; read with mocks.load_curves_csv)
    "mock_curves_paper_a",
)
_TEXT = {"id", "cristal_id", "full_name", "class", "class_footnote", "indicator", "line_ratio",
         "parameter", "unit", "value_as_printed", "footnote"}


def path(name: str) -> Path:
    """Filesystem path of a shipped table (``name`` with or without ``.csv``)."""
    stem = name.removesuffix(".csv")
    if stem not in TABLES:
        raise ValueError(f"unknown table {name!r}; shipped tables: {', '.join(TABLES)}")
    return Path(str(resources.files("jaxgrad.data").joinpath(stem + ".csv")))


def read_csv(file) -> dict[str, np.ndarray]:
    """Read a CSV into columns: text columns as str arrays, the rest as float (NaN if empty)."""
    with open(file, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{file} has no data rows")
    out = {}
    for col in rows[0]:
        vals = [r[col] for r in rows]
        if col in _TEXT:
            out[col] = np.array(vals, dtype=str)
            continue
        try:
            out[col] = np.array([float(v) if v.strip() else np.nan for v in vals])
        except ValueError:
            out[col] = np.array(vals, dtype=str)
    return out


def load_table(name: str) -> dict[str, np.ndarray]:
    """One of the shipped tables as a dict of columns."""
    return read_csv(path(name))


def is_disk(classes) -> np.ndarray:
    """True for the kinematic classes 'Disk', 'Best Disk', 'Best-Disk' (False: 'Non-Disk')."""
    c = np.char.lower(np.char.replace(np.asarray(classes, str), "-", " "))
    return np.isin(c, ["disk", "best disk"])
