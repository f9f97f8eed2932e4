"""Shared benchmark harness: machine/version info, timed medians, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def versions(*names: str) -> dict:
    out = {"python": platform.python_version()}
    for n in ("jax", "jaxlib", "numpyro", "numpy", *names):
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}
    try:
        import jax

        devs = jax.devices()
        info["jax_backend"] = jax.default_backend()
        info["devices"] = [d.device_kind for d in devs]
    except Exception as e:  # pragma: no cover
        info["jax_backend"] = f"unavailable: {e}"
    try:
        info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                     capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception:
        info["gpu"] = None
    return info


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages (the machine may be shared)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process so far, all threads: the difference
    over a timed section divided by its wall time is the number of cores kept busy."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def block(x):
    import jax

    return jax.block_until_ready(x)


def time_call(fn, *args, repeats: int = 5, warmup: bool = True) -> dict:
    """Compile/warm-up once (timed separately), then the median over ``repeats`` calls."""
    t0 = time.perf_counter()
    if warmup:
        block(fn(*args))
    t_first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn(*args))
        ts.append(time.perf_counter() - t0)
    return {"first_call_s": t_first, "median_s": statistics.median(ts), "min_s": min(ts),
            "max_s": max(ts), "repeats": repeats}


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    return path


def table(rows: list[dict], cols: list[str]) -> str:
    w = {c: max(len(c), *(len(f"{r.get(c, '')}") for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(w[c]) for c in cols), "  ".join("-" * w[c] for c in cols)]
    for r in rows:
        lines.append("  ".join(f"{r.get(c, '')}".ljust(w[c]) for c in cols))
    return "\n".join(lines)
