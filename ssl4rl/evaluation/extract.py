"""Which option letter a model's free-form response picks, for multiple-choice benchmarks.

Models answer in many shapes: `<answer>B</answer>`, `The answer is (B).`, `B. a red car`, a bare
`B`, or only the option's text. `extract_choice` tries the most explicit forms first and falls back
to weaker evidence only when it is unambiguous, so a response that names two different letters, or
an article "A" in a sentence, never counts as a choice. Reasoning inside `<think>` is ignored when a
final answer follows it, because chains of thought mention every option.

Every pattern here is a plain regex without nested quantifiers, so the work is linear in the
response length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, extract_answer

_LETTER = r"([A-Z])"
# "answer is (B)", "Answer: B", "the correct option is **C**", "I choose D", "final answer = A"; a bare
# mention such as "option A is wrong" is not a choice
_EXPLICIT = re.compile(
    r"(?:answer|(?:correct|right|best|final)\s+(?:option|choice)|choose|select|pick)"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be))?"
    r"\s*[:=\-]?\s*(?:option\s+|choice\s+|letter\s+)?[\*\"'\[(]{0,3}\s*" + _LETTER + r"(?![A-Za-z0-9'])",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*\(?" + _LETTER + r"\)?\s*\}?\s*\}")
# the whole response is a letter, possibly decorated: "B", "(B)", "**B.**", "[B]"
_BARE = re.compile(r"^[\s\*\"'\[(]*" + _LETTER + r"[\s\*\"'\])\.:,;!]*$")
# the response starts with a labelled option: "B. a red car", "(B) a red car", "B: ...", "B) ..."
_LEADING = re.compile(r"^[\s\*\"'\[]*" + _LETTER + r"\**\s*(?:[\)\]]|[\.:\-])[\*\s]")
_LEADING_PAREN = re.compile(r"^[\s\*\"'\[]*\(" + _LETTER + r"\)")
_PARENTHESISED = re.compile(r"\(" + _LETTER + r"\)")
# a capital letter standing alone as a word (not part of "AB", "I'm", "A4", "U.S.")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'\.\-])" + _LETTER + r"(?![A-Za-z0-9'\-]|\.[A-Za-z])")
_ARTICLE_AFTER = re.compile(r"\s+[a-z]")
# "A or C", "B and D", "A/C", "(A) or (C)": two options offered as alternatives name no single choice
_ALTERNATIVE = re.compile(
    r"(?<![A-Za-z0-9'])[\*\"'\[(]*([A-Z])[\*\"'\])\.]*\s*(?:\bor\b|\band\b|/|&)\s*(?:option\s+)?[\*\"'\[(]*([A-Z])(?![A-Za-z0-9'])"
)
_CONJUNCTION_AFTER = re.compile(r"\s+(?:or|and|nor)\b")
_NON_WORD = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Extraction:
    """The letter a response picks (None when it picks none or several) and the rule that decided."""

    letter: str | None
    # answer_tag | bare | leading | boxed | explicit | parenthesised | option_text | standalone | none |
    # truncated | ambiguous (two options offered as alternatives: "A or C")
    method: str


def extract_choice(response: object, options: Mapping[str, str]) -> Extraction:
    """The option letter `response` chooses among `options` (letter -> option text)."""
    if not isinstance(response, str) or not options:
        return Extraction(None, "none")
    letters = frozenset(options)
    tagged = extract_answer(response)
    if tagged is None:
        # a response cut off by the token limit: take what follows the last opening tag
        start = response.rfind(ANSWER_OPEN)
        if start >= 0 and response.find(ANSWER_CLOSE, start) < 0:
            tagged = response[start + len(ANSWER_OPEN) :].strip()
    if tagged:
        if _offers_alternatives(tagged, letters):
            return Extraction(None, "ambiguous")  # the final answer itself names two options
        letter, _ = _from_text(tagged, options, letters)
        if letter is not None:
            return Extraction(letter, "answer_tag")
    if THINK_OPEN in response and THINK_CLOSE not in response:
        # reasoning cut off before its end: only an explicit statement counts, never a passing mention
        letter, method = _from_text(response, options, letters, weak=False)
        return Extraction(letter, method if letter is not None else "truncated")
    body = _final_part(response)
    if _offers_alternatives(body, letters) and not _states_a_choice(body, letters):
        return Extraction(None, "ambiguous")  # "Either A or C", "A/C" with no explicit choice
    letter, method = _from_text(body, options, letters)
    if letter is None and body is not response:
        letter, method = _from_text(response, options, letters, weak=False)
    return Extraction(letter, method if letter is not None or method == "ambiguous" else "none")


# What the VLMEvalKit hand-off writes for a reply that names no option. VLMEvalKit's matcher reads a lone
# "Z" as its own "no answer" choice (can_infer_option), which never equals an answer letter, and its
# MME-RealWorld scorer finds no A-E in it; option letters here stop at J.
NO_ANSWER = "Z"


def handoff_prediction(response: object, options: Mapping[str, str]) -> str:
    """A reply reduced to what VLMEvalKit's exact matcher reads exactly as ssl4rl does: the extracted
    letter, or `NO_ANSWER`. Raw text is never passed on: its matcher would find letters in replies
    ssl4rl counts as unanswered ("The answer is b.", "nan") and the two tables would differ."""
    letter = extract_choice(response, options).letter
    return letter if letter is not None else NO_ANSWER


def _final_part(response: str) -> str:
    """The text after the reasoning block, when there is a reasoning block followed by something."""
    end = response.rfind(THINK_CLOSE)
    if end < 0:
        return response
    tail = response[end + len(THINK_CLOSE) :]
    return tail if tail.strip() else response


def _from_text(
    text: str, options: Mapping[str, str], letters: frozenset[str], weak: bool = True
) -> tuple[str | None, str]:
    stripped = text.strip()
    match = _BARE.match(stripped)
    if match and match.group(1) in letters:
        return match.group(1), "bare"
    for pattern in (_LEADING_PAREN, _LEADING):
        match = pattern.match(stripped)
        if match and match.group(1) in letters:
            others = {m.group(1) for m in _PARENTHESISED.finditer(stripped)} & letters
            if others <= {match.group(1)}:  # "(A) and (C) both ..." labels no single choice
                return match.group(1), "leading"
    found = _last_in(_BOXED.finditer(text), letters)
    if found:
        return found, "boxed"
    explicit = [m for m in _EXPLICIT.finditer(text) if m.group(1).isupper() and m.group(1) in letters]
    if explicit:
        last = explicit[-1]
        if _alternative_follows(text, last, letters):
            return None, "ambiguous"  # "the answer is A or C"
        return last.group(1), "explicit"
    if not weak:
        # text full of reasoning: mentions of options are not choices
        return None, "none"
    unique = _only_one(_PARENTHESISED.finditer(text), letters)
    if unique:
        return unique, "parenthesised"
    by_text = _match_option_text(text, options)
    if by_text:
        return by_text, "option_text"
    candidates = {
        m.group(1) for m in _STANDALONE.finditer(text) if m.group(1) in letters and not _is_article(text, m)
    }
    if len(candidates) == 1:
        return candidates.pop(), "standalone"
    return None, "none"


def _states_a_choice(text: str, letters: frozenset[str]) -> bool:
    return any(m.group(1) in letters for m in _EXPLICIT.finditer(text) if m.group(1).isupper())


def _offers_alternatives(text: str, letters: frozenset[str]) -> bool:
    return any(
        m.group(1) in letters and m.group(2) in letters and m.group(1) != m.group(2)
        for m in _ALTERNATIVE.finditer(text)
    )


def _alternative_follows(text: str, match: re.Match, letters: frozenset[str]) -> bool:
    """The letter `match` chose is the first of two alternatives ("answer is A or C")."""
    start = match.start(1)
    following = _ALTERNATIVE.match(text, start)
    return bool(following and following.group(2) in letters and following.group(2) != match.group(1))


def _last_in(matches, letters: frozenset[str], uppercase_only: bool = False) -> str | None:
    last = None
    for match in matches:
        letter = match.group(1)
        if uppercase_only and not letter.isupper():
            continue
        if letter in letters:
            last = letter
    return last


def _only_one(matches, letters: frozenset[str]) -> str | None:
    found = {m.group(1) for m in matches if m.group(1) in letters}
    return found.pop() if len(found) == 1 else None


def _is_article(text: str, match: re.Match) -> bool:
    """`A` opening a sentence before a lowercase word is the article ("A dog runs."), not option A.

    "I" is the pronoun whenever a lowercase word follows ("I think", "I would").
    """
    letter = match.group(1)
    if letter not in ("A", "I") or not _ARTICLE_AFTER.match(text, match.end()):
        return False
    if _CONJUNCTION_AFTER.match(text, match.end()):
        return False  # "A or C": a letter offered as an alternative, not the article
    if letter == "I":
        return True
    before = text[: match.start()].rstrip(" \t*\"'")
    return not before or before[-1] in ".!?:\n"


def _normalize(text: str) -> str:
    return " " + _NON_WORD.sub(" ", text.lower()).strip() + " "


def _match_option_text(text: str, options: Mapping[str, str]) -> str | None:
    """The single option whose full text appears in the response (longest wins when one contains another)."""
    haystack = _normalize(text)
    hits = []
    for letter, option in options.items():
        needle = _normalize(str(option))
        if needle.strip() and needle in haystack:
            hits.append((letter, needle))
    if not hits:
        return None
    if len(hits) == 1:
        return hits[0][0]
    longest_letter, longest = max(hits, key=lambda hit: len(hit[1]))
    if all(needle in longest for _, needle in hits):
        return longest_letter
    return None
