"""The Claude client core against a loopback server speaking the Anthropic wire protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from pipeline.claude import (
    Ask,
    ClaudeClient,
    ClaudeConfig,
    Prices,
    ResponseCache,
    SecretInRequest,
    prices_for,
    request_key,
    request_params,
)
from pipeline.scrub import find_secrets
from tests.anthropic_server import API_KEY, AnthropicServer, FakeAnthropic, tokens

SYSTEM = "You improve answers. " * 20
SECRET = "export ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"


@pytest.fixture
def fake() -> FakeAnthropic:
    return FakeAnthropic()


@pytest.fixture
def url(fake: FakeAnthropic) -> Iterator[str]:
    with AnthropicServer(fake) as base_url:
        yield base_url


def client(url: str, cache: Path, log=lambda _m: None, **cfg: object) -> ClaudeClient:
    sdk = anthropic.Anthropic(api_key=API_KEY, base_url=url, max_retries=3, timeout=10.0)
    settings = {"poll_interval_s": 0.01, "budget_usd": 1.0, **cfg}
    return ClaudeClient(sdk, ResponseCache(cache), ClaudeConfig(**settings), log)


def asks(n: int) -> list[Ask]:
    return [Ask(SYSTEM, f"Question {i}:\nhow do I run test {i}?", max_tokens=200) for i in range(n)]


def test_a_direct_request_is_cached_so_a_rerun_costs_nothing(url, fake, tmp_path):
    first = client(url, tmp_path)
    answer = first.ask(asks(1)[0])
    assert answer.status == "ok" and answer.text.startswith("Improved answer")
    assert answer.cost_usd > 0 and first.usage.spent_usd == pytest.approx(answer.cost_usd)
    sent = [b for b in fake.bodies if b["path"] == "/v1/messages"]
    assert sent[0]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first.usage.prompt_cache_write_tokens > 0
    before = len(fake.calls)
    again = client(url, tmp_path)
    assert again.run(asks(1), batch=False)[0].text == answer.text
    assert again.usage.cache_hits == 1 and again.usage.spent_usd == 0
    assert len(fake.calls) == before  # no count, no message: the disk answered


def test_shared_instructions_are_read_from_the_prompt_cache(url, tmp_path):
    claude = client(url, tmp_path, max_concurrency=1)
    first, second = claude.run(asks(2), batch=False)
    assert claude.usage.prompt_cache_read_tokens > 0
    assert second.cost_usd < first.cost_usd  # cache reads cost a tenth of input


def test_a_batch_polled_until_it_ends_with_some_results_failed(fake, url, tmp_path):
    fake.batch_polls = 3
    fake.fail_if = lambda params: "test 1?" in params["messages"][0]["content"]
    seen: list[str] = []
    claude = client(url, tmp_path, log=seen.append)
    answers = claude.run(asks(3), batch=True)
    assert [a.status for a in answers] == ["ok", "errored", "ok"]
    assert answers[1].reason == "invalid_request_error"
    polls = [m for m in seen if m.startswith("batch msgbatch_0000: ") and "submitted" not in m]
    assert [("in_progress" in m) for m in polls] == [True, True, True, False]
    assert claude.usage.batches == 1 and claude.usage.requests == 2 and claude.usage.errored == 1
    # Half price: the same request alone costs twice as much.
    alone = client(url, tmp_path / "direct").run([asks(3)[2]], batch=False)[0]
    assert answers[2].cost_usd < alone.cost_usd
    # A rerun sends only the request that failed.
    fake.fail_if = lambda params: False
    rerun = client(url, tmp_path)
    assert [a.status for a in rerun.run(asks(3))] == ["cached", "ok", "cached"]
    batch = [b for b in fake.bodies if b["path"] == "/v1/messages/batches"][-1]
    assert len(batch["requests"]) == 1
    assert rerun.usage.cache_hits == 2


def test_a_batch_left_by_an_interrupted_run_is_collected_not_paid_again(url, fake, tmp_path):
    claude = client(url, tmp_path)
    params = [request_params(a, claude.cfg.model) for a in asks(2)]
    requests = [{"custom_id": request_key(p), "params": p} for p in params]
    batch = claude.client.messages.batches.create(requests=requests)  # then the run died
    note = tmp_path / "batches" / f"{batch.id}.json"
    note.parent.mkdir()
    note.write_text(json.dumps({"id": batch.id, "requests": requests}))
    later = client(url, tmp_path)
    assert later.resume_batches() == 1 and not note.exists()
    assert [a.status for a in later.run(asks(2))] == ["cached", "cached"]
    assert fake.count("POST", "/v1/messages/batches") == 1


def test_the_budget_stops_work_at_the_limit(url, fake, tmp_path):
    one = asks(1)[0]
    counted = tokens(one.system) + tokens(one.prompt)
    probe = client(url, tmp_path / "probe")
    worst = probe.cost({"cache_creation_input_tokens": counted, "output_tokens": 200}, False)
    claude = client(url, tmp_path, budget_usd=worst * 1.5, max_concurrency=1)
    answers = claude.run(asks(8), batch=False)
    statuses = [a.status for a in answers]
    sent = statuses.count("ok")
    assert 1 < sent < 8 and statuses.count("over_budget") == 8 - sent
    assert statuses == ["ok"] * sent + ["over_budget"] * (8 - sent)
    assert claude.usage.over_budget == 8 - sent
    # It stopped because the next worst case would overshoot, and never did overshoot.
    assert claude.usage.spent_usd <= claude.cfg.budget_usd < claude.usage.spent_usd + worst
    assert sum(b["path"] == "/v1/messages" for b in fake.bodies) == sent


def test_text_with_a_secret_is_refused_before_anything_is_sent(url, fake, tmp_path):
    claude = client(url, tmp_path)
    leaky = Ask(SYSTEM, f"why does this fail?\n{SECRET}")
    with pytest.raises(SecretInRequest, match="AnthropicKeyDetector") as refused:
        claude.ask(leaky)
    assert "sk-ant-" not in str(refused.value)  # the rule and the line, never the value
    answers = claude.run([leaky, asks(1)[0]], batch=False)
    assert [a.status for a in answers] == ["refused", "ok"]
    assert all(SECRET not in str(b) for b in fake.bodies)
    assert claude.usage.refused == 1


def test_a_secret_our_rules_miss_is_refused_by_detect_secrets_before_anything_is_sent(
    url, fake, tmp_path
):
    stripe = "sk_live_" + "Zk3j9Qp2Lx7Vb4Nm8Rt6Wy1H"
    bot = "7391046285:" + "AAHk3j9Qp2Lx7Vb4Nm8Rt6Wy1Hs5Df0GcQz"  # a Telegram bot token
    skip = tuple(f.rule for f in find_secrets(stripe))  # our rules made to miss the Stripe key
    claude = client(url, tmp_path, scrub_skip_rules=skip)
    leaky = [Ask(SYSTEM, f"charge fails:\nstripe.api_key = {stripe}"), Ask(SYSTEM, f"bot {bot}")]
    with pytest.raises(SecretInRequest, match=r"detect-secrets:StripeDetector \(prompt line 2\)"):
        claude.ask(leaky[0])
    with pytest.raises(SecretInRequest, match="detect-secrets:TelegramBotTokenDetector"):
        claude.ask(leaky[1])
    answers = claude.run(leaky, batch=True)
    assert [a.status for a in answers] == ["refused", "refused"]
    assert "scrubber:" not in answers[0].reason and stripe not in answers[0].reason
    assert fake.calls == [] and fake.bodies == []  # not even a token count went out
    assert claude.usage.refused == 2 and claude.usage.requests == 0


def test_rate_limits_are_retried_by_the_sdk(url, fake, tmp_path):
    fake.rate_limit_first = 2
    claude = client(url, tmp_path)
    assert claude.ask(asks(1)[0]).status == "ok"
    assert fake.count("POST", "/v1/messages/count_tokens") == 3  # two 429s, then counted
    assert fake.count("POST", "/v1/messages") == 1


def test_a_request_asked_twice_in_a_run_is_sent_and_charged_once(url, fake, tmp_path):
    claude = client(url, tmp_path)
    one = asks(1)[0]
    first, second = claude.run([one, one], batch=False)
    assert first.text == second.text and second.cost_usd == 0
    assert claude.usage.requests == 1


def test_prices_come_from_the_table_or_the_configuration():
    assert prices_for("claude-sonnet-4-5-20250929") == Prices(3.0, 15.0)
    assert prices_for("claude-opus-4-5") == Prices(5.0, 25.0)
    with pytest.raises(ValueError, match="no prices"):
        prices_for("claude-unknown-9")
    assert prices_for("claude-unknown-9", Prices(1.0, 2.0)) == Prices(1.0, 2.0)
