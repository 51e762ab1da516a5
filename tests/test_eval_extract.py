"""Answer-letter extraction on a corpus of realistic model outputs."""

from __future__ import annotations

import pytest

from ssl4rl.evaluation.extract import NO_ANSWER, extract_choice, handoff_prediction

OPTIONS = {"A": "a red car", "B": "a blue bicycle", "C": "a green bus", "D": "a yellow truck"}

# (response, expected letter or None)
CORPUS = [
    # the paper's format
    ("<think> The vehicle has two wheels and is blue. </think> <answer>B</answer>", "B"),
    ("<think>It is red, so A.</think>\n<answer> (A) </answer>", "A"),
    (
        "<think>Looking at options A, B and D... the bus is green.</think> <answer>C. a green bus</answer>",
        "C",
    ),
    ("<think>red car vs truck</think><answer>a yellow truck</answer>", "D"),
    ("<think>Option A is wrong, B is wrong.</think> <answer> **D** </answer>", "D"),
    ("<think>hmm</think> <answer>", None),  # empty, cut off
    ("<think>Two wheels, blue frame.</think> <answer>B", "B"),  # cut off after the letter
    ("<think>reasoning about A and C</think> The answer is C.", "C"),
    # reasoning cut off by the token limit: passing mentions do not count
    ("<think>First, option A shows a red car. Option B", None),
    ("<think>Clearly the answer is D, but let me double check option A", "D"),
    # bare letters and decorated letters
    ("B", "B"),
    ("B.", "B"),
    ("(C)", "C"),
    ("**A**", "A"),
    ("  D\n", "D"),
    ("[B]", "B"),
    # labelled option at the start
    ("B. a blue bicycle", "B"),
    ("(D) a yellow truck", "D"),
    ("C) a green bus, because of its colour", "C"),
    ("A: a red car", "A"),
    ("**B.** The bicycle is blue.", "B"),
    # explicit statements
    ("The answer is B.", "B"),
    ("The correct answer is (C).", "C"),
    ("Answer: D", "D"),
    ("Based on the colour, the best option is **A**.", "A"),
    ("Final answer: (B) a blue bicycle", "B"),
    ("I would choose C because the bus is green.", "C"),
    ("The answer is B, not option A.", "B"),
    ("Option A is tempting, but the correct option is D.", "D"),
    ("**Answer**: B", "B"),
    ("**Answer:** (D)", "D"),
    ("The correct answer is: **C. a green bus**", "C"),
    ("Answer: A\n\nExplanation: the car is red, unlike options B and C.", "A"),
    ("\\boxed{C}", "C"),
    ("So the result is $\\boxed{\\text{B}}$.", "B"),
    # only one parenthesised letter
    ("Looking closely, I think (B) fits the picture best.", "B"),
    # option text only
    ("It is a green bus.", "C"),
    ("The image shows a yellow truck parked on a street.", "D"),
    # a single standalone letter in prose
    ("I think it's D.", "D"),
    ("Probably C", "C"),
    # articles and other capitals are not choices
    ("A dog is running in the park.", None),
    ("A picture of something else entirely.", None),
    ("I cannot tell from this image.", None),
    # ambiguous: two different letters without an explicit choice
    ("Either A or C could be right.", None),
    ("(A) and (C) both look plausible.", None),
    ("It could be a red car or a green bus.", None),
    # two options offered as alternatives name no choice, in the answer block too
    ("A or C", None),
    ("<answer>A or C</answer>", None),
    ("<think>Both fit.</think> <answer>B or D</answer>", None),
    ("<think>Both fit.</think> <answer>(A) or (C)</answer>", None),
    ("The answer is A or C.", None),
    ("The answer is (A) or (C).", None),
    ("A/C", None),
    ("B and D", None),
    ("Options A and B are wrong, so the answer is C.", "C"),
    # a lower-case letter is not an explicit choice ("the answer is a ..." is an article)
    ("The answer is b.", None),
    # garbage and non-strings
    ("", None),
    ("<answer></answer>", None),
    ("E", None),  # not an option here
    ("The answer is E.", None),
]


@pytest.mark.parametrize("response, expected", CORPUS)
def test_extract_choice_corpus(response, expected):
    assert extract_choice(response, OPTIONS).letter == expected


def test_non_string_and_no_options():
    assert extract_choice(None, OPTIONS).letter is None
    assert extract_choice(42, OPTIONS).letter is None
    assert extract_choice("B", {}).letter is None


def test_letters_limited_to_the_question_options():
    two = {"A": "yes", "B": "no"}
    assert extract_choice("C", two).letter is None
    assert extract_choice("No, there is none.", two).letter == "B"
    assert extract_choice("<answer>yes</answer>", two).letter == "A"
    # five options (MME-RealWorld style)
    five = {letter: f"option {letter.lower()}" for letter in "ABCDE"}
    assert extract_choice("<answer>E</answer>", five).letter == "E"


def test_longest_option_text_wins_when_one_contains_another():
    options = {"A": "car", "B": "red car", "C": "bus"}
    assert extract_choice("It is a red car.", options).letter == "B"


def test_method_is_reported():
    assert extract_choice("<think>x</think> <answer>B</answer>", OPTIONS).method == "answer_tag"
    assert extract_choice("The answer is B.", OPTIONS).method == "explicit"
    assert extract_choice("A dog.", OPTIONS).method == "none"
    assert extract_choice("<think>option A", OPTIONS).method == "truncated"


def test_huge_and_adversarial_inputs_are_fast_and_safe():
    junk = "<answer>" * 20000 + "(" * 20000 + "answer is " * 20000
    assert extract_choice(junk, OPTIONS).letter is None
    long_reasoning = "<think>" + "Option A looks red. " * 50000 + "</think><answer>C</answer>"
    assert extract_choice(long_reasoning, OPTIONS).letter == "C"


def test_handoff_prediction_is_the_letter_read_or_no_answer():
    assert handoff_prediction("<think>x</think> <answer>B</answer>", OPTIONS) == "B"
    assert handoff_prediction("<think>x</think> <answer>a green bus</answer>", OPTIONS) == "C"
    for unread in ("<think>x</think> <answer>no idea</answer>", "The answer is b.", "A or C", "", None):
        assert handoff_prediction(unread, OPTIONS) == NO_ANSWER == "Z"
    assert extract_choice(NO_ANSWER, OPTIONS).letter is None  # re-imported, it stays unanswered


def test_ambiguous_method_is_reported():
    assert extract_choice("<answer>A or C</answer>", OPTIONS).method == "ambiguous"
    assert extract_choice("The answer is A or C.", OPTIONS).method == "ambiguous"
