from __future__ import annotations

import json

from pipeline.doctor import command_fix_split, run_doctor


def test_every_real_part_passes_on_the_tiny_model(tmp_path):
    lines = []
    checks = run_doctor(lambda c: lines.append(c.line()), workdir=tmp_path)
    assert [c.status for c in checks] == ["PASS"] * 8, "\n".join(lines)
    assert [c.name for c in checks][2:] == [
        "mlx-lm LoRA (5 steps)",
        "mlx-lm fuse",
        "convert to GGUF",
        "quantize Q4_K_M",
        "llama-cpp-python load",
        "chat completion",
    ]
    assert (tmp_path / "adapter" / "adapters.safetensors").is_file()
    assert (tmp_path / "fused" / "tokenizer.model").is_file()  # kept for the converter
    assert (tmp_path / "model-Q4_K_M.gguf").stat().st_size > 0
    assert all(line.startswith("PASS") for line in lines)


def test_a_broken_part_fails_with_its_fix_and_skips_what_needs_it(tmp_path):
    lines = []
    checks = run_doctor(
        lambda c: lines.append(c.line()), base_model=tmp_path / "nope", workdir=tmp_path
    )
    status = {c.name: c.status for c in checks}
    assert status["llama.cpp toolchain"] == "PASS"
    assert status["mlx-lm LoRA (5 steps)"] == "FAIL"
    assert status["mlx-lm fuse"] == "SKIP" and status["chat completion"] == "SKIP"
    failed = next(c for c in checks if c.status == "FAIL")
    assert failed.fix and "fix:" in failed.line()


def test_command_fix_split_is_chatml_and_seeded(tmp_path):
    a = command_fix_split(tmp_path / "a", seed=3)
    b = command_fix_split(tmp_path / "b", seed=3)
    assert (a / "train.jsonl").read_text() == (b / "train.jsonl").read_text()
    rows = [json.loads(x) for x in (a / "train.jsonl").read_text().splitlines()]
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]
    assert all(r["messages"][0]["content"] != r["messages"][1]["content"] for r in rows)
