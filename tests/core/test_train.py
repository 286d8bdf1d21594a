"""Real LoRA training on the tiny model: derived steps, checkpoints, a killed run resuming."""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import LoraConfig
from pipeline.doctor import command_fix_split
from pipeline.train import (
    CHECKPOINT_FILES,
    TrainingError,
    TrainResult,
    find_checkpoint,
    fingerprint,
    plan_iterations,
    train_lora,
)

# The default rate (higher ones overshoot the pretrained tiny base); val at 0, 15 and 30.
CFG = LoraConfig(
    iters=30,
    learning_rate=1e-3,
    max_seq_length=128,
    checkpoint_every=10,
    steps_per_report=5,
    steps_per_eval=15,
)


def test_plan_iterations_follows_the_data():
    cfg = LoraConfig(batch_size=4)  # 3 epochs, clamped to [20, 2000]
    assert plan_iterations(100, cfg) == 75
    assert plan_iterations(101, cfg) == 76  # ceil(75.75): the last partial batch counts
    assert plan_iterations(8, cfg) == 20  # a tiny night still gets enough steps to learn
    assert plan_iterations(1_000_000, cfg) == 2000  # and a huge one still ends
    assert plan_iterations(10, LoraConfig(epochs=0.5, batch_size=2, min_iters=1)) == 3
    assert plan_iterations(1_000_000, LoraConfig(iters=5)) == 5  # explicit wins, even below min


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return command_fix_split(tmp_path_factory.mktemp("lora-data"), seed=0, n=64)


@pytest.fixture(scope="module")
def run30(tiny_model, data: Path, tmp_path_factory) -> tuple[TrainResult, list[dict]]:
    """One uninterrupted run that several tests read."""
    seen: list[dict] = []
    out = tmp_path_factory.mktemp("run30") / "adapter"
    return train_lora(tiny_model.path, data, out, CFG, on_event=seen.append), seen


def _kinds(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def test_events_stream_in_order(run30):
    result, seen = run30
    assert seen == result.events and result.resumed_from == 0
    start = seen[0]
    assert start["event"] == "start" and start["iters"] == 30 and start["train_examples"] == 64
    assert start["resumed_from"] == 0 and start["pid"] > 0
    assert seen[-1]["event"] == "done"
    trains = [e for e in seen if e["event"] == "train"]
    assert [e["iteration"] for e in trains] == [5, 10, 15, 20, 25, 30]
    assert all(e["tokens_per_second"] > 0 and e["peak_memory"] > 0 for e in trains)
    assert [e["trained_tokens"] for e in trains] == sorted(e["trained_tokens"] for e in trains)
    assert [e["iteration"] for e in seen if e["event"] == "val"] == [0, 15, 30]
    assert [e["step"] for e in seen if e["event"] == "checkpoint"] == [10, 20, 30]
    # Cosine decay: the rate falls from the peak towards 10% of it.
    rates = [e["learning_rate"] for e in trains]
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.2 * CFG.learning_rate
    metrics = json.loads((result.adapter_dir / "metrics.json").read_text())
    assert metrics == [e for e in seen if e["event"] in ("train", "val")]


def test_loss_decreases_on_the_command_fix_data(run30):
    result, _ = run30
    trains = [e for e in result.events if e["event"] == "train"]
    vals = [e for e in result.events if e["event"] == "val"]
    # A random model's logits are small, so its loss floor is near ln(vocab); 0.2 nats is
    # several times the noise between reports.
    assert trains[-1]["train_loss"] < trains[0]["train_loss"] - 0.2, trains
    assert vals[-1]["val_loss"] < vals[0]["val_loss"] - 0.15, vals


def test_checkpoints_are_pruned_to_the_last_two(run30):
    root = run30[0].adapter_dir / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-0000020", "step-0000030"]
    for path in root.iterdir():
        assert all((path / name).is_file() for name in CHECKPOINT_FILES)
    state = json.loads((root / "step-0000020" / "state.json").read_text())
    assert state["step"] == 20 and state["data_order"]["batches_consumed"] == 20


def test_the_adapter_loads_in_mlx_lm_and_generates(run30, tiny_model):
    import mlx.core as mx
    from mlx_lm import load, stream_generate

    out = run30[0].adapter_dir
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["num_layers"] == 2
    assert config["lora_parameters"] == {"rank": 8, "scale": 20.0, "dropout": 0.0}
    model, tokenizer = load(str(tiny_model.path), adapter_path=str(out))
    base, _ = load(str(tiny_model.path))
    prompt = "<|im_start|>user\nFix this command: gti stauts<|im_end|>\n<|im_start|>assistant\n"
    ids = mx.array([tokenizer.encode(prompt)])
    assert not mx.allclose(model(ids), base(ids)).item(), "the adapter changed nothing"
    tokens = [r.token for r in stream_generate(model, tokenizer, prompt, max_tokens=4)]
    assert tokens


def test_a_killed_run_resumes_where_it_stopped(run30, tiny_model, data, tmp_path):
    import mlx.core as mx

    out = tmp_path / "adapter"
    pid = {}

    def kill_after_first_checkpoint(event: dict) -> None:
        if event["event"] == "start":
            pid["child"] = event["pid"]
        if event["event"] == "checkpoint" and event["step"] == 10:
            os.kill(pid["child"], signal.SIGKILL)

    with pytest.raises(TrainingError, match="killed by SIGKILL"):
        train_lora(tiny_model.path, data, out, CFG, on_event=kill_after_first_checkpoint)
    assert not (out / "adapters.safetensors").exists()  # no final output from a failed run

    result = train_lora(tiny_model.path, data, out, CFG)
    assert result.resumed_from == 10 and result.events[0]["resumed_from"] == 10
    trains = [e for e in result.events if e["event"] == "train"]
    assert trains[0]["iteration"] == 15
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["iteration"] for e in metrics if e["event"] == "train"] == [5, 10, 15, 20, 25, 30]
    # Same weights as the uninterrupted run: optimizer state, schedule and batch order all
    # continued from the checkpoint.
    ours = mx.load(str(out / "adapters.safetensors"))
    theirs = mx.load(str(run30[0].adapter_dir / "adapters.safetensors"))
    assert ours.keys() == theirs.keys()
    assert all(mx.allclose(ours[k], theirs[k], atol=1e-5).item() for k in ours)


def test_a_checkpoint_from_another_config_is_not_resumed(run30, tiny_model, data, tmp_path):
    out = tmp_path / "adapter"
    shutil.copytree(run30[0].adapter_dir, out)
    seen: list[dict] = []

    def stop_at_start(event: dict) -> None:
        seen.append(event)
        if event["event"] == "start":
            os.kill(event["pid"], signal.SIGKILL)

    other = replace(CFG, learning_rate=2e-3)
    with pytest.raises(TrainingError):
        train_lora(tiny_model.path, data, out, other, on_event=stop_at_start)
    assert seen[0]["resumed_from"] == 0
    assert set(seen[0]["ignored_checkpoints"]) == {"step-0000020", "step-0000030"}
    assert not list((out / "checkpoints").glob("step-*")), "stale checkpoints must not linger"
    assert not (out / "adapters.safetensors").exists()


def test_fingerprint_covers_model_data_and_settings_but_not_cadence(tiny_model, data, tmp_path):
    fp = fingerprint(tiny_model.path, data, CFG, 30)
    cadence = replace(CFG, steps_per_report=1, steps_per_eval=2, checkpoint_every=3)
    assert fingerprint(tiny_model.path, data, cadence, 30) == fp
    assert fingerprint(tiny_model.path, data, replace(CFG, rank=4), 30) != fp
    assert fingerprint(tiny_model.path, data, CFG, 31) != fp
    changed = shutil.copytree(data, tmp_path / "data")
    with (changed / "train.jsonl").open("a") as fh:
        fh.write('{"messages": []}\n')
    assert fingerprint(tiny_model.path, changed, CFG, 30) != fp


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    for step, fp in ((5, "a"), (10, "a"), (15, "a")):
        path = tmp_path / f"step-{step:07d}"
        path.mkdir()
        for name in CHECKPOINT_FILES:
            (path / name).write_bytes(b"")
        (path / "state.json").write_text(json.dumps({"step": step, "fingerprint": fp}))
    (tmp_path / "step-0000015" / "optimizer.safetensors").unlink()
    found, unusable = find_checkpoint(tmp_path, "a")
    assert found is not None and found.step == 10
    assert unusable == {"step-0000015": "incomplete"}
    assert find_checkpoint(tmp_path, "b")[0] is None


def test_fuse_parity_passes_a_real_fuse_and_catches_a_dropped_adapter():
    from pipeline.fuse import Parity

    assert Parity(0.009, 1.7, 0.14, 3).ok  # float32 summation order
    assert not Parity(1.7, 1.7, 0.14, 3).ok  # fused == base: adapter dropped
    assert not Parity(0.5, 1.7, 0.6, 3).ok  # closer to base+adapter, but not by enough
    assert Parity(0.0, 0.0, 0.14, 3).ok  # an adapter that changes nothing fuses to the base
