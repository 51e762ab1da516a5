"""Every protocol's prompt, character for character (VLMEvalKit's layouts, the paper's instruction)."""

from __future__ import annotations

import pytest

from ssl4rl.evaluation.protocols import MATCHED_PROTOCOLS, PROTOCOLS, question_prompt
from ssl4rl.evaluation.questions import MCQuestion, rows_to_questions
from ssl4rl.registry import UnknownNameError

QUESTION = MCQuestion(
    key="7",
    index=7,
    question="What is the man holding?",
    options={"A": "a cup", "B": "a phone", "C": "a book"},
    answer="B",
    hint="The photo was taken at night.",
)
LAYOUT = (
    "Hint: The photo was taken at night.\n"
    "Question: What is the man holding?\n"
    "Options:\n"
    "A. a cup\n"
    "B. a phone\n"
    "C. a book\n"
)

EXPECTED = {
    # ImageMCQDataset.build_prompt with its instruction replaced by the paper's (its README, verbatim)
    "paper": LAYOUT
    + "Answer this multiple-choice question. Think step by step before answering. The last line "
    "of your response should be of the following format: <think>step-by-step reasoning</think> "
    "<answer>$LETTER</answer>, where LETTER is one of the options. \n",
    "cot": LAYOUT
    + "Answer this multiple-choice question. Think step by step before answering. The last line of "
    "your response should be of the following format: Answer: $LETTER, where LETTER is one of the options. \n",
    "direct": LAYOUT + "Answer with the option's letter from the given choices directly. \n",
    # Qwen2VLPromptMixin._build_mcq_prompt (use_custom_prompt: true): right-stripped
    "vlmevalkit": LAYOUT + "Please select the correct answer from the options above.",
    "ssl4rl-tags": LAYOUT
    + "Please select the correct answer from the options above. Think step by step inside "
    "<think> </think> tags, then give only the letter of the chosen option inside <answer> </answer> tags, i.e. "
    "<think> reasoning </think> <answer> LETTER </answer> where LETTER is one of A, B, C. \n",
}


@pytest.mark.parametrize("protocol", sorted(EXPECTED))
def test_every_protocol_renders_exactly(protocol):
    assert question_prompt(QUESTION, protocol) == EXPECTED[protocol]


def test_every_registered_protocol_is_pinned_and_the_matched_set_differs_only_in_the_instruction():
    assert set(PROTOCOLS.names()) == set(EXPECTED)
    assert MATCHED_PROTOCOLS == ("paper", "cot", "direct")
    stems = {question_prompt(QUESTION, p)[: len(LAYOUT)] for p in MATCHED_PROTOCOLS}
    assert stems == {LAYOUT}
    assert [PROTOCOLS.get(p).tags for p in MATCHED_PROTOCOLS] == [True, False, False]
    assert [PROTOCOLS.get(p).reasoning for p in MATCHED_PROTOCOLS] == [True, True, False]


def test_no_hint_line_without_a_hint_and_na_options_are_not_listed():
    rows = [{"index": "1", "question": "Is it red?", "hint": "nan", "A": "yes", "B": "N/A", "C": "no",
             "answer": "A", "image": "x"}]  # fmt: skip
    question = rows_to_questions(rows, list(rows[0])).questions[0]
    assert question_prompt(question, "direct") == (
        "Question: Is it red?\nOptions:\nA. yes\nC. no\nAnswer with the option's letter from the given choices "
        "directly. \n"
    )


def test_vlmevalkit_protocol_switches_to_chinese_like_vlmevalkit():
    chinese = MCQuestion(key="1", index=1, question="图中是什么?", options={"A": "猫", "B": "狗"}, answer="A")
    assert (
        question_prompt(chinese, "vlmevalkit")
        == "Question: 图中是什么?\nOptions:\nA. 猫\nB. 狗\n请直接回答选项字母。"
    )


def test_unknown_protocol_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="Did you mean 'paper'"):
        question_prompt(QUESTION, "papr")
