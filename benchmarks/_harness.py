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


def time_interleaved(calls: dict, rounds: int = 7, round_s: float = 0.15, min_calls: int = 3) -> dict:
    """Time several functions in interleaved rounds: robust to slow phases of the machine.

    ``calls`` maps a name to ``(fn, args)``. Each is called once first (compile/warm-up,
    timed separately); then, in each of ``rounds`` rounds, every function is called for
    about ``round_s`` seconds (at least ``min_calls`` calls) and the round's median kept.
    A function's ``median_s`` is the median of its round medians, so a phase of host
    contention that lasts a few seconds moves every function's numbers alike instead of
    landing on whichever was being timed then.
    """
    out = {}
    for name, (fn, args) in calls.items():
        t0 = time.perf_counter()
        block(fn(*args))
        out[name] = {"first_call_s": time.perf_counter() - t0, "round_medians_s": []}
    for _ in range(rounds):
        for name, (fn, args) in calls.items():
            ts = []
            start = time.perf_counter()
            while len(ts) < min_calls or time.perf_counter() - start < round_s:
                t0 = time.perf_counter()
                block(fn(*args))
                ts.append(time.perf_counter() - t0)
            out[name]["round_medians_s"].append(statistics.median(ts))
    for r in out.values():
        rm = r["round_medians_s"]
        r.update(median_s=statistics.median(rm), min_s=min(rm), max_s=max(rm), rounds=rounds)
    return out


def load_rows(work) -> tuple[Path, list[dict]]:
    """A resumable benchmark's rows: one JSON line each in ``WORK/fits.jsonl`` (created)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "fits.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    return path, rows


def append_row(path: Path, rows: list[dict], row: dict) -> None:
    """Keep ``row`` in memory and on disk at once (a killed run loses only the fit in flight)."""
    rows.append(row)
    with Path(path).open("a") as f:
        f.write(json.dumps(row) + "\n")


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
