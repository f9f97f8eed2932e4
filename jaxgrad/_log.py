"""Showing jaxgrad's progress lines (logger ``jaxgrad``, INFO): long fits log their stages
and NUTS progress there; the CLI and the benchmarks print them with :func:`progress_to`."""

from __future__ import annotations

import contextlib
import logging
import sys


@contextlib.contextmanager
def progress_to(stream=None, prefix: str = ""):
    """Print jaxgrad's INFO lines on ``stream`` (default stderr) while the block runs."""
    log = logging.getLogger("jaxgrad")
    h = logging.StreamHandler(sys.stderr if stream is None else stream)
    h.setFormatter(logging.Formatter(prefix + "%(asctime)s %(message)s", "%H:%M:%S"))
    old = log.level
    log.addHandler(h)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(h)
        log.setLevel(old)
