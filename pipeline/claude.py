"""Claude as a paid service held on a leash: a budget, a disk cache, batches, no secrets.

Every request is built here, so its cache key (sha256 of the canonical request) is the same
whether it went out alone or in a Message Batch; a rerun or a backfill finds the answer on
disk and pays nothing. Before a request goes out, its worst case (counted input tokens at the
cache-write rate plus `max_tokens` of output) must fit in what is left of the budget; after,
the usage the API reports is what is charged. Retries and timeouts are the SDK's own.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anthropic

from pipeline.paths import atomic_write_text
from pipeline.secret_audit import audit_text

CACHE_WRITE = 1.25  # a 5-minute prompt-cache write costs 1.25x input
CACHE_READ = 0.10  # a prompt-cache read costs a tenth of input
BATCH_DISCOUNT = 0.5  # the Message Batches API bills half of every rate


@dataclass(frozen=True)
class Prices:
    """USD per million tokens at the standard (not batch) rate."""

    input: float
    output: float


# Longest matching prefix wins, so dated snapshots ("claude-sonnet-4-5-20250929") are covered.
PRICES: dict[str, Prices] = {
    "claude-opus-4-5": Prices(5.0, 25.0),
    "claude-opus-4-1": Prices(15.0, 75.0),
    "claude-sonnet-4-5": Prices(3.0, 15.0),
    "claude-sonnet-4": Prices(3.0, 15.0),
    "claude-haiku-4-5": Prices(1.0, 5.0),
}


def prices_for(model: str, override: Prices | None = None) -> Prices:
    """The model's prices; an unknown model needs explicit ones, or no budget could hold."""
    if override is not None:
        return override
    known = [p for p in PRICES if model.startswith(p)]
    if not known:
        raise ValueError(f"no prices known for {model!r}; configure them to enforce the budget")
    return PRICES[max(known, key=len)]


class SecretInRequest(ValueError):
    """The scrubber's rules or detect-secrets still find a secret or personal data in text
    meant for the API."""


@dataclass(frozen=True)
class Ask:
    """One request: shared instructions (prompt-cached), the text to work on, an output cap."""

    system: str
    prompt: str
    max_tokens: int = 1024


@dataclass
class Answer:
    """What became of one Ask: `status` is ok, cached, refused, over_budget or errored."""

    status: str
    text: str = ""
    cost_usd: float = 0.0
    reason: str = ""


@dataclass
class Usage:
    """What a run sent and spent: the asset's metadata."""

    budget_usd: float
    spent_usd: float = 0.0
    requests: int = 0  # messages sent, alone or in a batch
    batches: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    prompt_cache_write_tokens: int = 0
    prompt_cache_read_tokens: int = 0
    cache_hits: int = 0  # answers found on disk, free
    refused: int = 0
    over_budget: int = 0
    errored: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "spent_usd": round(self.spent_usd, 6)}


@dataclass(frozen=True)
class ClaudeConfig:
    model: str = "claude-sonnet-4-5"
    budget_usd: float = 1.0  # per run; nothing is sent that could overshoot it
    max_concurrency: int = 4  # requests (and token counts) in flight at once
    poll_interval_s: float = 30.0  # between looks at a running batch
    max_batch_wait_s: float = 24 * 3600.0  # batches expire after 24 hours anyway
    prices: Prices | None = None  # for a model missing from PRICES
    # Scrubber rule ids the secret check leaves out, as in ValidateConfig.scrub_skip_rules;
    # detect-secrets still runs on every request.
    scrub_skip_rules: tuple[str, ...] = ()


def request_params(ask: Ask, model: str) -> dict[str, Any]:
    """The Messages request; the shared instructions carry a cache breakpoint."""
    return {
        "model": model,
        "max_tokens": ask.max_tokens,
        "system": [{"type": "text", "text": ask.system, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": ask.prompt}],
    }


def request_key(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def message_text(message: dict[str, Any]) -> str:
    return "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")


class ResponseCache:
    """Answers on disk by request hash: `<root>/<key[:2]>/<key>.json`."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        atomic_write_text(self._path(key), json.dumps(record, ensure_ascii=False))


@dataclass
class _Pending:
    key: str
    params: dict[str, Any]
    input_tokens: int = 0
    reserved: float = 0.0


@dataclass
class ClaudeClient:
    """Budgeted, cached access to one model through an `anthropic.Anthropic` client."""

    client: anthropic.Anthropic
    cache: ResponseCache
    cfg: ClaudeConfig = field(default_factory=ClaudeConfig)
    log: Callable[[str], None] = lambda _msg: None

    def __post_init__(self) -> None:
        self.prices = prices_for(self.cfg.model, self.cfg.prices)
        self.usage = Usage(budget_usd=self.cfg.budget_usd)
        self._reserved = 0.0
        self._lock = threading.Lock()

    # -- money ---------------------------------------------------------------------------

    def cost(self, usage: dict[str, Any], batch: bool) -> float:
        p_in, p_out = self.prices.input, self.prices.output
        dollars = (
            (usage.get("input_tokens") or 0) * p_in
            + (usage.get("cache_creation_input_tokens") or 0) * p_in * CACHE_WRITE
            + (usage.get("cache_read_input_tokens") or 0) * p_in * CACHE_READ
            + (usage.get("output_tokens") or 0) * p_out
        ) / 1e6
        return dollars * (BATCH_DISCOUNT if batch else 1.0)

    def _reserve(self, input_tokens: int, max_tokens: int, batch: bool) -> float | None:
        """Hold the worst case of a request against the budget; None when it does not fit."""
        worst = self.cost(
            {"cache_creation_input_tokens": input_tokens, "output_tokens": max_tokens}, batch
        )
        with self._lock:
            if self.usage.spent_usd + self._reserved + worst > self.cfg.budget_usd:
                return None
            self._reserved += worst
            return worst

    def _charge(self, reserved: float, usage: dict[str, Any], batch: bool) -> float:
        dollars = self.cost(usage, batch)
        with self._lock:
            self._reserved -= reserved
            self.usage.spent_usd += dollars
            self.usage.requests += 1
            self.usage.input_tokens += usage.get("input_tokens") or 0
            self.usage.output_tokens += usage.get("output_tokens") or 0
            self.usage.prompt_cache_write_tokens += usage.get("cache_creation_input_tokens") or 0
            self.usage.prompt_cache_read_tokens += usage.get("cache_read_input_tokens") or 0
        return dollars

    def _release(self, reserved: float) -> None:
        with self._lock:
            self._reserved -= reserved

    # -- preparing -----------------------------------------------------------------------

    def check_text(self, ask: Ask) -> None:
        """Refuse text in which either scanner finds a secret or personal data; the message
        names the rules and lines, never the value."""
        found = sorted(
            {
                f"{h.rule} ({part} line {h.line})"
                for part, text in (("system", ask.system), ("prompt", ask.prompt))
                for h in audit_text(text, frozenset(self.cfg.scrub_skip_rules))
            }
        )
        if found:
            raise SecretInRequest(f"request refused, secrets found: {', '.join(found)}")

    def _count_tokens(self, pending: _Pending) -> int:
        params = pending.params
        counted = self.client.messages.count_tokens(
            model=params["model"], system=params["system"], messages=params["messages"]
        )
        return counted.input_tokens

    def _prepare(self, asks: Sequence[Ask]) -> tuple[list[Answer], list[_Pending]]:
        """Answers the disk cache or the secret check settle; the rest, counted, once each."""
        answers = [Answer("pending") for _ in asks]
        todo: dict[str, _Pending] = {}  # a request asked twice in one run is sent once
        for i, ask in enumerate(asks):
            params = request_params(ask, self.cfg.model)
            key = request_key(params)
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cache_hits += 1
                answers[i] = Answer("cached", message_text(hit["response"]))
                continue
            try:
                self.check_text(ask)
            except SecretInRequest as refused:
                self.usage.refused += 1
                answers[i] = Answer("refused", reason=str(refused))
                continue
            todo.setdefault(key, _Pending(key, params))
        unique = list(todo.values())
        with ThreadPoolExecutor(self.cfg.max_concurrency) as pool:
            for pending, n in zip(unique, pool.map(self._count_tokens, unique), strict=True):
                pending.input_tokens = n
        return answers, unique

    def _wave(self, left: list[_Pending], batch: bool) -> tuple[list[_Pending], list[_Pending]]:
        """What fits the budget now, its worst case held; and what does not."""
        fits, rest = [], []
        for pending in left:
            held = self._reserve(pending.input_tokens, pending.params["max_tokens"], batch)
            if held is None:
                rest.append(pending)
            else:
                pending.reserved = held
                fits.append(pending)
        return fits, rest

    def _settle(self, pending: _Pending, message: dict[str, Any], batch: bool) -> Answer:
        dollars = self._charge(pending.reserved, message.get("usage") or {}, batch)
        record = {"request": pending.params, "response": message, "cost_usd": dollars}
        self.cache.put(pending.key, {**record, "batch": batch})
        return Answer("ok", message_text(message), dollars)

    # -- sending -------------------------------------------------------------------------

    def ask(self, ask: Ask) -> Answer:
        """One request through the Messages API; refuses secrets by raising."""
        self.check_text(ask)
        return self.run([ask], batch=False)[0]

    def run(self, asks: Sequence[Ask], batch: bool = True) -> list[Answer]:
        """Answers in the order of `asks`; bulk work goes through one Message Batch."""
        answers, left = self._prepare(asks)
        by_key: dict[str, Answer] = {}
        # Waves: a request is charged what it used, not its worst case, so after each wave
        # more may fit; work stops when the next worst case would overshoot the budget.
        while left:
            fits, left = self._wave(left, batch)
            if not fits:
                break
            self.log(f"sending {len(fits)} request(s) {'as a batch' if batch else 'directly'}")
            by_key.update(self._via_batch(fits) if batch else self._direct(fits))
        for pending in left:
            by_key[pending.key] = Answer("over_budget", reason="budget_exhausted")
        self.usage.over_budget += len(left)
        sent: set[str] = set()
        for i, ask in enumerate(asks):
            if answers[i].status == "pending":
                key = request_key(request_params(ask, self.cfg.model))
                done = by_key[key]
                # A request asked twice in one run went out once and is charged once.
                answers[i] = done if key not in sent else Answer(done.status, done.text)
                sent.add(key)
        return answers

    def _direct(self, fits: list[_Pending]) -> dict[str, Answer]:
        def send(pending: _Pending) -> Answer:
            try:
                message = self.client.messages.create(**pending.params)
            except anthropic.APIError as failed:
                self._release(pending.reserved)
                with self._lock:
                    self.usage.errored += 1
                return Answer("errored", reason=type(failed).__name__)
            return self._settle(pending, message.model_dump(mode="json"), batch=False)

        with ThreadPoolExecutor(self.cfg.max_concurrency) as pool:
            return dict(zip((p.key for p in fits), pool.map(send, fits), strict=True))

    def _via_batch(self, fits: list[_Pending]) -> dict[str, Answer]:
        # custom_id allows 64 characters: a sha256 in hex is exactly that.
        requests = [{"custom_id": p.key, "params": p.params} for p in fits]
        batch = self.client.messages.batches.create(requests=requests)
        self.usage.batches += 1
        self.log(f"batch {batch.id}: {len(requests)} request(s) submitted")
        # Paid for from now on: a run killed while it waits leaves this note for the next.
        note = self.cache.root / "batches" / f"{batch.id}.json"
        atomic_write_text(note, json.dumps({"id": batch.id, "requests": requests}))
        done = self._collect(batch.id, fits)
        note.unlink()
        return done

    def resume_batches(self) -> int:
        """Collect into the cache the batches an interrupted run submitted; how many."""
        notes = sorted((self.cache.root / "batches").glob("*.json"))
        for note in notes:
            record = json.loads(note.read_text())
            self.log(f"batch {record['id']}: resuming, left by an interrupted run")
            pending = [_Pending(r["custom_id"], r["params"]) for r in record["requests"]]
            self._collect(record["id"], pending)
            note.unlink()
        return len(notes)

    def _collect(self, batch_id: str, fits: list[_Pending]) -> dict[str, Answer]:
        waited = 0.0
        while True:
            batch = self.client.messages.batches.retrieve(batch_id)
            self.log(f"batch {batch.id}: {batch.processing_status}, {batch.request_counts}")
            if batch.processing_status == "ended":
                break
            if waited >= self.cfg.max_batch_wait_s:
                raise TimeoutError(f"batch {batch.id} still {batch.processing_status}")
            time.sleep(self.cfg.poll_interval_s)
            waited += self.cfg.poll_interval_s
        by_key = {p.key: p for p in fits}
        done: dict[str, Answer] = {}
        for line in self.client.messages.batches.results(batch.id):
            pending = by_key.get(line.custom_id)
            if pending is None:
                continue
            result = line.result
            if result.type == "succeeded":
                message = result.message.model_dump(mode="json")
                done[pending.key] = self._settle(pending, message, batch=True)
                continue
            self._release(pending.reserved)
            self.usage.errored += 1
            why = result.error.error.type if result.type == "errored" else result.type
            done[pending.key] = Answer("errored", reason=why)
        for key in by_key.keys() - done.keys():  # no result line at all: treat as failed
            self._release(by_key[key].reserved)
            self.usage.errored += 1
            done[key] = Answer("errored", reason="missing_result")
        return done
