from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.toolchain import TOOLS, ToolchainError, build_toolchain, cache_dir, locate_toolchain


def _fake_build(root: Path, tools: tuple[str, ...]) -> Path:
    (root / "build" / "bin").mkdir(parents=True)
    for name in tools:
        exe = root / "build" / "bin" / name
        exe.write_text("#!/bin/sh\necho fake\n")
        exe.chmod(0o755)
    (root / "convert_hf_to_gguf.py").write_text("")
    return root


def test_cache_is_built_for_the_installed_bindings_and_reused():
    tc = build_toolchain(progress=lambda _: None)  # cached by `make test`: returns at once
    assert tc.source == "cache" and tc.bins.keys() == set(TOOLS)
    assert tc.bin("llama-server").parent.parent == cache_dir()
    out = subprocess.run([tc.bin("llama-server"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "version" in (out.stdout + out.stderr)
    assert (tc.gguf_py / "gguf" / "__init__.py").is_file()


def test_llama_cpp_dir_wins_and_the_cache_fills_gaps(tmp_path, monkeypatch):
    partial = _fake_build(tmp_path / "mine", ("llama-quantize",))
    monkeypatch.setenv("LLAMA_CPP_DIR", str(partial))
    tc = locate_toolchain()
    assert tc.source == "LLAMA_CPP_DIR"
    assert tc.bin("llama-quantize") == partial / "build" / "bin" / "llama-quantize"
    assert tc.bin("llama-server").parent.parent == cache_dir()  # completed from the cache


def test_explicit_dir_without_tools_names_the_fix(tmp_path):
    with pytest.raises(ToolchainError, match="make toolchain"):
        locate_toolchain(tmp_path)


def test_nothing_anywhere_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("NIGHTSHIFT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match="LLAMA_CPP_DIR"):
        locate_toolchain()


def test_path_is_the_last_resort(tmp_path, monkeypatch):
    bindir = _fake_build(tmp_path / "brew", TOOLS) / "build" / "bin"
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("NIGHTSHIFT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(bindir))
    tc = locate_toolchain()
    assert tc.source == "PATH" and tc.bin("llama-bench") == bindir / "llama-bench"
    with pytest.raises(ToolchainError, match="convert_hf_to_gguf.py"):
        tc.convert()
