"""Running a mock suite: chunked generation + measurement, written chunk by chunk, resumable.

Storage format: one HDF5 file per chunk (``DIR/chunks/chunk_000012.h5``, one dataset per
column) written to a temporary name and atomically renamed, plus ``DIR/suite.toml`` (the
spec) and ``DIR/manifest.json`` (seed, n, chunk size, spec hash, versions). HDF5 because it
is the standard binary table/array format of the field, readable from any language, and
h5py is small and well kept; one file per chunk because a run killed mid-write then loses at
most the chunk in flight (a single growing file can be corrupted by a kill), and resuming
is just "run the chunks whose files are missing". Chunks are computed with a fixed chunk
size (the last one padded), so a resumed run is bit-for-bit the uninterrupted one.

Scale-out: the batch axis of every chunk is sharded over all local devices with
``jax.sharding`` (:func:`batch_sharding`); for several hosts, start one process per host
with ``jax.distributed.initialize()`` (see the README) and give each a disjoint chunk range
(``first_chunk``/``last_chunk``).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from jaxgrad.mocks.generate import MockBatch, generate, model_spec
from jaxgrad.mocks.spec import SuiteSpec, resolve

MANIFEST = "manifest.json"


def batch_sharding(devices=None):
    """A NamedSharding that splits axis 0 over ``devices`` (default: all local devices)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devs = np.array(devices if devices is not None else jax.local_devices())
    return NamedSharding(Mesh(devs, ("batch",)), PartitionSpec("batch"))


def _cpu_sub_batch() -> int | None:
    """Mocks per generate+measure call on one CPU device (None elsewhere).

    A 100-mock chunk generated at once is 100 cubes of 0.8 MB (plus their noise) that
    leave the cache before the measurement reads them; in sub-batches of the pipeline's
    CPU chunk (10) the whole chunk ran 1.27x faster on a 2-core CPU (10.2 -> 8.0 ms per
    mock, interleaved repeats). Accelerators take the whole chunk at once.
    """
    from jaxgrad.mocks.measure import CPU_CHUNK

    return CPU_CHUNK if jax.default_backend() == "cpu" else None


def truth_columns(batch: MockBatch) -> dict[str, np.ndarray]:
    """Per-mock truth columns stored with every chunk."""
    p = batch.params
    return {
        "index": np.asarray(batch.index),
        "grad_true": np.asarray(p.grad_z),
        "logoh0_true": np.asarray(p.logoh0),
        "psf_fwhm": np.asarray(p.psf_fwhm),
        "two_re_over_beam": np.asarray(batch.two_re_over_beam),
        "snr": np.asarray(batch.snr),
        "sigma": np.asarray(batch.sigma),
        "extent_kpc": np.asarray(batch.extent_kpc),
    }


def default_measure(batch: MockBatch, suite: SuiteSpec) -> dict[str, np.ndarray]:
    """Measure every mock with the observer pipeline (Method I gradient and variants)."""
    from jaxgrad.mocks.measure import measure_batch

    return measure_batch(batch, suite)


def _write_chunk(path: Path, cols: dict[str, np.ndarray], attrs: dict) -> None:
    import h5py

    from jaxgrad.io.paths import atomic_path

    with atomic_path(path) as tmp:  # a unique temporary name per writer, renamed into place
        with h5py.File(tmp, "w") as f:
            for k, v in cols.items():
                f.create_dataset(k, data=np.asarray(v))
            for k, v in attrs.items():
                f.attrs[k] = v


def read_chunk(path: str | Path) -> dict[str, np.ndarray]:
    """The columns of one chunk file (ValueError naming the file if it cannot be read)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f.keys()}
    except (OSError, KeyError) as e:
        raise ValueError(f"chunk {str(path)!r} is damaged or not an HDF5 chunk ({e})") from None


def chunk_problem(path: Path, chunk: int, first_index: int, n_rows: int, spec_hash: str, seed: int) -> str | None:
    """Why a chunk file on disk is not the one this run would write (None: it is)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            idx = f["index"][()] if "index" in f else None
            lens = {len(f[k]) for k in f.keys()}
    except (OSError, KeyError) as e:
        return f"unreadable ({type(e).__name__})"
    if attrs.get("spec_hash") != spec_hash or int(attrs.get("seed", -1)) != int(seed):
        return f"from another suite (spec hash {attrs.get('spec_hash')!r}, seed {attrs.get('seed')!r})"
    if int(attrs.get("chunk", -1)) != chunk:
        return f"holds chunk {attrs.get('chunk')!r}, not {chunk}"
    if idx is None or len(lens) != 1 or not np.array_equal(idx, np.arange(first_index, first_index + n_rows)):
        return f"does not hold mocks {first_index}-{first_index + n_rows - 1}"
    return None


def load_results(out_dir: str | Path) -> dict[str, np.ndarray]:
    """All stored columns of a suite directory, concatenated and sorted by mock index.

    Every chunk is checked against the suite's manifest (same spec hash and seed, the mocks
    its number says); a damaged or foreign chunk is a ValueError naming the file, and a
    suite with chunks missing loads with a warning saying how many mocks it holds.
    """
    out = Path(out_dir)
    files = sorted((out / "chunks").glob("chunk_*.h5"))
    if not files:
        raise FileNotFoundError(f"{str(out)!r} holds no finished chunks (chunks/chunk_*.h5)")
    man = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).is_file() else None
    if man is not None:
        n, size = int(man["n"]), int(man["chunk_size"])
        for f in files:
            c = int(f.stem.split("_")[1])
            why = chunk_problem(f, c, c * size, min(size, n - c * size), man["spec_hash"], man["seed"])
            if why:
                raise ValueError(f"chunk {str(f)!r} {why}: delete it and run the suite again to recompute it")
    parts = [read_chunk(f) for f in files]
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(np.unique(cols["index"])) != len(cols["index"]):
        raise ValueError(f"{str(out)!r} holds duplicate mock indices: chunks from different runs were mixed")
    if man is not None and len(cols["index"]) < int(man["n"]):
        warnings.warn(f"{str(out)!r} holds {len(cols['index'])} of the suite's {man['n']} mocks (run it again to "
                      "finish); results are from those only", UserWarning, stacklevel=2)
    order = np.argsort(cols["index"], kind="stable")
    return {k: v[order] for k, v in cols.items()}


def _check_manifest(out: Path, manifest: dict) -> None:
    from jaxgrad.io.paths import atomic_write_text, prepare_output_dir

    path = out / MANIFEST
    prepare_output_dir(out, "suite folder")
    if not path.exists():
        (out / "chunks").mkdir(exist_ok=True)
        atomic_write_text(path, json.dumps(manifest, indent=1))
        return
    old = json.loads(path.read_text())
    for key in ("spec_hash", "seed", "chunk_size", "n"):
        if old.get(key) != manifest.get(key):
            raise ValueError(
                f"{str(out)!r} already holds a different suite ({key}: {old.get(key)!r} on disk vs "
                f"{manifest.get(key)!r} now); use another --out folder or the same settings to resume"
            )


def run_suite(
    spec: SuiteSpec | str | None,
    n: int,
    out_dir: str | Path,
    seed: int = 0,
    chunk_size: int = 100,
    measure: Callable[[MockBatch, SuiteSpec], dict] | None = None,
    shard: bool = True,
    progress: bool = True,
    max_chunks: int | None = None,
    time_limit_s: float | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> dict:
    """Generate and measure ``n`` mocks, writing each chunk as soon as it is done.

    Re-running with the same arguments resumes: finished chunks are skipped.

    Args:
        spec: a :class:`SuiteSpec`, a TOML path or None (Paper A's suite).
        n: number of mocks.
        out_dir: output folder (created).
        seed: suite seed.
        chunk_size: mocks per chunk (one jitted call each; size to memory).
        measure: ``f(batch, suite) -> dict of [B] arrays``; default the observer pipeline.
        shard: shard each chunk's batch axis over all local devices.
        progress: show a tqdm progress bar.
        max_chunks: stop after computing this many new chunks (for tests of resuming).
        time_limit_s: stop starting new chunks after this many seconds (resume later).
        process_index, process_count: multi-host runs: this process computes the chunks
            ``c`` with ``c % process_count == process_index`` (defaults: JAX's
            ``jax.process_index()`` / ``jax.process_count()``, i.e. 0 / 1 on one host).

    Returns:
        dict with the number of chunks computed and skipped and the wall time.
    """
    suite = resolve(spec)
    if n < 1 or chunk_size < 1:
        raise ValueError(f"n and chunk_size must be >= 1, got {n}, {chunk_size}")
    out = Path(out_dir)
    import jaxgrad

    manifest = {"spec_hash": suite.hash(), "seed": int(seed), "n": int(n), "chunk_size": int(chunk_size),
                "jaxgrad": jaxgrad.__version__, "jax": jax.__version__,
                "devices": [d.device_kind for d in jax.local_devices()]}
    _check_manifest(out, manifest)
    from jaxgrad.io.paths import atomic_write_text

    atomic_write_text(out / "suite.toml", suite.to_toml())
    measure = measure or default_measure
    n_dev = jax.local_device_count()
    sharding = batch_sharding() if (shard and n_dev > 1) else None
    sub = _cpu_sub_batch() if sharding is None else None
    step = n_dev if sharding is not None else min(sub or chunk_size, chunk_size)
    padded = int(np.ceil(chunk_size / step) * step)
    per_call = step if sub else padded  # mocks per generate+measure call
    n_chunks = int(np.ceil(n / chunk_size))
    pi = jax.process_index() if process_index is None else int(process_index)
    pc = jax.process_count() if process_count is None else int(process_count)
    mine = [c for c in range(n_chunks) if c % pc == pi]
    todo = []
    for c in mine:
        f = out / "chunks" / f"chunk_{c:06d}.h5"
        if f.exists():
            why = chunk_problem(f, c, c * chunk_size, min(chunk_size, n - c * chunk_size), suite.hash(), seed)
            if why is None:
                continue
            warnings.warn(f"chunk {str(f)!r} {why}: recomputing it", UserWarning, stacklevel=2)
        todo.append(c)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = sum(min(chunk_size, n - c * chunk_size) for c in mine)
        bar = tqdm(total=total, initial=total - sum(min(chunk_size, n - c * chunk_size) for c in todo),
                   unit="mock", desc="mocks")
    t0 = time.perf_counter()
    done = 0
    for c in todo:
        if max_chunks is not None and done >= max_chunks:
            break
        if time_limit_s is not None and time.perf_counter() - t0 > time_limit_s:
            break
        lo, hi = c * chunk_size, min((c + 1) * chunk_size, n)
        idx = np.arange(lo, lo + padded)  # padded: one compiled shape for every chunk
        parts = []
        for i in range(0, padded, per_call):
            batch = generate(suite, seed, idx[i:i + per_call], sharding=sharding)
            cols = truth_columns(batch)
            cols.update({k: np.asarray(v) for k, v in measure(batch, suite).items()})
            parts.append(cols)
        cols = {k: np.concatenate([c[k] for c in parts]) for k in parts[0]}
        keep = hi - lo
        cols = {k: v[:keep] for k, v in cols.items()}
        _write_chunk(out / "chunks" / f"chunk_{c:06d}.h5", cols,
                     {"chunk": c, "first_index": lo, "spec_hash": suite.hash(), "seed": seed})
        done += 1
        if bar is not None:
            bar.update(keep)
    if bar is not None:
        bar.close()
    return {"chunks_total": n_chunks, "chunks_computed": done, "mocks_computed": sum(
            min(chunk_size, n - c * chunk_size) for c in todo[:done]), "chunks_skipped": len(mine) - len(todo),
            "wall_s": time.perf_counter() - t0, "out": str(out), "model_spec_channels":
            model_spec(suite).n_chan if suite.mode == "cube" else 0}
