"""Split the last user message of a chat request into an instruction and literal material.

The semantic cache embeds only the natural-language instruction and searches it for
a near neighbour. Everything whose exact value decides the response (code blocks,
inline code, identifiers, numbers, quoted strings, paths, versions, operators and
the instruction text that does not fit the embedder's window) becomes literal
material, and two requests can share a cached response only when the SHA-256
fingerprints of their literal material are equal.

Normalisation of literal material is limited to changes that cannot change meaning:
unified line endings, trailing whitespace, blank lines at the ends of a block and a
dedent of a whole block. Leading indentation inside a block is kept because it is
syntax in Python, YAML and Makefiles.

Plain capitalised words such as ``Python`` or ``Redis`` are not literal material,
because at the start of a sentence they look like any other word. They stay in the
instruction, and ``cache.lexical_check.instructions_compatible`` compares them across
the cached and the new instruction.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "FINGERPRINT_VERSION",
    "MAX_EMBEDDER_TOKENS",
    "NUMBER_WORDS",
    "PromptParts",
    "split_prompt",
]

# Bump when a rule below changes, so that entries cached under the old rules stop matching.
FINGERPRINT_VERSION = 1

# all-MiniLM-L6-v2 reads 256 word pieces, two of which are [CLS] and [SEP].
MAX_EMBEDDER_TOKENS = 254

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_INLINE_CODE = re.compile(r"(?<!`)(?P<ticks>`+)(?!`)(?P<code>.+?)(?<!`)(?P=ticks)(?!`)", re.DOTALL)
_DOUBLE_QUOTED = re.compile(r"\"(?P<text>[^\"\n]{1,200})\"|\u201c(?P<smart>[^\u201d\n]{1,200})\u201d")
_SINGLE_QUOTED = re.compile(
    r"(?<![\w'])'(?P<text>[^'\n]{1,200})'(?![\w'])|\u2018(?P<smart>[^\u2019\n]{1,200})\u2019"
)
_CHUNK = re.compile(r"\S+")
_EDGE_PUNCTUATION = "\"'`\u201c\u201d\u2018\u2019.,;:!?"
_BRACKET_PAIRS = {"(": ")", "[": "]", "{": "}"}
_OPERATOR_CHARS = frozenset("=!<>+-*/%&|^~@:")
_OPERATOR_SINGLES = frozenset("=<>+*/%&|^~@")
_CODE_SYMBOLS = frozenset("_()[]{}<>=$@#*&|^~%+\\/:")
_CAMEL_CASE = re.compile(r"[a-z][A-Z]|[A-Z]{2}[a-z]")
_ALL_CAPS = re.compile(r"[A-Z][A-Z0-9]+")
_COMMAND_LINE_FLAG = re.compile(r"--?[A-Za-z]")
_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]?")
_CODE_HEADER = re.compile(r"\w\(|[=;{}\[]|->|=>|::|^@\w|[\\,(]$")
_CLOSING_BRACKETS = re.compile(r"^[\])}>;,]+$")

# Number words and their digits, shared with cache.lexical_check.
# "one" is left out because it is mostly a pronoun ("merge them into one").
NUMBER_WORDS: Mapping[str, str] = MappingProxyType({
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11",
    "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
    "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000",
})  # fmt: skip


@dataclass(frozen=True)
class PromptParts:
    """The two halves of a user message as the semantic cache compares them.

    Attributes:
        instruction: Natural-language text to embed, at most ``max_instruction_chars``
            long, with code blocks removed and whitespace collapsed.
        literal_fingerprint: Hex SHA-256 of the normalised literal material, including
            the instruction text that did not fit into ``instruction``.
        has_code_block: Whether the message contains a fenced or indented code block.
            The fingerprint then pins down the code that the instruction is about, so
            the instruction only has to name the same task. A gateway can apply a
            lower similarity threshold to such requests than to free-standing questions.
    """

    instruction: str
    literal_fingerprint: str
    has_code_block: bool = False


def split_prompt(
    text: str,
    *,
    max_instruction_chars: int = 1000,
    count_tokens: Callable[[str], int] | None = None,
    max_instruction_tokens: int = MAX_EMBEDDER_TOKENS,
) -> PromptParts:
    """Split one user message into the instruction to embed and a literal fingerprint.

    Args:
        text: The text of the last user message.
        max_instruction_chars: Maximum length of ``PromptParts.instruction``. Longer
            instruction text is cut at a word boundary, and the rest is added to the
            fingerprint so that two requests that differ only there never match.
        count_tokens: Optional word-piece counter of the embedder, for example
            ``lambda s: len(model.tokenizer.tokenize(s))``. When given, the
            instruction is also cut to ``max_instruction_tokens`` word pieces, so the
            embedder never truncates it silently.
        max_instruction_tokens: Word-piece budget used with ``count_tokens``.

    Raises:
        TypeError: If ``text`` is not a string.
        ValueError: If a limit is smaller than 1.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if max_instruction_chars < 1:
        raise ValueError(f"max_instruction_chars must be at least 1, got {max_instruction_chars}")
    if max_instruction_tokens < 1:
        raise ValueError(f"max_instruction_tokens must be at least 1, got {max_instruction_tokens}")

    prose_segments, blocks = _split_document(_normalise_newlines(text))
    prose_literals = sorted(item for segment in prose_segments for item in _prose_literals(segment))
    instruction = _collapse_whitespace("\n".join(prose_segments))
    instruction, overflow = _fit_instruction(
        instruction, max_instruction_chars, count_tokens, max_instruction_tokens
    )
    return PromptParts(
        instruction=instruction,
        literal_fingerprint=_fingerprint(blocks, prose_literals, overflow),
        has_code_block=bool(blocks),
    )


def _normalise_newlines(text: str) -> str:
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _collapse_whitespace(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _fingerprint(blocks: list[list[str]], prose_literals: list[list[str]], overflow: str) -> str:
    """Return the hex SHA-256 of the literal material.

    Code blocks keep their document order. Literals in prose are sorted, because a
    reworded question moves them ("HTTP request in Node.js", "Node.js: HTTP request"),
    and ``cache.lexical_check`` catches two of them swapping places.
    """
    payload = json.dumps(
        {"version": FINGERPRINT_VERSION, "blocks": blocks, "prose": prose_literals, "overflow": overflow},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # Lone surrogates from JSON escapes ("\\ud800") are valid in str but not in UTF-8,
    # and "surrogatepass" keeps each of them distinct.
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


# Document structure: fenced blocks, indented blocks and the prose between them.


def _split_document(text: str) -> tuple[list[str], list[list[str]]]:
    """Return the prose segments and the normalised code blocks, in document order."""
    prose_segments: list[str] = []
    blocks: list[list[str]] = []
    prose_lines: list[str] = []

    def flush_prose() -> None:
        for segment, indented_blocks in _split_indented_blocks(prose_lines):
            prose_segments.append(segment)
            blocks.extend(["indented", block] for block in indented_blocks)
        prose_lines.clear()

    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        if opening is None or ("`" in opening["fence"] and "`" in opening["info"]):
            prose_lines.append(lines[index])
            index += 1
            continue
        flush_prose()
        body, index = _read_fenced_body(lines, index + 1, opening["fence"])
        language = opening["info"].strip().split(" ")[0].lower()
        blocks.append(["fenced", language, _normalise_block(body)])
    flush_prose()
    return prose_segments, blocks


def _read_fenced_body(lines: list[str], start: int, fence: str) -> tuple[list[str], int]:
    """Return the lines up to the closing fence and the index after it.

    A closing fence uses the same character, is at least as long as the opening one
    and has nothing but whitespace after it. An unclosed fence runs to the end of the
    text, as in CommonMark.
    """
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for index in range(start, len(lines)):
        if closing.match(lines[index]):
            return lines[start:index], index + 1
    return lines[start:], len(lines)


def _is_indented(line: str) -> bool:
    return bool(line.strip()) and (line.startswith("\t") or line.startswith("    "))


def _split_indented_blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Split prose lines into (prose segment, code blocks that follow it) pairs.

    A block is a run of lines indented by a tab or at least four spaces. Blank lines
    inside the run belong to it. An unindented line directly above the run that
    looks like a code header (``def f(x):``, ``@decorator``) and closing brackets
    directly below it join the block, so unfenced code pasted from an editor stays
    literal.

    NOTE: unfenced code without indentation (``x = compute(1)`` on its own line)
    stays in the prose, so only its identifier, number and operator tokens reach
    the fingerprint, and a change to a plain lowercase name there is left to
    ``cache.lexical_check``.
    """
    result: list[tuple[str, list[str]]] = []
    prose: list[str] = []
    blocks: list[str] = []
    index = 0
    while index < len(lines):
        if not _is_indented(lines[index]):
            if blocks:
                result.append(("\n".join(prose), blocks))
                prose, blocks = [], []
            prose.append(lines[index])
            index += 1
            continue

        end = index
        while end < len(lines) and (_is_indented(lines[end]) or not lines[end].strip()):
            end += 1
        while not lines[end - 1].strip():
            end -= 1
        header: list[str] = []
        while prose and prose[-1].strip() and _CODE_HEADER.search(prose[-1].strip()):
            header.insert(0, prose.pop())
        while end < len(lines) and _CLOSING_BRACKETS.match(lines[end].strip()):
            end += 1
        blocks.append(_normalise_block(header + lines[index:end]))
        index = end
    result.append(("\n".join(prose), blocks))
    return result


def _normalise_block(lines: Iterable[str]) -> str:
    """Strip trailing whitespace and blank edge lines, then dedent the whole block.

    Only the indentation shared by every non-blank line is removed, and tabs and
    spaces are not interchangeable, so relative indentation is kept exactly.
    """
    stripped = [line.rstrip() for line in lines]
    while stripped and not stripped[0]:
        stripped.pop(0)
    while stripped and not stripped[-1]:
        stripped.pop()
    indents = [line[: len(line) - len(line.lstrip())] for line in stripped if line]
    prefix = _common_prefix(indents)
    return "\n".join(line[len(prefix) :] for line in stripped)


def _common_prefix(strings: list[str]) -> str:
    if not strings:
        return ""
    shortest, longest = min(strings), max(strings)
    for index, char in enumerate(shortest):
        if char != longest[index]:
            return shortest[:index]
    return shortest


# Literal tokens inside prose.


def _prose_literals(prose: str) -> list[list[str]]:
    """Return the literal items of a prose segment: inline code, quoted text and tokens."""
    found: list[list[str]] = []
    masked = prose

    def take(pattern: re.Pattern[str], kind: str, group_names: tuple[str, ...]) -> str:
        for match in pattern.finditer(masked):
            found.append([kind, next(match[name] for name in group_names if match[name] is not None)])
        # Blank the matches out so that their words are not read again as tokens.
        return pattern.sub(lambda match: " " * len(match[0]), masked)

    masked = take(_INLINE_CODE, "inline", ("code",))
    masked = take(_DOUBLE_QUOTED, "quoted", ("text", "smart"))
    masked = take(_SINGLE_QUOTED, "quoted", ("text", "smart"))
    for match in _CHUNK.finditer(masked):
        token = _literal_token(match[0])
        if token is not None:
            found.append(["token", token])
    return found


def _literal_token(chunk: str) -> str | None:
    """Return the normalised literal form of a whitespace-separated chunk, or None.

    Sentence punctuation around the chunk is dropped first. Number words become
    digits so that "three commits" and "3 commits" agree.
    """
    if _is_operator(chunk):
        return chunk
    word = _strip_brackets(chunk.strip(_EDGE_PUNCTUATION)).strip(_EDGE_PUNCTUATION)
    if not word:
        return None
    number = NUMBER_WORDS.get(word.lower())
    if number is not None:
        return number
    return word if _is_code_like(word) else None


def _strip_brackets(word: str) -> str:
    """Drop brackets that belong to the sentence: "(pytest)" and "(see" but not "f()"."""
    for opener, closer in _BRACKET_PAIRS.items():
        while word.startswith(opener) and word.count(opener) > word.count(closer):
            word = word[1:]
        while word.endswith(closer) and word.count(closer) > word.count(opener):
            word = word[:-1]
        inner = word[1:-1]
        if word.startswith(opener) and word.endswith(closer) and opener not in inner and closer not in inner:
            word = inner
    return word


def _is_operator(chunk: str) -> bool:
    if not set(chunk) <= _OPERATOR_CHARS:
        return False
    return len(chunk) > 1 or chunk in _OPERATOR_SINGLES


def _is_code_like(word: str) -> bool:
    """Tell whether a prose word is an identifier, number, path, version or acronym.

    A hyphenated word whose last part is a lowercase word ("NumPy-style",
    "Python-specific") is an adjective that describes the form of the response
    rather than a literal, unless it contains digits or code symbols ("utf-8",
    "x86-64").
    """
    if any(char.isdigit() for char in word) or any(char in _CODE_SYMBOLS for char in word):
        return True
    if _COMMAND_LINE_FLAG.match(word):
        return True
    if "." in word.strip(".") and not _ABBREVIATION.fullmatch(word):
        return True
    parts = word.split("-")
    if len(parts) > 1 and parts[-1].isalpha() and parts[-1].islower():
        return False
    return any(_CAMEL_CASE.search(part) or _ALL_CAPS.fullmatch(part) for part in parts)


# Fitting the instruction into the embedder's window.


def _fit_instruction(
    instruction: str,
    max_chars: int,
    count_tokens: Callable[[str], int] | None,
    max_tokens: int,
) -> tuple[str, str]:
    """Cut the instruction to the character and word-piece budgets.

    Returns the head that is embedded and the overflow that joins the fingerprint.
    The head is the start of the text. When a long message ends with its question,
    that question lands in the overflow, so two requests that ask different questions
    after the same long context never match.
    """
    words = _word_spans(instruction)
    keep = _count_words_within_chars(words, max_chars)
    if count_tokens is not None:
        keep = _count_words_within_tokens(instruction, words, keep, count_tokens, max_tokens)
    if keep == len(words):
        return instruction, ""
    if keep > 0:
        cut = words[keep][0]
        return instruction[:cut].rstrip(), instruction[cut:].strip()

    # The first word alone is over budget, for example a long hash or base64 string.
    cut = _count_chars_within_budget(instruction, max_chars, count_tokens, max_tokens)
    return instruction[:cut], instruction[cut:].strip()


def _count_chars_within_budget(
    text: str, max_chars: int, count_tokens: Callable[[str], int] | None, max_tokens: int
) -> int:
    """Return the longest prefix length within both budgets, cutting inside a word."""
    def fits(length: int) -> bool:
        return count_tokens is None or count_tokens(text[:length]) <= max_tokens

    return _largest_fitting(min(max_chars, len(text)), fits)


def _word_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in re.finditer(r"\S+", text)]


def _count_words_within_chars(words: list[tuple[int, int]], max_chars: int) -> int:
    count = 0
    for _, end in words:
        if end > max_chars:
            break
        count += 1
    return count


def _count_words_within_tokens(
    text: str,
    words: list[tuple[int, int]],
    keep: int,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> int:
    """Return the largest word count up to ``keep`` whose prefix fits ``max_tokens``."""
    def fits(count: int) -> bool:
        return count_tokens(text[: words[count - 1][1]]) <= max_tokens

    return _largest_fitting(keep, fits)


def _largest_fitting(upper: int, fits: Callable[[int], bool]) -> int:
    """Return the largest n in 0..upper with fits(n), where fits holds for every smaller n.

    ``fits(0)`` is taken as true and never called.
    """
    if upper == 0 or fits(upper):
        return upper
    low, high = 0, upper - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
