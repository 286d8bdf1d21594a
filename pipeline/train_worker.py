"""The child side of `pipeline.train`: mlx-lm's building blocks in a loop that checkpoints.

Run as `python -m pipeline.train_worker JOB_JSON`. The step is mlx-lm's own (`default_loss`
under `mx.compile` over model, optimizer and RNG state, as `mlx_lm.tuner.trainer.train` does);
around it this loop saves and restores everything a run needs to continue exactly: adapter
weights, optimizer moments and step (so the schedule continues), and the data-order position.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import types
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.lora import CONFIG_DEFAULTS
from mlx_lm.tuner.datasets import CacheDataset, load_dataset
from mlx_lm.tuner.trainer import default_loss, evaluate, grad_checkpoint, iterate_batches
from mlx_lm.tuner.utils import build_schedule, linear_to_lora_layers, print_trainable_parameters
from mlx_lm.utils import load, maybe_set_recommended_wired_limit, save_config

from pipeline.config import LoraConfig
from pipeline.disk import DiskFullError, disk_full_guard
from pipeline.paths import atomic_dir
from pipeline.train import CHECKPOINTS, KEEP_CHECKPOINTS, schedule_config


class Worker:
    def __init__(self, job: dict, events: IO[str]) -> None:
        self.job = job
        self.events = events
        self.cfg = LoraConfig(**job["cfg"])
        self.iters: int = job["iters"]
        self.adapter_dir = Path(job["adapter_dir"])
        self.history: list[dict] = []  # train and val events since step 0, for metrics.json
        self.trained_tokens = 0

    def emit(self, kind: str, **fields: object) -> dict:
        event = {"event": kind, **fields}
        self.events.write(json.dumps(event) + "\n")
        return event

    def setup(self) -> None:
        cfg = self.cfg
        self.model, tokenizer = load(self.job["model"])
        data_args = types.SimpleNamespace(
            data=self.job["data"], train=True, test=False, mask_prompt=cfg.mask_prompt
        )
        train_set, valid_set, _ = load_dataset(data_args, tokenizer)
        self.train_set, self.valid_set = CacheDataset(train_set), CacheDataset(valid_set)
        mx.random.seed(cfg.seed)  # LoRA's random init, in mlx-lm's order
        self.model.freeze()
        depth = len(self.model.layers)
        self.num_layers = depth if cfg.num_layers < 0 else min(cfg.num_layers, depth)
        self.lora_parameters = {"rank": cfg.rank, "scale": cfg.scale, "dropout": cfg.dropout}
        use_dora = cfg.fine_tune_type == "dora"
        linear_to_lora_layers(self.model, self.num_layers, self.lora_parameters, use_dora)
        print_trainable_parameters(self.model)
        self.schedule = schedule_config(cfg, self.iters)
        lr = build_schedule(self.schedule) if self.schedule else cfg.learning_rate
        self.optimizer = optim.Adam(learning_rate=lr)
        self.optimizer.init(self.model.trainable_parameters())

    def restore(self, path: Path) -> int:
        """Load a checkpoint's weights, optimizer state and counters; returns its step."""
        self.model.load_weights(str(path / "adapters.safetensors"), strict=False)
        saved = mx.load(str(path / "optimizer.safetensors"))
        expected = {k for k, _ in tree_flatten(self.optimizer.state)}
        if set(saved) != expected:
            raise RuntimeError(f"{path}: optimizer state does not fit this model's adapters")
        self.optimizer.state = tree_unflatten(list(saved.items()))
        self.optimizer.init(self.model.trainable_parameters())  # marks it ready, keeps values
        state = json.loads((path / "state.json").read_text())
        self.history = state["history"]
        self.trained_tokens = state["trained_tokens"]
        return int(state["step"])

    def batches(self, consumed: int) -> Iterator[tuple[mx.array, mx.array]]:
        """mlx-lm's batch order for the seed, fast-forwarded past the batches already trained on.

        The order depends only on numpy's global RNG, seeded here; `validate` puts that RNG
        back after use, so the same seed and count give the same next batch after a resume.
        """
        np.random.seed(self.cfg.seed)
        cfg = self.cfg
        batches = iterate_batches(self.train_set, cfg.batch_size, cfg.max_seq_length, loop=True)
        for _ in range(consumed):
            next(batches)
        return batches

    def validate(self, iteration: int) -> None:
        cfg = self.cfg
        rng = np.random.get_state()
        started = time.perf_counter()
        val_loss = evaluate(
            model=self.model,
            dataset=self.valid_set,
            batch_size=cfg.batch_size,
            num_batches=cfg.val_batches,
            max_seq_length=cfg.max_seq_length,
            iterate_batches=partial(iterate_batches, seed=cfg.seed),  # the same batches each time
        )
        np.random.set_state(rng)
        self.model.train()
        elapsed = time.perf_counter() - started
        self.history.append(
            self.emit("val", iteration=iteration, val_loss=val_loss, val_time=elapsed)
        )

    def run(self) -> None:
        cfg, model, optimizer = self.cfg, self.model, self.optimizer
        resume = self.job["resume"]
        start = self.restore(Path(resume)) if resume else 0
        self.emit(
            "start",
            pid=os.getpid(),
            iters=self.iters,
            train_examples=len(self.train_set),
            valid_examples=len(self.valid_set),
            resumed_from=start,
            ignored_checkpoints=self.job["ignored_checkpoints"],
        )
        maybe_set_recommended_wired_limit()
        if cfg.grad_checkpoint:
            grad_checkpoint(model.layers[0])
        loss_and_grad = nn.value_and_grad(model, default_loss)
        state = [model.state, optimizer.state, mx.random.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def step(batch: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
            (loss, toks), grad = loss_and_grad(model, batch, lengths)
            optimizer.update(model, grad)
            return loss, toks

        has_val = len(self.valid_set) >= cfg.batch_size  # mlx-lm cannot batch fewer
        started, tokens_before = time.perf_counter(), self.trained_tokens
        batches = self.batches(start)
        model.train()
        if has_val and start == 0:
            self.validate(0)
        losses, toks, steps, step_time = mx.array(0.0), mx.array(0), 0, 0.0
        for it in range(start + 1, self.iters + 1):
            batch = next(batches)
            tic = time.perf_counter()
            # Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
            mx.random.seed((cfg.seed << 32) + it)
            loss, ntoks = step(*batch)
            losses, toks, steps = losses + loss, toks + ntoks, steps + 1
            mx.eval(state, losses, toks)
            step_time += time.perf_counter() - tic
            if it % cfg.steps_per_report == 0 or it == self.iters:
                window_tokens = toks.item()
                self.trained_tokens += window_tokens
                event = self.emit(
                    "train",
                    iteration=it,
                    train_loss=losses.item() / steps,
                    learning_rate=optimizer.learning_rate.item(),
                    tokens_per_second=window_tokens / step_time,
                    iterations_per_second=steps / step_time,
                    trained_tokens=self.trained_tokens,
                    peak_memory=mx.get_peak_memory() / 1e9,  # GB
                )
                self.history.append(event)
                losses, toks, steps, step_time = mx.array(0.0), mx.array(0), 0, 0.0
            if has_val and (it % cfg.steps_per_eval == 0 or it == self.iters):
                self.validate(it)
            if it % cfg.checkpoint_every == 0:
                path = self.save_checkpoint(it, pending_tokens=toks.item())
                self.emit("checkpoint", step=it, path=str(path))
        self.write_final()
        elapsed = time.perf_counter() - started
        self.emit(
            "done",
            iteration=self.iters,
            trained_tokens=self.trained_tokens,
            loop_seconds=elapsed,
            tokens_per_second=(self.trained_tokens - tokens_before) / elapsed,
        )

    def save_checkpoint(self, step: int, pending_tokens: int) -> Path:
        """Write `checkpoints/step-NNNNNNN` all at once (temp dir + rename), keep the newest."""
        root = self.adapter_dir / CHECKPOINTS
        target = root / f"step-{step:07d}"
        state = {
            "step": step,
            "fingerprint": self.job["fingerprint"],
            # The batch order is mlx-lm's for this seed; one batch per step has been consumed.
            "data_order": {"numpy_seed": self.cfg.seed, "batches_consumed": step},
            "trained_tokens": self.trained_tokens + pending_tokens,
            "history": self.history,
        }
        with atomic_dir(target) as tmp:
            mx.save_safetensors(str(tmp / "adapters.safetensors"), self.adapter_weights())
            optimizer_state = dict(tree_flatten(self.optimizer.state))
            mx.save_safetensors(str(tmp / "optimizer.safetensors"), optimizer_state)
            (tmp / "state.json").write_text(json.dumps(state))
            _fsync(*tmp.iterdir(), tmp)
        _fsync(root)
        for old in sorted(root.glob("step-*"))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old)
        return target

    def adapter_weights(self) -> dict[str, mx.array]:
        return dict(tree_flatten(self.model.trainable_parameters()))

    def write_final(self) -> None:
        """The outputs mlx-lm's `train_model` writes, plus metrics.json; each under a temp
        name first, and the weights renamed last: their presence means the run finished."""
        cfg, out = self.cfg, self.adapter_dir
        config = dict(CONFIG_DEFAULTS) | {
            "model": self.job["model"],
            "data": self.job["data"],
            "adapter_path": str(out),
            "train": True,
            "fine_tune_type": cfg.fine_tune_type,
            "num_layers": self.num_layers,
            "lora_parameters": self.lora_parameters,
            "batch_size": cfg.batch_size,
            "iters": self.iters,
            "learning_rate": cfg.learning_rate,
            "lr_schedule": self.schedule,
            "max_seq_length": cfg.max_seq_length,
            "mask_prompt": cfg.mask_prompt,
            "grad_checkpoint": cfg.grad_checkpoint,
            "seed": cfg.seed,
            "steps_per_report": cfg.steps_per_report,
            "steps_per_eval": cfg.steps_per_eval,
            "val_batches": cfg.val_batches,
            "save_every": cfg.checkpoint_every,
        }
        names = ("adapter_config.json", "metrics.json", "adapters.safetensors")
        temps = (".adapter_config.json.tmp", ".metrics.json.tmp", ".adapters.tmp.safetensors")
        with disk_full_guard(out, partial=[out / t for t in temps]):
            save_config(config, out / ".adapter_config.json.tmp")
            (out / ".metrics.json.tmp").write_text(json.dumps(self.history, indent=1) + "\n")
            mx.save_safetensors(str(out / ".adapters.tmp.safetensors"), self.adapter_weights())
            _fsync(*(out / t for t in temps))
        for name, temp in zip(names, temps, strict=True):
            os.replace(out / temp, out / name)
        _fsync(out)


def _fsync(*paths: Path) -> None:
    """Flush files and directories to disk, so a rename after it survives a power cut."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def main(job: dict) -> None:
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever mlx-lm prints goes to the log, not into the event stream
    worker = Worker(job, events)
    worker.setup()
    try:
        worker.run()
    except DiskFullError as exc:  # the parent raises it again, with the same path and figures
        worker.emit(
            "disk_full", path=str(exc.path), free_at_failure=exc.free_at_failure, detail=exc.detail
        )
        sys.exit(1)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
