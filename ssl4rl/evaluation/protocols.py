"""Evaluation protocols: what a multiple-choice question asks the model, word for word.

A protocol fixes the prompt text only; images, pixel limits (min 35,840 / max 12,845,056), greedy
decoding and the 2,048-token budget are the same for all of them, so two protocols run on one model
differ in nothing but the instruction. That is what lets a reader separate a gain in *format* (the
model learned to write `<answer>B</answer>`) from a gain in *vision* (it picks the right option more
often whatever it is asked).

The text is VLMEvalKit's multiple-choice layout, rendered as VLMEvalKit renders it:

- `ImageMCQDataset.build_prompt` (vlmeval/dataset/image_mcq.py; used when the model's config has
  `use_custom_prompt: false`): `Hint: ...\\n` (only when there is a hint), `Question: ...\\n`,
  `Options:\\n`, one `A. text\\n` line per option, then the instruction followed by ` \\n`. The
  paper replaced that instruction sentence with its own (its README) and evaluated with
  `use_custom_prompt: false`; `paper`, `cot` and `direct` are this layout with their instruction.
- `Qwen2VLPromptMixin._build_mcq_prompt` (vlmeval/vlm/qwen2_vl/prompt.py; Qwen2VLChat's default,
  `use_custom_prompt: true`): the same lines with "Please select the correct answer from the options
  above." (a Chinese instruction when the text has Chinese characters), right-stripped. That is the
  `vlmevalkit` protocol: what a VLMEvalKit user gets for Qwen2.5-VL without changing anything.

Images always come before the text (VLMEvalKit puts image items first for these datasets). Options
whose cell VLMEvalKit reads as missing (`N/A`, `NA`, `null`, ... see `questions.NA_STRINGS`) are not
listed, as in VLMEvalKit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..registry import Registry
from .questions import MCQuestion

# The paper's instruction, verbatim from the SSL4RL README ("Customize Prompt").
PAPER_INSTRUCTION = (
    "Answer this multiple-choice question. Think step by step before answering. The last line of your "
    "response should be of the following format: <think>step-by-step reasoning</think> "
    "<answer>$LETTER</answer>, where LETTER is one of the options."
)
# The paper's wording with the tags swapped for a plain answer line: reasoning is still asked for,
# the `<think>/<answer>` format is not.
COT_INSTRUCTION = (
    "Answer this multiple-choice question. Think step by step before answering. The last line of your "
    "response should be of the following format: Answer: $LETTER, where LETTER is one of the options."
)
# VLMEvalKit's letter-only instruction (InternVL, LLaVA, MiniCPM-V and others use it).
DIRECT_INSTRUCTION = "Answer with the option's letter from the given choices directly."
# VLMEvalKit's own instruction in ImageMCQDataset.build_prompt and in Qwen2VLChat's custom prompt.
VLMEVAL_INSTRUCTION = "Please select the correct answer from the options above."
VLMEVAL_CN_INSTRUCTION = "请直接回答选项字母。"
# ssl4rl's earlier prompt (the SSL tasks' tag wording); kept so its numbers can be reproduced.
SSL4RL_TAGS_FORMAT = (
    "Think step by step inside <think> </think> tags, then give only the letter of the chosen option "
    "inside <answer> </answer> tags, i.e. <think> reasoning </think> <answer> LETTER </answer>"
)

_CHINESE = re.compile("[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Protocol:
    name: str
    summary: str
    instruction: str  # the closing instruction ({letters} is replaced by "A, B, C" where present)
    tags: bool  # the instruction asks for <think>/<answer> tags
    reasoning: bool  # the instruction asks for reasoning before the answer
    # how VLMEvalKit renders it: False = ImageMCQDataset.build_prompt (use_custom_prompt: false),
    # True = Qwen2VLChat's custom MCQ prompt (use_custom_prompt: true)
    vlmeval_custom_prompt: bool = False

    def instruction_for(self, letters: list[str]) -> str:
        return self.instruction.replace("{letters}", ", ".join(letters))

    def render(self, question: MCQuestion) -> str:
        """The text of the prompt (the images go before it)."""
        prompt = ""
        if question.hint:
            prompt += f"Hint: {question.hint}\n"
        prompt += f"Question: {question.question}\n"
        if question.options:
            prompt += "Options:\n"
            prompt += "".join(f"{letter}. {text}\n" for letter, text in question.options.items())
            if self.vlmeval_custom_prompt:
                prompt += VLMEVAL_CN_INSTRUCTION if _CHINESE.search(prompt) else self.instruction
            else:
                prompt += self.instruction_for(list(question.options)) + " \n"
        return prompt.rstrip() if self.vlmeval_custom_prompt else prompt


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def _register(protocol: Protocol) -> None:
    PROTOCOLS.register(protocol.name)(protocol)


_register(
    Protocol(
        "paper",
        "the paper's protocol: reasoning, then <think>...</think> <answer>LETTER</answer> (its README's instruction)",
        PAPER_INSTRUCTION,
        tags=True,
        reasoning=True,
    )
)
_register(
    Protocol(
        "cot",
        "the paper's wording without tags: reasoning, then a last line 'Answer: LETTER'",
        COT_INSTRUCTION,
        tags=False,
        reasoning=True,
    )
)
_register(
    Protocol(
        "direct",
        "VLMEvalKit's letter-only instruction: \"Answer with the option's letter from the given choices directly.\"",
        DIRECT_INSTRUCTION,
        tags=False,
        reasoning=False,
    )
)
_register(
    Protocol(
        "vlmevalkit",
        "VLMEvalKit's default prompt for Qwen2VLChat (use_custom_prompt: true): "
        '"Please select the correct answer from the options above."',
        VLMEVAL_INSTRUCTION,
        tags=False,
        reasoning=False,
        vlmeval_custom_prompt=True,
    )
)
_register(
    Protocol(
        "ssl4rl-tags",
        "ssl4rl's earlier prompt: VLMEvalKit's instruction plus the SSL tasks' tag wording",
        f"{VLMEVAL_INSTRUCTION} {SSL4RL_TAGS_FORMAT} where LETTER is one of {{letters}}.",
        tags=True,
        reasoning=True,
    )
)

PROTOCOL_NAMES = tuple(PROTOCOLS.names())
MATCHED_PROTOCOLS = ("paper", "cot", "direct")  # tags vs no tags vs no reasoning: the comparison set


def get_protocol(name: str) -> Protocol:
    return PROTOCOLS.get(name)


def question_prompt(question: MCQuestion, protocol: str = "paper") -> str:
    """The text part of the prompt (images are passed separately, before this text)."""
    return get_protocol(protocol).render(question)
