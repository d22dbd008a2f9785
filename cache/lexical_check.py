"""Lexical veto for semantic cache candidates whose instructions differ in a decisive word.

Sentence embeddings score a question and its antonym, its negation or the same question
about another product as near duplicates, because almost every word is shared. The
checks here run after the similarity search and reject such a candidate:

* negation: one instruction contains more negations than the other ("not",
  "never", "without", "-n't").
* names: a capitalised name in one instruction ("Flask", "Redis") does not occur
  in the other, compared without case.
* swapped words: the instructions share most of their words but replace a content
  word ("make a string uppercase" and "make a string lowercase"), or the words
  around "to", "than" and the like trade places ("Celsius to Fahrenheit" and
  "Fahrenheit to Celsius"). Words that differ only in case, plural ending or number
  spelling do not count.

The fingerprint of ``cache.prompt_parts`` already separates code, identifiers,
numbers and all-caps tokens, so these checks cover the words that stay in prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from cache.prompt_parts import NUMBER_WORDS

__all__ = ["instructions_compatible"]

_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_OPENING_PUNCTUATION = " \t\"'\u201c\u2018(["
_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+>]|\d+[.)])")
# A capitalised word or a single capital letter ("C", "R"), with an optional possessive.
_CAPITALISED = re.compile(r"(?P<name>[A-Z][a-z]*)(?:['\u2019]s)?")
_POSSESSIVE = ("'s", "\u2019s")
_PLURAL_ES = ("sses", "xes", "ches", "shes", "zes")

_NEGATIONS = frozenset(
    "not no never without none nothing nobody nowhere neither nor cannot".split()
)

# English function words plus politeness markers. A change among them alone does not
# count as a substitution. Particles and quantifiers that flip a request ("round up" and
# "round down", "first" and "last", "all" and "some") are deliberately left out.
_FUNCTION_WORDS = frozenset(
    """
    a am an and are as at be because been being but by can could did do does doing
    for from had has have having he her here hers herself him himself his how i if
    into is it its itself just me my myself of or our ours ourselves she should so
    than that the their theirs them themselves then there these they this those
    through to too very was we were what when where which while who whom why will
    with would you your yours yourself yourselves
    please pls plz thanks thank kindly
    """.split()
)

# Words that give the content words around them a direction ("convert X to Y").
_DIRECTION_WORDS = ("to", "into", "onto", "from", "than", "over", "vs", "versus", "before", "after")

# Instructions whose aligned words (difflib ratio) fall below this value are rewordings
# rather than near duplicates, and the embedding judges rewordings on its own.
_MIN_FRAME_RATIO = 0.5


@dataclass(frozen=True)
class _Words:
    """Word-level view of one instruction."""

    normalised: tuple[str, ...]
    vocabulary: frozenset[str]
    names: frozenset[str]
    negations: int


def instructions_compatible(cached_instruction: str, new_instruction: str) -> bool:
    """Tell whether the response cached for one instruction may serve the other.

    Both arguments are ``PromptParts.instruction`` values from the same cache scope
    whose embeddings already passed the similarity threshold. The check is symmetric.

    NOTE: synonyms swapped inside shared wording ("Add a docstring" and "Write a
    docstring") are rejected like antonyms, and an antonym inside a reworded question
    ("How do I enable X?" and "X: turn it off") passes, so both are left to the
    similarity threshold.
    """
    cached = _analyse(cached_instruction)
    new = _analyse(new_instruction)
    if cached.negations != new.negations:
        return False
    if not _names_shared(cached, new) or not _names_shared(new, cached):
        return False
    return not _has_substitution(cached.normalised, new.normalised)


def _analyse(text: str) -> _Words:
    matches = list(_WORD.finditer(text))
    lowered = [_strip_possessive(match[0].lower()) for match in matches]
    vocabulary = set(lowered)
    for word in lowered:
        vocabulary.update(word.split("-"))
    names = {name for match in matches if (name := _name_of(text, match)) is not None}
    negations = sum(1 for word in lowered if word in _NEGATIONS or word.endswith(("n't", "n\u2019t")))
    return _Words(
        normalised=tuple(_normalise(word) for word in lowered),
        vocabulary=frozenset(vocabulary),
        names=frozenset(names),
        negations=negations,
    )


def _name_of(text: str, match: re.Match[str]) -> str | None:
    """Return the lowercased name if a word is a capitalised name, else None.

    A word that starts a sentence counts only as a topic label followed by a colon
    ("Redis: default port"), and "I" never counts.
    """
    capitalised = _CAPITALISED.fullmatch(match[0])
    if capitalised is None or capitalised["name"] == "I":
        return None
    if _starts_sentence(text, match.start()) and text[match.end() : match.end() + 1] != ":":
        return None
    return capitalised["name"].lower()


def _starts_sentence(text: str, start: int) -> bool:
    """Tell whether the word at ``start`` opens the text, a sentence, a line or a list item."""
    before = text[:start].rstrip(_OPENING_PUNCTUATION)
    if not before or before[-1] in ".!?:;\n":
        return True
    return _LIST_MARKER.fullmatch(before.rsplit("\n", 1)[-1]) is not None


def _strip_possessive(word: str) -> str:
    return word.removesuffix(_POSSESSIVE[0]).removesuffix(_POSSESSIVE[1])


def _names_shared(source: _Words, other: _Words) -> bool:
    return all(name in other.vocabulary for name in source.names)


def _normalise(word: str) -> str:
    """Map spelling variants to one form: number words to digits, plurals to singular."""
    number = NUMBER_WORDS.get(word)
    if number is not None:
        return number
    if word in _FUNCTION_WORDS:
        return word
    if word.endswith(_PLURAL_ES):
        return word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _is_content(word: str) -> bool:
    return word not in _FUNCTION_WORDS


def _has_substitution(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Tell whether two instructions replace a content word or reverse a direction.

    When the instructions share a frame of words, a replaced span with content words
    on both sides ("uppercase" for "lowercase") is a substitution. A span with content
    words on one side only is an insertion ("What is X" and "Explain X") and is left
    to the embedding. A reversed direction ("Celsius to Fahrenheit" and "Fahrenheit to
    Celsius") counts with or without a shared frame.
    """
    if _reverses_direction(first, second):
        return True
    if _frame_ratio(first, second) < _MIN_FRAME_RATIO:
        return False
    # difflib's alignment depends on the argument order, so both orders are checked.
    return _replaces_content(first, second) or _replaces_content(second, first)


def _frame_ratio(first: tuple[str, ...], second: tuple[str, ...]) -> float:
    return max(
        SequenceMatcher(None, first, second, autojunk=False).ratio(),
        SequenceMatcher(None, second, first, autojunk=False).ratio(),
    )


def _replaces_content(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    matcher = SequenceMatcher(None, first, second, autojunk=False)
    for tag, start1, end1, start2, end2 in matcher.get_opcodes():
        if tag != "replace":
            continue
        if any(map(_is_content, first[start1:end1])) and any(map(_is_content, second[start2:end2])):
            return True
    return False


def _reverses_direction(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Tell whether the content words on both sides of "to", "than" or the like trade places.

    Only a direction word that occurs once in each instruction is compared, and only
    its nearest content word on each side, so a topic word moved to the front
    ("Python: send data to a server") does not count.
    """
    for word in _DIRECTION_WORDS:
        if first.count(word) != 1 or second.count(word) != 1:
            continue
        before, after = _content_neighbours(first, first.index(word))
        other_before, other_after = _content_neighbours(second, second.index(word))
        if before is not None and after is not None and before != after:
            if (before, after) == (other_after, other_before):
                return True
    return False


def _content_neighbours(words: tuple[str, ...], position: int) -> tuple[str | None, str | None]:
    before = next((word for word in reversed(words[:position]) if _is_content(word)), None)
    after = next((word for word in words[position + 1 :] if _is_content(word)), None)
    return before, after
