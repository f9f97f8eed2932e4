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
