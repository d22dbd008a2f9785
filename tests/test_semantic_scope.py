"""Semantic cache scope: what two requests must share before one cached response may serve the other."""

from __future__ import annotations

import textwrap
from pathlib import Path

SHARED_FILE = Path(textwrap.__file__).read_text(encoding="utf-8")
CODE = "```python\ndef mean(values):\n    return sum(values) / len(values)\n```"
IMAGE_A = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlCwAAAABJRU5ErkJggg=="}}
IMAGE_B = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/q842iQAAAABJRU5ErkJggg=="}}


def ask(served, content, **extra):
    return served.client().chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": content}], **extra
    )


def test_long_context_explain_vs_refactor(gateway, local_upstream):
    served = gateway(local_upstream)
    ask(served, f"```python\n{SHARED_FILE}\n```\nExplain what this module does.")
    other = ask(served, f"```python\n{SHARED_FILE}\n```\nRefactor this module to use dataclasses.")
    assert other.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


def test_long_context_paraphrase_still_hits(gateway, local_upstream):
    served = gateway(local_upstream)
    ask(served, f"Explain what this module does:\n```python\n{SHARED_FILE}\n```")
    again = ask(served, f"What does this module do? Explain it.\n```python\n{SHARED_FILE}\n```")
    assert again.headers["x-cache"] == "hit-semantic"


def test_list_content_embeds_text_parts(gateway, local_upstream):
    served = gateway(local_upstream)
    ask(served, [{"type": "text", "text": f"Explain what this function does:\n{CODE}"}, IMAGE_A])
    same_image = ask(served, [{"type": "text", "text": f"What does this function do?\n{CODE}"}, IMAGE_A])
    other_image = ask(served, [{"type": "text", "text": f"What does this function do?\n{CODE}"}, IMAGE_B], extra_headers={"Cache-Control": "no-store"})
    assert same_image.headers["x-cache"] == "hit-semantic"
    assert other_image.headers["x-cache"] == "miss"


def test_unrelated_prompts_never_hit(gateway, local_upstream):
    served = gateway(local_upstream)
    prompts = [
        "How do I reverse a linked list in C?",
        "What is the difference between TCP and UDP?",
        "Write a regular expression that matches an IPv4 address.",
        "Why is my React component rendering twice?",
        "How do I configure logging in a Django project?",
    ]
    layers = [ask(served, prompt).headers["x-cache"] for prompt in prompts]
    assert layers == ["miss"] * 5
    assert served.metric("copilot_bridge_cache_hits_total", layer="semantic") == 0


def test_earlier_turns_are_scope(gateway, local_upstream):
    served = gateway(local_upstream)
    client = served.client()

    def conversation(first_question: str):
        return client.chat.completions.with_raw_response.create(
            model="coder",
            messages=[
                {"role": "user", "content": first_question},
                {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": "Now explain it in one sentence."},
            ],
        )

    conversation("Show me how `functools.lru_cache` works.")
    other = conversation("Show me how `functools.partial` works.")
    same = conversation("Show me how `functools.lru_cache` works.")
    assert other.headers["x-cache"] == "miss"
    assert same.headers["x-cache"] == "hit-exact"


def test_semantic_hit_names_entry(gateway, local_upstream):
    served = gateway(local_upstream)
    first = ask(served, f"Explain what this function does:\n{CODE}")
    hit = ask(served, f"What does this function do?\n{CODE}")
    line = served.ledger_line(hit.headers["x-request-id"])
    stored = served.ledger_line(first.headers["x-request-id"])
    assert hit.headers["x-cache"] == "hit-semantic"
    assert float(hit.headers["x-cache-similarity"]) == line["similarity"]
    assert hit.headers["x-cache-entry"] == line["entry_id"]
    assert stored["entry_id"] == hit.headers["x-cache-entry"]


def test_scope_ignore_lets_max_tokens_differ(gateway, local_upstream):
    strict = gateway(local_upstream)
    ask(strict, f"Explain what this function does:\n{CODE}", max_tokens=100)
    strict_again = ask(strict, f"What does this function do?\n{CODE}", max_tokens=200)
    relaxed = gateway(local_upstream, cache={"semantic_scope_ignore": ["max_tokens"]})
    ask(relaxed, f"Explain what this function does:\n{CODE}", max_tokens=100)
    relaxed_again = ask(relaxed, f"What does this function do?\n{CODE}", max_tokens=200)
    assert strict_again.headers["x-cache"] == "miss"
    assert relaxed_again.headers["x-cache"] == "hit-semantic"
