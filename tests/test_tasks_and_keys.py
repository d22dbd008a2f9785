"""Unit tests of task classification and of the exact cache key."""

from __future__ import annotations

from typing import Any

import pytest

from cache.keys import exact_key
from gateway.parsing import CHAT, COMPLETION, parse_completion_request
from gateway.tasks import classify

TOOL = {"type": "function", "function": {"name": "run_tests", "parameters": {"type": "object", "properties": {}}}}


def chat(text: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "coder", "messages": [{"role": "user", "content": text}], **fields}


def task_of(body: dict[str, Any], kind: str = CHAT) -> str:
    return classify(parse_completion_request(body, kind))


CHAT_TASKS = {
    "Explain what this function does:\n```python\ndef f(): pass\n```": "explain",
    "What does this regex match?": "explain",
    "Write unit tests for the parser module": "tests",
    "Generate pytest cases for this class": "tests",
    "Add a docstring to this function": "docstring",
    "Refactor this loop into a comprehension": "refactor",
    "Rename the variable x to count": "refactor",
    "Hello, how are you today?": "chat",
    "Explain the code, then write tests for it": "explain",
    "Write tests for it, then explain the code": "tests",
}


@pytest.mark.parametrize("text", sorted(CHAT_TASKS))
def test_classify_chat_text(text: str) -> None:
    assert task_of(chat(text)) == CHAT_TASKS[text]


def test_classify_ignores_code_words() -> None:
    text = "Make this faster:\n```python\n# explain: refactor the tests\ndef explain(): pass\n```"

    assert task_of(chat(text)) == "chat"


def test_classify_tools_agent() -> None:
    assert task_of(chat("Explain the failing test", tools=[TOOL])) == "agent"


def test_classify_fim_autocomplete() -> None:
    assert task_of(chat("<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>")) == "autocomplete"


def test_classify_short_completion() -> None:
    assert task_of({"model": "coder", "prompt": "def add(a, b):\n    ", "max_tokens": 32}, COMPLETION) == "autocomplete"


def test_classify_suffix_autocomplete() -> None:
    assert task_of({"model": "coder", "prompt": "def add(a, b):\n", "suffix": "\n\nprint(add(1, 2))", "max_tokens": 500}, COMPLETION) == "autocomplete"


def test_classify_long_completion_text() -> None:
    assert task_of({"model": "coder", "prompt": "Explain the following code:\nx = 1", "max_tokens": 500}, COMPLETION) == "explain"


def test_classify_uses_last_user() -> None:
    body = {
        "model": "coder",
        "messages": [
            {"role": "user", "content": "Write tests for this module"},
            {"role": "assistant", "content": "Here are the tests."},
            {"role": "user", "content": "Now explain the second test"},
        ],
    }

    assert task_of(body) == "explain"


def test_classify_list_content() -> None:
    content = [{"type": "text", "text": "Add docstrings to"}, {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}}]

    assert task_of(chat(content)) == "docstring"


def key(body: dict[str, Any], kind: str = CHAT, namespace: str = "default") -> str:
    return exact_key(kind, body, namespace)


def test_key_temperature_default() -> None:
    omitted = key(chat("Explain recursion."))

    assert omitted != key(chat("Explain recursion.", temperature=0))
    assert omitted == key(chat("Explain recursion.", temperature=1))
    assert omitted == key(chat("Explain recursion.", temperature=1.0))


def test_key_field_order_irrelevant() -> None:
    first = {"model": "coder", "temperature": 0.2, "messages": [{"role": "user", "content": "hi"}]}
    second = {"messages": [{"content": "hi", "role": "user"}], "temperature": 0.2, "model": "coder"}

    assert key(first) == key(second)


def test_key_ignores_stream_flags() -> None:
    plain = key(chat("Explain recursion."))

    assert plain == key(chat("Explain recursion.", stream=True, stream_options={"include_usage": True}))
    assert plain == key(chat("Explain recursion.", user="someone"))


def test_key_includes_list_content() -> None:
    def content(text: str, url: str) -> list[dict[str, Any]]:
        return [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]

    base = key(chat(content("Explain this diagram", "https://example.invalid/a.png")))

    assert base != key(chat(content("Explain this diagram", "https://example.invalid/b.png")))
    assert base != key(chat(content("Explain that diagram", "https://example.invalid/a.png")))
    assert base != key(chat("Explain this diagram"))


OUTPUT_FIELD_CHANGES = {
    "model": "coder-large",
    "max_tokens": 100,
    "seed": 7,
    "stop": ["\n"],
    "tools": [TOOL],
    "top_p": 0.5,
    "response_format": {"type": "json_object"},
}


@pytest.mark.parametrize("field", sorted(OUTPUT_FIELD_CHANGES))
def test_key_output_field(field: str) -> None:
    changed = {**chat("Explain recursion."), field: OUTPUT_FIELD_CHANGES[field]}

    assert key(changed) != key(chat("Explain recursion."))


def test_key_stop_string_equals_list() -> None:
    assert key(chat("Explain recursion.", stop="END")) == key(chat("Explain recursion.", stop=["END"]))


def test_key_namespace() -> None:
    assert key(chat("Explain recursion."), namespace="team-a") != key(chat("Explain recursion."), namespace="team-b")


def test_key_kind() -> None:
    body = {"model": "coder", "prompt": "Explain recursion."}

    assert key(body, COMPLETION) != key(body, CHAT)


def test_key_lone_surrogate() -> None:
    first = key(chat("bad \ud800 text"))

    assert first == key(chat("bad \ud800 text"))
    assert first != key(chat("bad \ud801 text"))


def test_example_config_loads() -> None:
    from gateway.config import load_config
    from tests.support.harness import REPO_ROOT

    config = load_config(REPO_ROOT / "copilot-bridge.example.toml", environ={})

    assert config.upstreams["local"].kind == "local"
    assert config.upstreams["cloud"].api_key_env == "OPENAI_API_KEY"
    assert [model.name for model in config.models] == ["qwen2.5-coder:7b", "qwen2.5-coder:1.5b"]
    assert config.routes[0].task == "autocomplete"
    assert config.retrieval.tasks == ["explain", "agent"]
    assert config.pricing.cloud_per_1k == 0.02
