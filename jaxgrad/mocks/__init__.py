"""Beam-smearing mock suites on the forward model's jitted kernels.

    from jaxgrad import mocks
    spec = mocks.SuiteSpec()                       # Paper A's suite
    batch = mocks.generate(spec, seed=0, indices=range(64))
    mocks.run_suite(spec, n=1500, out_dir="suite")  # resumable, chunked HDF5
    curves = mocks.fit_curves(mocks.load_results("suite"))
"""

from jaxgrad.mocks.curves import (
    Curve,
    correct,
    curves_table,
    fit_curves,
    load_curves_csv,
    plot_curves,
    write_curves_csv,
)
from jaxgrad.mocks.generate import (
    MockBatch,
    draw_params,
    generate,
    generate_one,
    model_spec,
)
from jaxgrad.mocks.spec import SuiteSpec, paper_a, resolve
from jaxgrad.mocks.suite import (
    batch_sharding,
    load_results,
    read_chunk,
    run_suite,
    truth_columns,
)

__all__ = [
    "PAPER_A", "paper_a", "Curve", "MockBatch", "SuiteSpec", "batch_sharding", "correct", "curves_table", "draw_params",
    "fit_curves", "generate", "generate_one", "load_curves_csv", "load_results", "model_spec", "plot_curves", "read_chunk",
    "resolve", "run_suite", "truth_columns", "write_curves_csv",
]


def __getattr__(name):  # PAPER_A, made on first use (see mocks.spec.paper_a)
    if name == "PAPER_A":
        return paper_a()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
