"""FIM templates: rendering, the choice of family, TOML overrides, and a gateway that applies them."""

from __future__ import annotations

from types import SimpleNamespace

import ollama
import pytest

from gateway.config import Config, ConfigError, ModelConfig, UpstreamConfig, load_config
from gateway.fim import DEFAULT_TEMPLATES, apply_fim_template, family_for, guess_family, render, templates
from gateway.routing import Target
from tests.support.harness import ScriptedUpstream

EXPECTED_PROMPTS = {
    "qwen2.5-coder": "<|fim_prefix|>def f(<|fim_suffix|>):\n    pass<|fim_middle|>",
    "deepseek-coder": "<｜fim▁begin｜>def f(<｜fim▁hole｜>):\n    pass<｜fim▁end｜>",
    "starcoder2": "<fim_prefix>def f(<fim_suffix>):\n    pass<fim_middle>",
    "codellama": "<PRE> def f( <SUF>):\n    pass <MID>",
    "codestral": "[SUFFIX]):\n    pass[PREFIX]def f(",
}


def make_target(upstream: UpstreamConfig, model: str, *, fallback: bool = False) -> Target:
    return Target(upstream=SimpleNamespace(config=upstream, name=upstream.name), model=model, fallback=fallback)  # type: ignore[arg-type]


def make_config(**upstream_options: object) -> Config:
    upstream = UpstreamConfig(name="local", base_url="http://127.0.0.1:1/v1", **upstream_options)
    return Config(upstreams={"local": upstream}, models=[ModelConfig(name="coder", upstream="local")])


@pytest.mark.parametrize("family", sorted(EXPECTED_PROMPTS))
def test_render_each_family(family: str) -> None:
    assert render(DEFAULT_TEMPLATES[family], "def f(", "):\n    pass") == EXPECTED_PROMPTS[family]


def test_render_keeps_braces_in_code() -> None:
    prompt = render(DEFAULT_TEMPLATES["qwen2.5-coder"], 'x = "{suffix}" + {a}', "{prefix}")

    assert prompt == '<|fim_prefix|>x = "{suffix}" + {a}<|fim_suffix|>{prefix}<|fim_middle|>'


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("qwen2.5-coder:1.5b", "qwen2.5-coder"),
        ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2.5-coder"),
        ("deepseek-coder-v2:16b", "deepseek-coder"),
        ("bigcode/starcoder2-3b", "starcoder2"),
        ("codellama:7b-code", "codellama"),
        ("codestral:22b", "codestral"),
        ("llama3.1:8b", None),
    ],
)
def test_guess_family(name: str, family: str | None) -> None:
    assert guess_family(name) == family


def test_apply_template_on_upstream() -> None:
    config = make_config(fim_template="qwen2.5-coder")
    body = {"model": "coder", "prompt": "def f(", "suffix": "):\n    pass", "stop": "\n\n", "max_tokens": 16}

    sent = apply_fim_template(config, config.models[0], make_target(config.upstreams["local"], "coder"), body)

    assert sent["prompt"] == EXPECTED_PROMPTS["qwen2.5-coder"]
    assert "suffix" not in sent
    assert sent["stop"][0] == "\n\n"
    assert "<|endoftext|>" in sent["stop"]
    assert sent["max_tokens"] == 16
    assert body["suffix"] == "):\n    pass"


def test_apply_template_leaves_other_bodies() -> None:
    config = make_config(fim_template="qwen2.5-coder")
    target = make_target(config.upstreams["local"], "coder")
    chat = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
    plain = {"model": "coder", "prompt": "import os"}

    assert apply_fim_template(config, config.models[0], target, chat) is chat
    assert apply_fim_template(config, config.models[0], target, plain) is plain


def test_apply_without_template_keeps_suffix() -> None:
    config = make_config()
    body = {"model": "coder", "prompt": "a", "suffix": "b"}

    assert apply_fim_template(config, config.models[0], make_target(config.upstreams["local"], "coder"), body) is body


def test_family_rules() -> None:
    local = UpstreamConfig(name="local", base_url="http://127.0.0.1:1/v1")
    cloud = UpstreamConfig(name="cloud", base_url="http://127.0.0.1:2/v1", kind="cloud")
    auto = UpstreamConfig(name="auto", base_url="http://127.0.0.1:3/v1", fim_template="auto")
    starcoder_server = UpstreamConfig(name="sc", base_url="http://127.0.0.1:4/v1", fim_template="starcoder2")
    config = Config(upstreams={u.name: u for u in (local, cloud, auto, starcoder_server)})
    plain_model = ModelConfig(name="coder", upstream="local")
    deepseek_model = ModelConfig(name="ds", upstream="local", fim_template="deepseek-coder")

    assert family_for(config, plain_model, make_target(local, "qwen2.5-coder:7b")) is None
    assert family_for(config, deepseek_model, make_target(local, "ds")) == "deepseek-coder"
    assert family_for(config, deepseek_model, make_target(cloud, "gpt-4o-mini", fallback=True)) is None
    assert family_for(config, plain_model, make_target(auto, "qwen2.5-coder:1.5b")) == "qwen2.5-coder"
    assert family_for(config, plain_model, make_target(auto, "llama3.1:8b")) is None
    assert family_for(config, deepseek_model, make_target(auto, "qwen2.5-coder:1.5b")) == "deepseek-coder"
    assert family_for(config, plain_model, make_target(starcoder_server, "whatever")) == "starcoder2"
    assert family_for(config, deepseek_model, make_target(starcoder_server, "whatever")) == "deepseek-coder"


def test_toml_overrides_and_adds_templates(tmp_path) -> None:
    path = tmp_path / "copilot-bridge.toml"
    path.write_text(
        """
[upstreams.local]
base_url = "http://127.0.0.1:8081/v1"
fim_template = "codegemma"

[[models]]
name = "coder"
upstream = "local"
fim_template = "qwen2.5-coder"

[fim_templates.codegemma]
template = "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
stop = ["<|file_separator|>"]

[fim_templates."qwen2.5-coder"]
template = "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
""",
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    table = templates(config)

    assert table["codegemma"].stop == ("<|file_separator|>",)
    assert table["qwen2.5-coder"].stop == ()
    assert table["starcoder2"] == DEFAULT_TEMPLATES["starcoder2"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[upstreams.local]\nbase_url = "http://x/v1"\nfim_template = "nope"\n', "not a known family"),
        ('[upstreams.local]\nbase_url = "http://x/v1"\n[[models]]\nname = "m"\nupstream = "local"\nfim_template = "auto"\n', "not a known family"),
        ('[fim_templates.bad]\ntemplate = "<pre>{prefix}"\n', "{suffix}"),
        ('[fim_templates.bad]\ntemplate = "{prefix}{suffix}"\nstop = "x"\n', "stop must be a list"),
        ('[fim_templates.bad]\ntemplate = "{prefix}{suffix}"\nend = 1\n', "unknown key"),
        ('[upstreams.local]\nbase_url = "http://x/v1"\napi = "grpc"\n', "use 'openai' or 'ollama'"),
    ],
)
def test_invalid_fim_config_rejected(tmp_path, toml: str, message: str) -> None:
    path = tmp_path / "copilot-bridge.toml"
    path.write_text(toml, encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert message in str(raised.value)


def test_gateway_sends_raw_fim_prompt(gateway, local_upstream: ScriptedUpstream) -> None:
    served = gateway(local_upstream, local_options={"fim_template": "qwen2.5-coder"})
    client = served.client()

    first = client.completions.with_raw_response.create(model="coder", prompt="def f(", suffix="):\n    pass", max_tokens=16, temperature=0)
    sent = local_upstream.stats()["last_body"]
    streamed = "".join(
        chunk.choices[0].text
        for chunk in client.completions.create(model="coder", prompt="x = [", suffix="]", max_tokens=16, stream=True)
        if chunk.choices
    )
    sent_streamed = local_upstream.stats()["last_body"]

    assert first.headers["x-cache"] == "miss"
    assert sent["prompt"] == EXPECTED_PROMPTS["qwen2.5-coder"]
    assert "suffix" not in sent
    assert "<|fim_middle|>" in sent["stop"]
    assert sent_streamed["prompt"] == "<|fim_prefix|>x = [<|fim_suffix|>]<|fim_middle|>"
    assert streamed

    # The cache key comes from the client's request, so the same FIM request through Ollama's
    # API finds the entry that the OpenAI request stored.
    answer = ollama.Client(host=served.base_url, timeout=20).generate(
        model="coder", prompt="def f(", suffix="):\n    pass", options={"num_predict": 16, "temperature": 0}, stream=False
    )
    assert answer.response == first.parse().choices[0].text
    assert local_upstream.requests == 2
