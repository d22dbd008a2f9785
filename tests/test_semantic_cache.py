"""Semantic cache: a reworded instruction about the same code hits, other code or tasks miss."""

from __future__ import annotations

from tests.support.harness import Gateway, ScriptedUpstream

CODE = "```python\ndef mean(values):\n    return sum(values) / len(values)\n```"
OTHER_CODE = "```python\ndef slugify(title):\n    return '-'.join(title.lower().split())\n```"
THRESHOLD = 0.9


def ask(gw: Gateway, text: str, **request):
    request.setdefault("model", "coder")
    return gw.client().chat.completions.with_raw_response.create(messages=[{"role": "user", "content": text}], **request)


def test_paraphrase_hits(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"similarity_threshold": THRESHOLD})

    first = ask(gw, f"Explain what this function does:\n\n{CODE}")
    second = ask(gw, f"What does this function do?\n\n{CODE}")

    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit-semantic"
    assert second.headers["x-route"] == "cache"
    similarity = float(second.headers["x-cache-similarity"])
    assert THRESHOLD <= similarity <= 1.0001
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert local_upstream.requests == 1


def test_other_code_misses(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"similarity_threshold": THRESHOLD})

    ask(gw, f"Explain what this function does:\n\n{CODE}")
    second = ask(gw, f"Explain what this function does:\n\n{OTHER_CODE}")

    assert second.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


def test_other_task_misses(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"similarity_threshold": THRESHOLD})

    first = ask(gw, f"Explain this function:\n\n{CODE}")
    second = ask(gw, f"Write unit tests for this function:\n\n{CODE}")

    assert first.headers["x-task"] == "explain"
    assert second.headers["x-task"] == "tests"
    assert second.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


def test_other_model_misses(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"similarity_threshold": THRESHOLD})

    ask(gw, f"Explain what this function does:\n\n{CODE}")
    second = ask(gw, f"What does this function do?\n\n{CODE}", model="coder-large")

    assert second.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


def test_semantic_disabled_misses(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"semantic_enabled": False})

    ask(gw, f"Explain what this function does:\n\n{CODE}")
    second = ask(gw, f"What does this function do?\n\n{CODE}")

    assert second.headers["x-cache"] == "miss"
    assert "x-cache-similarity" not in second.headers


def test_semantic_hit_in_metrics(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"similarity_threshold": THRESHOLD})

    ask(gw, f"Explain what this function does:\n\n{CODE}")
    ask(gw, f"What does this function do?\n\n{CODE}")

    assert gw.metric("copilot_bridge_cache_hits_total", layer="semantic") == 1
    assert gw.metric("copilot_bridge_cache_hits_total", layer="exact") == 0
    assert gw.metric("copilot_bridge_cache_writes_total", layer="semantic") == 1
