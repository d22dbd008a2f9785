"""Fill-in-the-middle prompts for upstreams that take a raw prompt instead of ``suffix``.

An OpenAI ``/v1/completions`` request with ``suffix`` requests the text between ``prompt`` and
``suffix``. Ollama accepts ``suffix`` and applies the model's own FIM format. vLLM's
``/v1/completions`` rejects ``suffix`` with HTTP 400, so it and any server that ignores ``suffix``
need the prompt already wrapped in the model family's FIM tokens. ``apply_fim_template`` does that wrapping, just before the body goes
to the upstream, so the cache key still comes from the client's request.

Which family applies, for a request sent to one upstream:

1. An upstream with ``fim_template`` set always receives a raw prompt. The format is the requested
   model's ``fim_template`` when it has one. Otherwise a family name on the upstream is the format
   of the models it serves, and ``auto`` guesses the family from the upstream model name.
2. A model with ``fim_template`` set gets a raw prompt in its family's format on every upstream of
   kind ``local``. A cloud upstream receives ``suffix`` unchanged unless rule 1 applies to it.

Templates come from ``DEFAULT_TEMPLATES``. A ``[fim_templates.<family>]`` table in the TOML
configuration replaces a built-in family or adds a new one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.config import ConfigError

if TYPE_CHECKING:
    from gateway.config import Config, ModelConfig
    from gateway.routing import Target

__all__ = [
    "AUTO",
    "DEFAULT_TEMPLATES",
    "FimTemplate",
    "apply_fim_template",
    "check_fim_config",
    "family_for",
    "guess_family",
    "render",
    "templates",
]

logger = logging.getLogger(__name__)

AUTO = "auto"
"""``fim_template`` value that picks the family from the model name."""

_PLACEHOLDER = re.compile(r"\{(prefix|suffix)\}")


@dataclass(frozen=True)
class FimTemplate:
    """The FIM prompt format of one model family."""

    template: str
    """The prompt with ``{prefix}`` and ``{suffix}`` placeholders; other braces are literal."""
    stop: tuple[str, ...] = ()
    """Stop sequences added to the request, so generation ends at the family's control tokens."""


# Templates and stop sequences match Continue's autocomplete templates
# (core/autocomplete/templating/AutocompleteTemplate.ts in continuedev/continue). DeepSeek-Coder's
# "｜" and "▁" are full-width characters, and Codestral puts the suffix first.
DEFAULT_TEMPLATES: dict[str, FimTemplate] = {
    "qwen2.5-coder": FimTemplate(
        "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
        ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>"),
    ),
    "deepseek-coder": FimTemplate(
        "<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
        ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"),
    ),
    "starcoder2": FimTemplate(
        "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",
        ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>"),
    ),
    "codellama": FimTemplate(
        "<PRE> {prefix} <SUF>{suffix} <MID>",
        ("<PRE>", "<SUF>", "<MID>", "<EOT>"),
    ),
    "codestral": FimTemplate(
        "[SUFFIX]{suffix}[PREFIX]{prefix}",
        ("[PREFIX]", "[SUFFIX]"),
    ),
}

# Substrings of a lower-cased model name and the family they imply, tried in order.
_NAME_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("qwen", "coder"), "qwen2.5-coder"),
    (("deepseek", "coder"), "deepseek-coder"),
    (("starcoder",), "starcoder2"),
    (("codellama",), "codellama"),
    (("code-llama",), "codellama"),
    (("code_llama",), "codellama"),
    (("codestral",), "codestral"),
)

_warned: set[tuple[str, str]] = set()


def _template_from_table(family: str, values: Any) -> FimTemplate:
    where = f"[fim_templates.{family}]"
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table with 'template' and optional 'stop'")
    unknown = sorted(set(values) - {"template", "stop"})
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)}; known keys: stop, template")
    template = values.get("template")
    if not isinstance(template, str) or "{prefix}" not in template or "{suffix}" not in template:
        raise ConfigError(f"{where} template must be a string containing both {{prefix}} and {{suffix}}")
    stop = values.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(item, str) and item for item in stop):
        raise ConfigError(f"{where} stop must be a list of non-empty strings")
    return FimTemplate(template, tuple(stop))


def templates(config: Config) -> dict[str, FimTemplate]:
    """Return the built-in templates merged with the configuration's ``fim_templates`` table.

    Raises:
        ConfigError: an entry of ``fim_templates`` is not a valid template table.
    """
    table = dict(DEFAULT_TEMPLATES)
    for family, values in (getattr(config, "fim_templates", None) or {}).items():
        table[family] = _template_from_table(family, values)
    return table


def check_fim_config(config: Config) -> None:
    """Validate ``fim_templates`` and every ``fim_template`` reference in the configuration.

    Raises:
        ConfigError: a template table is invalid or a name is neither ``auto`` nor a known family.
    """
    known = templates(config)
    names = sorted(known)
    for upstream in config.upstreams.values():
        family = upstream.fim_template
        if family and family != AUTO and family not in known:
            raise ConfigError(
                f"upstream {upstream.name!r} has fim_template {family!r}, which is not a known family; "
                f"use 'auto' or one of: {', '.join(names)}, or add [fim_templates.{family}]"
            )
    for model in config.models:
        family = model.fim_template
        if family and family not in known:
            raise ConfigError(
                f"model {model.name!r} has fim_template {family!r}, which is not a known family; "
                f"use one of: {', '.join(names)}, or add [fim_templates.{family}]"
            )


def guess_family(model_name: str) -> str | None:
    """Return the FIM family implied by a model name such as ``qwen2.5-coder:1.5b``, or None."""
    name = model_name.lower()
    for hints, family in _NAME_HINTS:
        if all(hint in name for hint in hints):
            return family
    return None


def family_for(config: Config, model: ModelConfig | None, target: Target) -> str | None:
    """Return the FIM family whose raw prompt ``target`` needs, or None to send ``suffix`` as is."""
    upstream = target.upstream.config
    model_family = model.fim_template if model is not None else ""
    if upstream.fim_template:
        if upstream.fim_template != AUTO:
            return model_family or upstream.fim_template
        return model_family or guess_family(target.model) or (guess_family(model.name) if model is not None else None)
    if model_family and upstream.kind != "cloud":
        return model_family
    return None


def render(template: FimTemplate, prefix: str, suffix: str) -> str:
    """Fill the template's placeholders in one pass, so braces in the code stay untouched."""
    values = {"prefix": prefix, "suffix": suffix}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template.template)


def _merge_stop(current: Any, extra: tuple[str, ...]) -> list[str]:
    stops = [current] if isinstance(current, str) else list(current or [])
    for item in extra:
        if item not in stops:
            stops.append(item)
    return stops


def apply_fim_template(config: Config, model: ModelConfig | None, target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """Return the upstream body with ``prompt`` and ``suffix`` folded into one raw FIM prompt.

    Bodies without ``suffix`` and targets that take ``suffix`` themselves come back unchanged.
    """
    if body.get("suffix") is None or "prompt" not in body:
        return body
    family = family_for(config, model, target)
    if family is None:
        if target.upstream.config.fim_template == AUTO:
            _warn_once(target.upstream.name, target.model, "no FIM family matches the model name; set fim_template on the model")
        return body
    template = templates(config).get(family)
    if template is None:
        # check_fim_config rejects unknown names at load time; this covers configs built in code.
        _warn_once(target.upstream.name, family, f"FIM family {family!r} is not defined")
        return body

    prompt = body["prompt"]
    if isinstance(prompt, list):
        if len(prompt) != 1:
            _warn_once(target.upstream.name, target.model, "a FIM request with several prompts is sent unchanged")
            return body
        prompt = prompt[0]
    rendered = dict(body)
    rendered["prompt"] = render(template, prompt, body["suffix"])
    del rendered["suffix"]
    if template.stop:
        rendered["stop"] = _merge_stop(body.get("stop"), template.stop)
    return rendered


def _warn_once(upstream: str, subject: str, message: str) -> None:
    if (upstream, subject) in _warned:
        return
    _warned.add((upstream, subject))
    logger.warning("upstream %s, %s: %s", upstream, subject, message)
