"""The llama.cpp toolchain: built from the llama-cpp-python sdist, so tools and bindings agree.

Found in this order: an explicit directory, `LLAMA_CPP_DIR`, the build cache (keyed by the
installed llama-cpp-python version), then PATH (Homebrew's llama.cpp on a Mac).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from pipeline.paths import atomic_dir, cache_root

TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity", "llama-server", "llama-bench")
CONVERT_SCRIPT = "convert_hf_to_gguf.py"
FIX = (
    "run `make toolchain` (or `.venv/bin/nightshift toolchain build`), set LLAMA_CPP_DIR "
    "to a llama.cpp build, or on a Mac `brew install llama.cpp`"
)

Progress = Callable[[str], None]


class ToolchainError(RuntimeError):
    """A llama.cpp tool is missing or failed; the message names the fix."""


@dataclass(frozen=True)
class Toolchain:
    """Paths to the llama.cpp tools of one revision."""

    source: str  # "explicit", "LLAMA_CPP_DIR", "cache" or "PATH"
    version: str  # llama-cpp-python version it was built from, or "unknown"
    bins: dict[str, Path] = field(default_factory=dict)
    convert_script: Path | None = None

    def bin(self, name: str) -> Path:
        if name not in self.bins:
            raise ToolchainError(
                f"{name} not found in the llama.cpp toolchain ({self.source}); {FIX}"
            )
        return self.bins[name]

    def convert(self) -> Path:
        if self.convert_script is None:
            raise ToolchainError(f"{CONVERT_SCRIPT} not found ({self.source}); {FIX}")
        return self.convert_script

    @property
    def gguf_py(self) -> Path:
        """The gguf-py package of the same revision as the converter."""
        return self.convert().parent / "gguf-py"


def bindings_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError as exc:
        raise ToolchainError(
            "llama-cpp-python is not installed; run `make venv` or `pip install -e .`"
        ) from exc


def cache_dir(version: str | None = None) -> Path:
    version = version or bindings_version()
    key = f"{version}-{platform.system().lower()}-{platform.machine()}"
    return cache_root() / "llama.cpp" / key


def _from_dir(root: Path, source: str, version: str) -> Toolchain | None:
    bins = {}
    for name in TOOLS:
        for sub in ("bin", "build/bin", "."):
            path = root / sub / name
            if path.is_file() and os.access(path, os.X_OK):
                bins[name] = path
                break
    script = root / CONVERT_SCRIPT
    if not bins and not script.is_file():
        return None
    return Toolchain(source, version, bins, script if script.is_file() else None)


def _from_path() -> Toolchain | None:
    bins = {name: Path(p) for name in TOOLS if (p := shutil.which(name))}
    script = shutil.which(CONVERT_SCRIPT)
    if not bins:
        return None
    return Toolchain("PATH", "unknown", bins, Path(script) if script else None)


def locate_toolchain(explicit: Path | None = None) -> Toolchain:
    """Find the tools; a partial install elsewhere is completed from the cache where it can."""
    candidates: list[Toolchain] = []
    if explicit is not None:
        found = _from_dir(Path(explicit), "explicit", "unknown")
        if found is None:
            raise ToolchainError(f"no llama.cpp tools in {explicit}; {FIX}")
        candidates.append(found)
    if env := os.environ.get("LLAMA_CPP_DIR"):
        found = _from_dir(Path(env), "LLAMA_CPP_DIR", "unknown")
        if found is None:
            raise ToolchainError(f"LLAMA_CPP_DIR={env} holds no llama.cpp tools; {FIX}")
        candidates.append(found)
    try:
        cached = _from_dir(cache_dir(), "cache", bindings_version())
    except ToolchainError:
        cached = None
    candidates += [c for c in (cached, _from_path()) if c is not None]
    if not candidates:
        raise ToolchainError(f"no llama.cpp toolchain found; {FIX}")
    first = candidates[0]
    bins = {}
    for cand in reversed(candidates):
        bins.update(cand.bins)
    script = next((c.convert_script for c in candidates if c.convert_script), None)
    return Toolchain(first.source, first.version, bins, script)


def _run_logged(cmd: list[str], cwd: Path, log: Path, progress: Progress) -> None:
    """Run a build command, passing its percentage lines on and keeping the full log."""
    last = 0.0
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            pct = re.match(r"\[\s*(\d+)%\]", line)
            if pct and time.monotonic() - last > 15:
                last = time.monotonic()
                progress(f"  llama.cpp build {pct.group(1)}%")
        if proc.wait() != 0:
            tail = log.read_text(errors="replace").splitlines()[-25:]
            raise ToolchainError(
                f"command failed: {' '.join(cmd)}\n" + "\n".join(tail) + f"\nfull log: {log}"
            )


def _fetch_sdist(version: str, into: Path, log: Path, progress: Progress) -> Path:
    progress(f"fetching the llama-cpp-python {version} sdist (it carries llama.cpp)")
    # Only this package as source: ":all:" would build its build-dependencies from source too.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python"]
    cmd += ["-d", str(into), f"llama-cpp-python=={version}"]
    _run_logged(cmd, into, log, progress)
    sdists = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        raise ToolchainError(f"pip download gave no sdist for llama-cpp-python=={version}")
    with tarfile.open(sdists[0]) as tar:
        tar.extractall(into, filter="data")
    return next(into.glob("llama_cpp_python-*/vendor/llama.cpp"))


def build_toolchain(
    version: str | None = None, jobs: int | None = None, progress: Progress = print
) -> Toolchain:
    """Build the tools once per llama-cpp-python version into the cache; reuse it after."""
    version = version or bindings_version()
    target = cache_dir(version)
    found = _from_dir(target, "cache", version)
    if found and set(found.bins) == set(TOOLS) and found.convert_script:
        progress(f"llama.cpp toolchain {version}: cached at {target}")
        return found
    if shutil.which("cmake") is None:
        raise ToolchainError("cmake is needed to build llama.cpp: apt-get install cmake")
    # The work dir survives a failure so a rerun continues the compile instead of restarting.
    work = target.with_name(target.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    started = time.monotonic()
    src = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"), None)
    src = src or _fetch_sdist(version, work, log, progress)
    build = work / "build"
    flags = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",  # self-contained binaries, relocatable within the cache
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",  # it would download the web UI; we serve the API only
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_APP=OFF",
    ]
    progress(f"configuring llama.cpp {version} (log: {log})")
    _run_logged(["cmake", "-S", str(src), "-B", str(build), *flags], work, log, progress)
    jobs = jobs or os.cpu_count() or 2
    progress(f"compiling {', '.join(TOOLS)} with {jobs} jobs (several minutes, once per version)")
    cmd = ["cmake", "--build", str(build), "-j", str(jobs), "--target", *TOOLS]
    _run_logged(cmd, work, log, progress)
    with atomic_dir(target) as tmp:
        (tmp / "bin").mkdir()
        for name in TOOLS:
            shutil.copy2(build / "bin" / name, tmp / "bin" / name)
        shutil.copy2(src / CONVERT_SCRIPT, tmp / CONVERT_SCRIPT)
        for tree in ("gguf-py", "conversion"):
            shutil.copytree(src / tree, tmp / tree)
        shutil.copy2(src / "LICENSE", tmp / "LICENSE")
        info = {"llama_cpp_python": version, "flags": flags, "seconds": time.monotonic() - started}
        (tmp / "BUILD_INFO.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    progress(f"llama.cpp toolchain {version} built in {time.monotonic() - started:.0f}s: {target}")
    built = _from_dir(target, "cache", version)
    assert built is not None  # the atomic rename above just put it there
    return built


def run_tool(
    cmd: list[str | Path], timeout: float | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a llama.cpp tool; a failure raises with the tool's own last lines."""
    args = [str(c) for c in cmd]
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise ToolchainError(f"{Path(args[0]).name} failed (exit {proc.returncode}):\n{tail}")
    return proc
