"""A full disk is reported as one, with the path and the free space, and leaves no partial files.

The real thing where it can be had: a small tmpfs (needs root and permission to mount; skipped
with the reason otherwise), and /dev/full, which fails every write with ENOSPC.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.artifacts import ArtifactStore
from pipeline.disk import DiskFullError, disk_full_guard, format_bytes, is_disk_full
from pipeline.paths import atomic_dir, atomic_write_text
from tests.small_fs import fill, small_tmpfs

DEV_FULL = Path("/dev/full")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, unmounted afterwards."""
    with small_tmpfs(tmp_path / "small", "1m") as mnt:
        yield mnt


@pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full on this system")
def test_enospc_from_dev_full_becomes_disk_full_with_path_and_free_space(tmp_path):
    partial = tmp_path / "partial.bin"
    partial.write_bytes(b"x" * 1000)
    with pytest.raises(DiskFullError) as caught, disk_full_guard(DEV_FULL, partial=[partial]):
        DEV_FULL.write_bytes(b"x" * 10_000)
    message = str(caught.value)
    assert message.startswith("disk full: no space left writing /dev/full (")
    assert "free now)" in message
    assert "No space left on device" in message  # the original error, one line
    assert caught.value.errno == errno.ENOSPC
    assert isinstance(caught.value.__cause__, OSError)
    assert not partial.exists()  # removed so the failure can be recorded


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError), disk_full_guard(tmp_path, partial=[tmp_path / "x"]):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))
    with pytest.raises(ValueError, match="bad input"), disk_full_guard(tmp_path):
        raise ValueError("bad input")


def test_a_tools_words_and_a_chained_errno_count_as_disk_full():
    assert is_disk_full(RuntimeError("llama-quantize failed (exit 1):\nNo space left on device"))
    assert is_disk_full(RuntimeError("sqlite3.OperationalError: database or disk is full"))
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as inner:
            raise RuntimeError("checkpoint failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(RuntimeError("disk I/O error"))
    assert format_bytes(0) == "0 bytes" and format_bytes(2_500_000) == "2.5 MB"


def test_atomic_dir_on_a_full_tmpfs_removes_the_partial_version(small_fs):
    fill(small_fs, leave=64 * 1024)
    target = small_fs / "asset" / "v1"
    with pytest.raises(DiskFullError) as caught, atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_bytes(os.urandom(256 * 1024))
    error = caught.value
    assert f"writing {target}" in str(error)
    assert error.free_at_failure is not None and error.free_at_failure < 8192
    assert error.free_bytes >= 60 * 1024  # the partial file is gone again
    assert not target.exists() and list((small_fs / "asset").iterdir()) == []


def test_artifact_store_version_and_pointer_on_a_full_disk(small_fs):
    store = ArtifactStore(small_fs / "artifacts")
    with store.write_version("curated_chatml", "d1") as tmp:
        (tmp / "examples.jsonl").write_text("{}\n")
    store.set_current("curated_chatml", "d1")
    fill(small_fs)
    with pytest.raises(DiskFullError, match="disk full"), store.write_version("x", "v") as tmp:
        (tmp / "big").write_bytes(b"y" * 100_000)
    assert store.current("curated_chatml").name == "d1"  # the previous version stays current
    with pytest.raises(DiskFullError, match=r"writing .*notes\.json"):
        atomic_write_text(small_fs / "notes.json", "z" * 100_000)
    assert not (small_fs / ".notes.json.tmp").exists()


def test_a_writer_that_loses_the_errno_is_judged_by_the_free_space(small_fs):
    """mlx raises RuntimeError("[write] Unable to write N bytes to file.") on a full disk."""
    mx = pytest.importorskip("mlx.core")
    fill(small_fs, leave=16 * 1024)
    target = small_fs / "checkpoints" / "step-0000010"
    with pytest.raises(DiskFullError) as caught, atomic_dir(target) as tmp:
        mx.save_safetensors(str(tmp / "adapters.safetensors"), {"w": mx.zeros((200_000,))})
    assert "Unable to write" in str(caught.value)
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_training_on_a_full_disk_fails_as_disk_full(small_fs, tiny_model, tmp_path):
    from pipeline.config import LoraConfig
    from pipeline.doctor import command_fix_split
    from pipeline.train import train_lora

    data = command_fix_split(tmp_path / "data", seed=0, n=32)
    adapter = small_fs / f"adapter-{uuid.uuid4().hex[:6]}"
    cfg = LoraConfig(iters=4, checkpoint_every=2, steps_per_report=2, max_seq_length=64)
    train_lora(tiny_model.path, data, small_fs / "probe", cfg)  # how much one run writes
    used = sum(p.stat().st_size for p in (small_fs / "probe").rglob("*") if p.is_file())
    fill(small_fs, leave=used // 3)
    with pytest.raises(DiskFullError) as caught:
        train_lora(tiny_model.path, data, adapter, cfg)
    assert f"writing {adapter}" in str(caught.value)
    assert not list(adapter.rglob(".*.tmp*")), "partial final files left behind"


def test_gguf_conversion_and_quantization_on_a_full_disk(small_fs, toolchain, tiny_model, tiny_f16):
    """llama.cpp's converter and llama-quantize run as tools: their own words for ENOSPC count."""
    from pipeline.gguf import convert_to_gguf, quantize

    fill(small_fs, leave=64 * 1024)  # far less than the tiny model's F16 (about 0.7 MB)
    target = small_fs / "gguf_quants" / "v1"
    with pytest.raises(DiskFullError, match=f"writing {target}"), atomic_dir(target) as tmp:
        convert_to_gguf(toolchain, tiny_model.path, tmp / "f16.gguf")
    with pytest.raises(DiskFullError, match=f"writing {target}"), atomic_dir(target) as tmp:
        quantize(toolchain, tiny_f16, tmp / "q8_0.gguf", "Q8_0")
    assert list((small_fs / "gguf_quants").iterdir()) == []  # no half-written GGUF left


def test_disk_full_error_survives_pickling(tmp_path):
    import pickle

    error = pickle.loads(pickle.dumps(DiskFullError(tmp_path / "x", "(detail)", 0)))
    assert error.path == tmp_path / "x" and error.free_at_failure == 0
    assert str(error).startswith(f"disk full: no space left writing {tmp_path / 'x'} (0 bytes")


def test_copying_session_logs_into_a_full_store_fails_as_disk_full(small_fs, tmp_path):
    from pipeline.sessions import ingest_copy

    project = tmp_path / "projects" / "-home-me-app"
    project.mkdir(parents=True)
    (project / "s1.jsonl").write_text('{"type": "user"}\n' * 20_000)  # ~340 KB
    fill(small_fs, leave=64 * 1024)
    store = small_fs / "source"
    with pytest.raises(DiskFullError, match="disk full") as caught:
        ingest_copy(tmp_path / "projects", store)
    assert "s1.jsonl" in str(caught.value)
    assert not [p for p in store.rglob("*") if p.is_file()]  # no partial copy left behind
