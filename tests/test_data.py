import numpy as np
import pytest

from jaxgrad import data


def test_tables_load_with_string_ids_and_published_median():
    t3 = data.load_table("cristal_t3_gradients")
    assert t3["id"].dtype.kind == "U" and t3["id"][0] == "01a" and len(t3["id"]) == 20
    # Paper A: median Method I gradient of the 20 galaxies is +0.04 dex/kpc (SCIENCE.md §1)
    assert np.median(t3["grad_method1_dex_per_kpc"]) == pytest.approx(0.039, abs=1e-9)
    assert np.isnan(t3["grad_method2_median_dex_per_kpc"]).sum() == 2  # 20 and 22a print '...'
    t1 = data.load_table("cristal_t1_sample.csv")
    assert t1["cristal_id"][0] == "01"
    assert set(data.is_disk(["Disk", "Best Disk", "Best-Disk", "Non-Disk"])) == {True, False}
    assert list(data.is_disk(["Disk", "Best Disk", "Best-Disk", "Non-Disk"])) == [True, True, True, False]


def test_unknown_table():
    with pytest.raises(ValueError, match="shipped tables"):
        data.load_table("cristal_t9")


def test_shipped_mock_curves_are_the_committed_suite_result():
    """The demo's correction curves (package data) are the committed suite's CSV, unchanged."""
    from pathlib import Path

    from jaxgrad import mocks

    committed = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mock_curves.csv"
    assert data.path("mock_curves_paper_a").read_text() == committed.read_text()
    curves = mocks.load_curves_csv(data.path("mock_curves_paper_a"))
    assert sorted(curves) == [0.05, 0.1, 0.2]
    assert all(c.n_total > 400 for c in curves.values())
