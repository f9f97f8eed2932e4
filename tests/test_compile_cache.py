"""The ``jaxgrad`` command's persistent compilation cache (jaxgrad._compile_cache)."""

import os
import subprocess
import sys

from jaxgrad import _compile_cache as cc


def test_cache_dir_from_the_environment(tmp_path):
    assert cc.cache_dir({"JAXGRAD_CACHE_DIR": str(tmp_path)}) == str(tmp_path)
    for off in ("off", "0", "", "None"):
        assert cc.cache_dir({"JAXGRAD_CACHE_DIR": off}) is None
    assert cc.cache_dir({"XDG_CACHE_HOME": "/x/cache"}) == os.path.join("/x/cache", "jaxgrad", "xla")
    # JAX's own variable wins (JAX reads it itself)
    assert cc.cache_dir({"JAX_COMPILATION_CACHE_DIR": "/a", "JAXGRAD_CACHE_DIR": "/b"}) is None
    assert cc.enable({"JAXGRAD_CACHE_DIR": "off"}) is None


def test_enable_writes_compiled_programs_to_the_cache_dir(tmp_path):
    d = tmp_path / "xla"
    code = (
        "import jax, jax.numpy as jnp\n"
        "from jaxgrad import _compile_cache as cc\n"
        f"print(cc.enable({{'JAXGRAD_CACHE_DIR': {str(d)!r}}}))\n"
        "print(float(jax.jit(lambda x: jnp.sum(jnp.sin(x) ** 2))(jnp.arange(5.0))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
            for _ in range(2)]
    assert outs[0] == outs[1]
    assert outs[0].splitlines()[0] == str(d)
    assert abs(float(outs[0].splitlines()[1]) - 2.12756) < 1e-4  # sum sin^2(0..4)
    # a program that compiles in milliseconds is stored too (JAX's default keeps only
    # those over 1 s; a fit's ~100 small programs would otherwise compile afresh each run)
    files = [p for p in d.rglob("*") if p.is_file()]
    assert files, "no compiled program was written to the cache"
