"""Split a source file into chunks for embedding.

Code in a language with a tree-sitter grammar and a definitions table is split at syntax:

* every function, method and class that fits in ``MAX_CHUNK_CHARS`` is one chunk, with the
  comments right above it;
* a larger definition is split into its members (methods of a class) or runs of statements, and
  its header (signature, decorators) joins the first part. A single statement that is still too
  large is cut into line windows;
* code between definitions (imports, constants) forms runs of statements;
* adjacent chunks are merged while one of them is under ``MIN_CHUNK_CHARS`` and the result fits.

Markdown is split at headings, other text into paragraphs packed up to the same size. Every chunk
carries 1-based inclusive line numbers and a SHA-256 hash of its text.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from indexer.languages import definition_body, definition_name, is_definition, language_of, parser_for

__all__ = ["CHUNKER_VERSION", "Chunk", "chunk_file", "content_hash"]

logger = logging.getLogger(__name__)

CHUNKER_VERSION = "1"
"""Stored in the manifest; changing how chunks are cut requires a rebuild, so bump it then."""
MAX_CHUNK_CHARS = 1200
"""Upper bound of a chunk in characters, except for a single line longer than this. About 300
word pieces of code, a little more than all-MiniLM-L6-v2 embeds (256): the vector covers the
start of a chunk and the lexical vector covers all of it."""
MIN_CHUNK_CHARS = 300
"""Chunks smaller than this are merged with a neighbour when the result fits."""
MAX_SYMBOLS_SHOWN = 3

_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Chunk:
    path: str
    language: str
    symbol: str
    """Qualified names of the definitions in or around the chunk (``Client.send``), comma separated; empty for none."""
    start_line: int
    end_line: int
    """1-based and inclusive."""
    text: str
    hash: str
    """SHA-256 of ``text``."""

    def embedding_text(self) -> str:
        """Return the text given to the embedding model and the lexical encoder: path and symbol, then code."""
        header = f"{self.path} {self.symbol}".rstrip()
        return f"{header}\n{self.text}"


@dataclass
class _Span:
    """Lines ``start`` to ``end`` (0-based, inclusive) and the symbols they belong to."""

    start: int
    end: int
    symbols: list[str] = field(default_factory=list)


class _Lines:
    """The lines of a file with prefix sums of their lengths, for span sizes in O(1)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)
        self._ends = [0, *accumulate(len(line) for line in self.lines)]

    def __len__(self) -> int:
        return len(self.lines)

    def size(self, start: int, end: int) -> int:
        return self._ends[end + 1] - self._ends[start]

    def text(self, start: int, end: int) -> str:
        return "".join(self.lines[start : end + 1])

    def blank(self, row: int) -> bool:
        return not self.lines[row].strip()


def chunk_file(path: str, text: str, language: str | None = None) -> list[Chunk]:
    """Return the chunks of one file's text, in line order; whitespace-only chunks are dropped."""
    language = language or language_of(path)
    lines = _Lines(text)
    if not len(lines):
        return []
    spans: list[_Span] | None = None
    parser = parser_for(language)
    if parser is not None:
        try:
            tree = parser.parse(text.encode("utf-8", "surrogatepass"))
            spans = _SyntaxSplitter(lines, language).split(tree.root_node)
        except (ValueError, RecursionError) as exc:
            logger.warning("could not parse %s as %s, indexing it in line windows: %s", path, language, exc)
    if spans is None:
        spans = _markdown_spans(lines) if language == "markdown" else _paragraph_spans(lines, 0, len(lines) - 1, [])
    chunks = []
    for span in _merge_small(lines, spans):
        body = lines.text(span.start, span.end)
        if not body.strip():
            continue
        chunks.append(
            Chunk(
                path=path,
                language=language,
                symbol=_symbol_label(span.symbols),
                start_line=span.start + 1,
                end_line=span.end + 1,
                text=body,
                hash=content_hash(body),
            )
        )
    return chunks


def _symbol_label(symbols: list[str]) -> str:
    unique = list(dict.fromkeys(s for s in symbols if s))
    label = ", ".join(unique[:MAX_SYMBOLS_SHOWN])
    return label + (", ..." if len(unique) > MAX_SYMBOLS_SHOWN else "")


def _end_row(node: Any) -> int:
    """Return the last row a node occupies; a node ending at column 0 ends on the row before."""
    row = node.end_point[0]
    if node.end_point[1] == 0 and row > node.start_point[0]:
        row -= 1
    return row


class _SyntaxSplitter:
    def __init__(self, lines: _Lines, language: str) -> None:
        self.lines = lines
        self.language = language

    def split(self, root: Any) -> list[_Span]:
        spans = self._children(root, [])
        return sorted(spans, key=lambda s: s.start)

    def _fits(self, start: int, end: int) -> bool:
        return self.lines.size(start, end) <= MAX_CHUNK_CHARS

    def _children(self, node: Any, scope: list[str], header: tuple[int, int] | None = None) -> list[_Span]:
        """Split the named children of ``node``: definitions alone, other statements in runs.

        ``header`` is the rows of the enclosing definition's signature, which start the first run.
        """
        spans: list[_Span] = []
        run: list[tuple[int, int, str]] = []  # (start, end, node type) of pending statements
        if header is not None:
            run.append((header[0], header[1], "header"))
        scope_symbols = [".".join(scope)] if scope else []

        def flush() -> None:
            if run:
                spans.extend(self._windows(run[0][0], run[-1][1], scope_symbols))
                run.clear()

        for child in node.named_children:
            start, end = child.start_point[0], _end_row(child)
            if is_definition(child, self.language):
                # Comments directly above a definition belong to it.
                while run and run[-1][2] == "comment" and run[-1][1] >= start - 1:
                    start = run.pop()[0]
                flush()
                spans.extend(self._definition(child, start, end, scope))
                continue
            if run and run[-1][1] >= start:
                # Two statements on one row stay together.
                run[-1] = (run[-1][0], max(run[-1][1], end), child.type)
                continue
            if not self._fits(start, end):
                flush()
                if child.named_child_count:
                    spans.extend(self._children(child, scope))
                else:
                    spans.extend(self._windows(start, end, scope_symbols))
                continue
            if run and not self._fits(run[0][0], end):
                flush()
            run.append((start, end, child.type))
        flush()
        return spans

    def _definition(self, node: Any, start: int, end: int, scope: list[str]) -> list[_Span]:
        qualified = scope + [definition_name(node)]
        symbol = ".".join(qualified)
        if self._fits(start, end):
            return [_Span(start, end, [symbol])]
        body = definition_body(node)
        if body is None or not body.named_children:
            return self._windows(start, end, [symbol])
        # The header (comments, decorators, signature) starts the first run of the body.
        first_row = body.named_children[0].start_point[0]
        header = (start, first_row - 1) if first_row > start else None
        inner = sorted(self._children(body, qualified, header), key=lambda s: s.start)
        if not inner:
            return self._windows(start, end, [symbol])
        inner[0].start = min(inner[0].start, start)
        inner[-1].end = max(inner[-1].end, end)
        return inner

    def _windows(self, start: int, end: int, symbols: list[str]) -> list[_Span]:
        return _paragraph_spans(self.lines, start, end, symbols)


def _paragraph_spans(lines: _Lines, start: int, end: int, symbols: list[str]) -> list[_Span]:
    """Pack lines ``start..end`` into spans up to MAX_CHUNK_CHARS, cutting after a blank line where possible."""
    spans: list[_Span] = []
    row = start
    while row <= end:
        last = row
        cut = None  # the last blank row seen that keeps the span within the limit
        while last + 1 <= end and lines.size(row, last + 1) <= MAX_CHUNK_CHARS:
            last += 1
            if lines.blank(last):
                cut = last
        if last < end and cut is not None and cut > row:
            last = cut
        spans.append(_Span(row, last, list(symbols)))
        row = last + 1
    return spans


def _markdown_spans(lines: _Lines) -> list[_Span]:
    """Split Markdown at ATX headings outside fenced code; each section keeps its heading as symbol."""
    sections: list[tuple[int, str]] = [(0, "")]
    in_fence = False
    for row, line in enumerate(lines.lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match and row > 0:
            sections.append((row, match.group(2)))
        elif match:
            sections[0] = (0, match.group(2))
    spans: list[_Span] = []
    for index, (row, title) in enumerate(sections):
        last = sections[index + 1][0] - 1 if index + 1 < len(sections) else len(lines) - 1
        if last >= row:
            spans.extend(_paragraph_spans(lines, row, last, [title] if title else []))
    return spans


def _merge_small(lines: _Lines, spans: list[_Span]) -> list[_Span]:
    """Merge neighbours while either is under MIN_CHUNK_CHARS and the merged span fits."""
    merged: list[_Span] = []
    for span in spans:
        if merged:
            previous = merged[-1]
            if span.start <= previous.end:
                previous.end = max(previous.end, span.end)
                previous.symbols += span.symbols
                continue
            small = lines.size(previous.start, previous.end) < MIN_CHUNK_CHARS or lines.size(span.start, span.end) < MIN_CHUNK_CHARS
            if small and lines.size(previous.start, span.end) <= MAX_CHUNK_CHARS:
                previous.end = span.end
                previous.symbols += span.symbols
                continue
        merged.append(_Span(span.start, span.end, list(span.symbols)))
    return merged
