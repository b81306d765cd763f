"""The kernels' numba cache is keyed by their source (mechanisms/numba_cache.py)."""

from __future__ import annotations

from pathlib import Path

import numba

from mechanisms import numba_cache


def test_the_cache_folder_changes_with_any_kernel_module(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "helper.py").write_text("BITS = 63\n")
    (pkg / "kernel.py").write_text("def f(): ...\n")
    monkeypatch.setattr(numba_cache, "_SOURCES", (pkg,))
    before = numba_cache.source_hash()
    # an edit of a module a kernel only inlines from (numba would keep the kernel's cache)
    (pkg / "helper.py").write_text("BITS = 32\n")
    after = numba_cache.source_hash()
    assert after != before
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    assert numba_cache.cache_dir() == tmp_path / "cache" / f"kernels-{after}"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_cache.cache_dir() == tmp_path / "xdg" / "market-alloc" / "numba" / f"kernels-{after}"


def test_every_cached_kernel_lives_in_the_source_keyed_folder():
    from market.core import candidates, eligibility, hierarchy, multiresource, oracle
    from mechanisms import kernels

    root = Path(numba.config.CACHE_DIR)
    assert root.name == f"kernels-{numba_cache.source_hash()}"
    kernels_seen = 0
    for module in (candidates, eligibility, hierarchy, multiresource, oracle, kernels):
        for value in vars(module).values():
            cache = getattr(value, "_cache", None)
            if cache is None or not hasattr(cache, "cache_path"):
                continue
            kernels_seen += 1
            assert Path(cache.cache_path).is_relative_to(root), (module.__name__, cache.cache_path)
    assert kernels_seen >= 10


def test_numbas_threads_sleep_when_idle_unless_the_environment_says_otherwise():
    """Every module with a parallel kernel sets OMP_WAIT_POLICY=PASSIVE for libgomp, and keeps a value already set."""
    import os
    import subprocess
    import sys

    probe = "import os, market.core.{}; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for module in ("candidates", "hierarchy", "oracle"):
        out = subprocess.run([sys.executable, "-c", probe.format(module)], env=env, capture_output=True, text=True,
                             check=True)
        assert out.stdout.strip() == "PASSIVE"
    for given, kept in (("ACTIVE", "ACTIVE"), ("", "PASSIVE")):  # an empty value is no policy
        out = subprocess.run([sys.executable, "-c", probe.format("candidates")], env={**env, "OMP_WAIT_POLICY": given},
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == kept
