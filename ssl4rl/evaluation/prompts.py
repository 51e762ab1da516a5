"""Prompts for multiple-choice questions: the paper's reasoning format or a plain letter answer.

The layout follows VLMEvalKit's multiple-choice prompt for Qwen2-VL (hint, question, lettered
options, instruction; images before the text), so numbers stay comparable with its runs; only the
closing instruction differs between the two prompt styles.
"""

from __future__ import annotations

from .questions import MCQuestion

PROMPT_STYLES = ("reasoning", "plain")

PLAIN_INSTRUCTION = "Answer with the option's letter from the given choices directly."


# The paper's answer format for multiple choice: reasoning in <think>, only the letter in <answer>.
REASONING_FORMAT = (
    "Think step by step inside <think> </think> tags, then give only the letter of the chosen option "
    "inside <answer> </answer> tags, i.e. <think> reasoning </think> <answer> LETTER </answer>"
)


def reasoning_instruction(letters: list[str]) -> str:
    return f"Please select the correct answer from the options above. {REASONING_FORMAT} where LETTER is one of {', '.join(letters)}."


def question_prompt(question: MCQuestion, style: str = "reasoning") -> str:
    """The text part of the prompt (images are passed separately, before this text)."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; use one of {', '.join(PROMPT_STYLES)}")
    parts = []
    if question.hint:
        parts.append(f"Hint: {question.hint}")
    parts.append(f"Question: {question.question}")
    parts.append("Options:")
    parts.extend(f"{letter}. {text}" for letter, text in question.options.items())
    if style == "reasoning":
        parts.append(reasoning_instruction(list(question.options)))
    else:
        parts.append(PLAIN_INSTRUCTION)
    return "\n".join(parts)
