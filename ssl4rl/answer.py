"""Linear-time parsing of `<think>...</think> <answer>...</answer>` responses.

Every function here accepts any string (megabytes of garbage, unbalanced or nested tags, unicode)
and never raises. Only `str.find` is used, so the work is linear in the input length.
"""

from __future__ import annotations

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
FORMAT_INSTRUCTION = (
    "Think step by step and write your reasoning inside <think> </think> tags, then give only the final "
    "answer inside <answer> </answer> tags, i.e. <think> reasoning </think> <answer> {example} </answer>."
)


def extract_answer(text: object) -> str | None:
    """Content of the first complete `<answer>...</answer>` block, stripped; None if there is none.

    Matches the paper's release: the first opening tag and the first closing tag after it.
    """
    if not isinstance(text, str):
        return None
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    if end < 0:
        return None
    return text[start:end].strip()


def follows_format(text: object) -> bool:
    """True for exactly `<think> ... </think> <answer> ... </answer>` (whitespace around allowed).

    Each tag appears exactly once and in that order, the reasoning and the answer are both non-empty
    (not only whitespace: an empty `<think></think>` is the tags without the reasoning they ask for) and
    nothing but whitespace surrounds the two blocks.
    """
    if not isinstance(text, str):
        return False
    body = text.strip()
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    if any(body.count(tag) != 1 for tag in tags):
        return False
    positions = [body.find(tag) for tag in tags]
    if positions != sorted(positions) or positions[0] != 0:
        return False
    if body[positions[1] + len(THINK_CLOSE) : positions[2]].strip():
        return False
    if not body[len(THINK_OPEN) : positions[1]].strip():
        return False
    if not body.endswith(ANSWER_CLOSE):
        return False
    return bool(body[positions[2] + len(ANSWER_OPEN) : positions[3]].strip())


def normalize(answer: str, mode: str = "exact") -> str:
    """Answer normalization for scoring. `exact` reproduces the paper (strip only, case-sensitive)."""
    if mode == "exact":
        return answer.strip()
    if mode == "lenient":
        return " ".join(answer.strip().strip(".").split()).lower()
    raise ValueError(f"unknown answer normalization {mode!r}; use 'exact' or 'lenient'")
