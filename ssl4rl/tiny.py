"""A tiny random VLM of a registered model family (about 0.26M parameters) built offline, for tests and the demo.

It has the real architecture, processor classes and chat-template markers of its family (Qwen2.5-VL by
default, Qwen3-VL, GLM-4.1V: `ssl4rl.model_families`), so everything that loads e.g.
`Qwen/Qwen2.5-VL-3B-Instruct` through `AutoProcessor` / `AutoModelForImageTextToText` loads this directory
the same way; only the sizes are tiny and the weights random. Images are kept cheap: the image processor
resizes every image (short of extreme aspect ratios) to between 1 and 4 image tokens (Qwen2.5-VL: `TINY_MIN_PIXELS` 28x28 to
`TINY_MAX_PIXELS` 56x56; the other families the same in their own token size), so a 4-patch jigsaw
prompt costs at most 16 image tokens plus markers.

The BPE is trained on the registered tasks' own prompts (so a prompt is ~100 text tokens), and the
reply vocabulary is small on purpose: the format tags and every multi-character answer of the
registered tasks (`90`, `top-left`, `positive`, `3 horizontal`, ...) are single tokens, so a reply
like `<think></think><answer>90</answer>` is 5 tokens.

With `reply_prior=True` the random weights get a short next-token warm-up (`REPLY_PRIOR_STEPS`,
15-60 s on one CPU core, depending on how busy it is) on synthetic chat turns, standing in for the instruction following a
pretrained VLM brings: a purely random model writes `<answer>...</answer>` with probability ~1e-8 per
reply, so GRPO would never see a reward. The warm-up replies follow the format only sometimes
(`REPLY_MIX`) and answer with one of the asked task's answers only half of the time (`ON_TASK_SHARE`),
picked uniformly: they never depend on the images, so nothing the model gets right beyond guessing,
and no answer preference, comes from the warm-up.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile

import numpy as np
from PIL import Image
from tqdm import tqdm

from .answer import ANSWER_CLOSE, ANSWER_OPEN, FORMAT_INSTRUCTION, THINK_CLOSE, THINK_OPEN
from .errors import require
from .fileio import publish_directory
from .images import LoadedImage
from .model_families import GLM_4_1V, QWEN2_5_VL, QWEN3_VL, ModelFamily, get_family
from .tasks import IMAGE_PLACEHOLDER, TASKS

# One Qwen2.5-VL image token covers a 28x28 area (14 px patches merged 2x2).
TINY_MIN_PIXELS = 28 * 28
TINY_MAX_PIXELS = 56 * 56

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
VOCAB_SIZE = 1024
# Weight init std of the language model. Larger than Qwen's 0.02: at 64 hidden units and 0.02, attention
# is near uniform and the reply barely depends on the prompt, so no amount of short training teaches
# the model which question it was asked.
TEXT_INIT_STD = 0.08
REPLY_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
# Answer spaces up to this size are listed as reply tokens (a 2x2 jigsaw's 24 permutations are not:
# they are spelled with digit and comma tokens).
MAX_LISTED_ANSWERS = 16

# The warm-up of `reply_prior=True`: kinds of synthetic replies and their shares.
#   formatted: <think> 1-2 words </think><answer> A </answer>   (follows the format)
#   bare:      <answer> A </answer>                              (answer without the think block)
#   noise:     1-6 reply tokens in random order                  (tags and answers, no structure)
# A is drawn as `ON_TASK_SHARE` says, never from the images. Bare replies outnumber formatted ones, so
# greedy decoding before GRPO writes no think block (format rate 0) while sampled groups still contain
# formatted replies for the format reward to pick out.
REPLY_MIX = {"formatted": 0.25, "bare": 0.45, "noise": 0.3}
# Share of answered warm-up replies whose answer is one of the asked task's answers (picked uniformly,
# never from the images); the others take a random task's answer. So the model starts out half knowing
# which words each question admits, and nothing about which is right.
ON_TASK_SHARE = 0.5
REPLY_PRIOR_STEPS = 150
WARMUP_LR = 3e-3
_THINK_WORDS = (" the", " image", " is", " rotated", " first", " second", " patch")

# Qwen2.5-VL's template in spirit: a default system turn, `<|im_start|>role\n...<|im_end|>` turns and
# `<|vision_start|><|image_pad|><|vision_end|>` for each image item; the processor expands the pad
# token to the image's real token count.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item or 'image_url' in item %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' or 'video' in item %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in item %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# GLM-4.1V's tokens and template in spirit: `[gMASK]<sop>` once, `<|role|>\n...` turns (no end-of-turn token:
# the next role token ends a turn, so generation stops at `<|user|>` or `<|endoftext|>`) and
# `<|begin_of_image|><|image|><|end_of_image|>` for each image item.
GLM_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|video|>",
)
GLM_CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item or 'image_url' in item %}"
    "<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif item['type'] == 'video' or 'video' in item %}"
    "<|begin_of_video|><|video|><|end_of_video|>"
    "{% elif 'text' in item %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Words of our prompts and answers, so that they tokenise into few tokens. Any text still encodes
# (byte-level BPE); this only shortens sequences.
_CORPUS = [
    FORMAT_INSTRUCTION,
    "<think> reasoning </think> <answer> 90 </answer>",
    "<think> the second image is rotated </think> <answer> 180 </answer>",
    "The second image is the first image rotated counter-clockwise by 0, 90, 180 or 270 degrees. "
    "How many degrees was it rotated?",
    "The images are the patches of one image split into a 2 by 2 grid and shuffled. For each position "
    "row by row, give the index of the patch that belongs there, e.g. 3,2,1,4 or 1,2,3,4 or 2,1,4,3.",
    "The second image is a crop taken from one quadrant of the first image: top-left, top-right, "
    "bottom-left or bottom-right. Which quadrant?",
    "Are the two images augmented views of the same source image (positive) or of two different images "
    "(negative)? Answer positive or negative.",
    "Question: which option is correct? A B C D. Answer with the option letter.",
    "0 1 2 3 4 5 6 7 8 9 10 30 45 60 120 135 150 210 225 240 300 315 330 yes no",
]


def build_tiny_qwen2_5_vl(
    out_dir: str, seed: int = 0, reply_prior: bool = False, progress: bool = False
) -> str:
    """Write a tiny random Qwen2.5-VL to `out_dir` (`build_tiny_model` for the default family)."""
    return build_tiny_model(out_dir, seed=seed, reply_prior=reply_prior, progress=progress)


def tiny_pixel_limits(family: ModelFamily) -> tuple[int, int]:
    """(min_pixels, max_pixels) of a tiny model's processor: 1 to 4 image tokens per image. GLM-4.1V's limits
    bound two frames of the image (`ModelFamily.frames_per_image`)."""
    token = family.factor**2 * family.frames_per_image
    return token, 4 * token


def build_tiny_model(
    out_dir: str,
    seed: int = 0,
    reply_prior: bool = False,
    family: str | ModelFamily = QWEN2_5_VL,
    progress: bool = False,
) -> str:
    """Write a tiny random VLM of `family` (model, tokenizer, processor, chat template) to `out_dir`.

    `reply_prior`: warm the random weights up on synthetic replies (`REPLY_MIX`; `REPLY_PRIOR_STEPS` steps,
    20-60 s on one CPU core) so that sampled replies sometimes follow the answer format; see the module
    docstring. `progress`: show a progress bar of the warm-up on stderr.
    Deterministic: the same seed gives byte-identical weights. The directory is written to a
    temporary sibling first and moved into place, so a crash never leaves a half-written model.
    Returns `out_dir`.
    """
    family = get_family(family) if isinstance(family, str) else family
    torch = require("torch", "torch", f"building the tiny {family.title}")
    transformers = require("transformers", "torch", f"building the tiny {family.title}")
    min_pixels, max_pixels = tiny_pixel_limits(family)

    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tiny-qwen-", dir=parent)
    try:
        tokenizer = _build_tokenizer(transformers, family)
        processor = _PROCESSORS[family.name](tokenizer, min_pixels, max_pixels)
        model = _build_model(torch, _MODELS[family.name](tokenizer), seed, tokenizer)
        prior = (
            _warm_up_reply_prior(torch, model, tokenizer, seed, family, progress=progress)
            if reply_prior
            else None
        )
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        # generation defaults: sampling stays on so GRPO groups differ; the trainer overrides anyway
        model.generation_config.save_pretrained(tmp)
        with open(os.path.join(tmp, "ssl4rl_tiny.json"), "w") as f:
            json.dump(
                {
                    "seed": seed,
                    "model_family": family.name,
                    "min_pixels": min_pixels,
                    "max_pixels": max_pixels,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "reply_tokens": list(REPLY_TAGS) + reply_answer_tokens(),
                    "reply_prior": prior,
                },
                f,
                indent=2,
            )
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        publish_directory(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def reply_answer_tokens() -> list[str]:
    """Every answer of the registered tasks (default knobs) whose answer space lists at most
    `MAX_LISTED_ANSWERS` entries, in registry order without repeats."""

    answers: list[str] = []
    for name in TASKS.names():
        space = TASKS.get(name)().answer_space() or []
        if len(space) <= MAX_LISTED_ANSWERS:
            answers += [a for a in space if a not in answers]
    return answers


@functools.lru_cache(maxsize=1)
def task_prompt_pairs(per_task: int = 3) -> tuple[tuple[str, str], ...]:
    """(task, prompt) for every registered task (image placeholders removed), generated from synthetic
    noise images: the tiny BPE learns their words (so real prompts stay short) and the reply prior sees
    each task's question. A task that cannot build from these images contributes nothing."""

    rng = np.random.default_rng(0)
    sources = []
    for _ in range(4):
        image = Image.fromarray(rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8))
        sources.append(LoadedImage(image=image))
    pairs = []
    for name in TASKS.names():
        task = TASKS.get(name)()
        try:
            for plan in list(task.plan(len(sources), np.random.default_rng(1)))[:per_task]:
                example = task.generate(
                    sources[plan.source], np.random.default_rng(plan.index), plan, sources.__getitem__
                )
                pairs.append((name, task.prompt(example).replace(IMAGE_PLACEHOLDER, "")))
        except Exception:  # any task-specific refusal (too small, needs more sources): its text is optional
            continue
    return tuple(pairs)


def task_prompts() -> list[str]:
    return [prompt for _, prompt in task_prompt_pairs()]


def _special_tokens(family: ModelFamily) -> tuple[str, ...]:
    return GLM_SPECIAL_TOKENS if family is GLM_4_1V else SPECIAL_TOKENS


def _end_of_turn(family: ModelFamily) -> str:
    """The token a reply ends with (the tokenizer's eos)."""
    return "<|endoftext|>" if family is GLM_4_1V else "<|im_end|>"


def _build_tokenizer(transformers, family: ModelFamily = QWEN2_5_VL):
    tokenizers = require("tokenizers", "torch", "building the tiny tokenizer")
    from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers

    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(_special_tokens(family)),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([*_CORPUS, *task_prompts()], trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=_end_of_turn(family),
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        chat_template=GLM_CHAT_TEMPLATE if family is GLM_4_1V else CHAT_TEMPLATE,
        model_max_length=32768,
        padding_side="left",
    )
    # Not special: TRL and the evaluators decode with skip_special_tokens=True, and the reward must see them.
    tokenizer.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in REPLY_TAGS])
    tokenizer.add_tokens(
        [
            AddedToken(answer, single_word=True, normalized=False, special=False)
            for answer in reply_answer_tokens()
            if answer not in tokenizer.get_vocab()  # single letters and digits already are tokens
        ]
    )
    # attribute names the family's processor looks up on its tokenizer
    tokenizer.image_token = family.image_pad
    tokenizer.video_token = "<|video|>" if family is GLM_4_1V else "<|video_pad|>"
    return tokenizer


def _qwen2_5_vl_processor(tokenizer, min_pixels: int, max_pixels: int):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(size)),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=dict(size)),
        chat_template=CHAT_TEMPLATE,
    )


def _qwen3_vl_processor(tokenizer, min_pixels: int, max_pixels: int):
    # Qwen3-VL checkpoints ship Qwen2-VL's image processor with 16 px patches and 0.5 mean/std
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    geometry = {"patch_size": QWEN3_VL.patch_size, "merge_size": QWEN3_VL.merge_size}
    norm = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(size), **geometry, **norm),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(size=dict(size), **geometry, **norm),
        chat_template=CHAT_TEMPLATE,
    )


def _glm_4_1v_processor(tokenizer, min_pixels: int, max_pixels: int):
    from transformers import Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return Glm4vProcessor(
        image_processor=Glm4vImageProcessor(size=dict(size)),
        tokenizer=tokenizer,
        video_processor=Glm4vVideoProcessor(size=dict(size)),
        chat_template=GLM_CHAT_TEMPLATE,
    )


_PROCESSORS = {
    QWEN2_5_VL.name: _qwen2_5_vl_processor,
    QWEN3_VL.name: _qwen3_vl_processor,
    GLM_4_1V.name: _glm_4_1v_processor,
}


def _build_model(torch, config, seed: int, tokenizer):
    from transformers import AutoModelForImageTextToText

    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    stop = config.get_text_config().eos_token_id  # GLM-4.1V: several
    # Seed a private generator stream: the global RNG state of the caller is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
    model.generation_config.update(
        bos_token_id=None,
        eos_token_id=stop,
        pad_token_id=pad,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
    )
    return model.eval()


_TINY_TEXT = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    max_position_embeddings=4096,
    initializer_range=TEXT_INIT_STD,
    bos_token_id=None,  # like Qwen's tokenizer: no BOS token is prepended
)
_TINY_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64)


def _qwen2_5_vl_config(tokenizer):
    from transformers import Qwen2_5_VLConfig

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    return Qwen2_5_VLConfig(
        text_config=dict(
            _TINY_TEXT,
            vocab_size=len(tokenizer),
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            _TINY_VISION,
            fullatt_block_indexes=[1],
            window_size=56,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )


def _qwen3_vl_config(tokenizer):
    from transformers import Qwen3VLConfig

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    return Qwen3VLConfig(
        text_config=dict(
            _TINY_TEXT,
            head_dim=16,
            vocab_size=len(tokenizer),
            # 3D rope over (t, h, w) with interleaved sections, as Qwen3-VL; the sections sum to head_dim / 2
            rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True},
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            _TINY_VISION,
            patch_size=QWEN3_VL.patch_size,
            spatial_merge_size=QWEN3_VL.merge_size,
            num_position_embeddings=64,  # an 8x8 grid, interpolated to any image size
            deepstack_visual_indexes=[0],
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )


def _glm_4_1v_config(tokenizer):
    from transformers import Glm4vConfig

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in GLM_SPECIAL_TOKENS}
    stop = [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]]  # as GLM-4.1V's generation config
    return Glm4vConfig(
        text_config=dict(
            _TINY_TEXT,
            vocab_size=len(tokenizer),
            # GLM-4.1V rotates half of each head (partial_rotary_factor 0.5) with 3D rope sections
            rope_parameters={
                "rope_type": "default",
                "mrope_section": [2, 1, 1],
                "partial_rotary_factor": 0.5,
            },
            eos_token_id=stop,
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            _TINY_VISION,
            image_size=56,  # a 4x4 grid of position embeddings, interpolated to any image size
            patch_size=GLM_4_1V.patch_size,
            spatial_merge_size=GLM_4_1V.merge_size,
        ),
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
        eos_token_id=stop,
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )


_MODELS = {
    QWEN2_5_VL.name: _qwen2_5_vl_config,
    QWEN3_VL.name: _qwen3_vl_config,
    GLM_4_1V.name: _glm_4_1v_config,
}


def _reply_ids(
    tokenizer, rng, own: list[str], answers_by_task: list[list[str]], noise_ids: list[int]
) -> list[int]:
    """Token ids of one synthetic reply (without the end-of-turn token), drawn as `REPLY_MIX` says;
    the answer is one of `own` (the asked task's answers) with probability `ON_TASK_SHARE`, else one of
    a random task's."""
    kinds = list(REPLY_MIX)
    kind = kinds[rng.choice(len(kinds), p=[REPLY_MIX[k] for k in kinds])]
    if kind == "noise":
        return [int(i) for i in rng.choice(noise_ids, size=rng.integers(1, 7))]
    answers = own if rng.random() < ON_TASK_SHARE else answers_by_task[rng.integers(len(answers_by_task))]
    answer = f"{ANSWER_OPEN}{answers[rng.integers(len(answers))]}{ANSWER_CLOSE}"
    if kind == "formatted":
        words = "".join(rng.choice(_THINK_WORDS, size=rng.integers(1, 3)))
        answer = f"{THINK_OPEN}{words}{THINK_CLOSE}{answer}"
    return tokenizer(answer, add_special_tokens=False)["input_ids"]


def _warm_up_reply_prior(
    torch,
    model,
    tokenizer,
    seed: int,
    family: ModelFamily = QWEN2_5_VL,
    steps: int | None = None,
    progress: bool = False,
) -> dict:
    """Next-token training on chat turns: a task's question (with random tokens standing in for its
    images) and a reply drawn from `REPLY_MIX`. Returns what was done, for `ssl4rl_tiny.json`."""

    steps = REPLY_PRIOR_STEPS if steps is None else steps
    rng = np.random.default_rng([seed, 0x5052494F])  # "PRIO": apart from the weights' stream
    answers = {}
    for name in TASKS.names():
        task = TASKS.get(name)()
        answers[name] = task.answer_space() or [task.answer_example]
    answers_by_task = list(answers.values())
    pairs = [
        (task, tokenizer(text, add_special_tokens=False)["input_ids"]) for task, text in task_prompt_pairs()
    ]
    reply_ids = tokenizer.convert_tokens_to_ids(list(REPLY_TAGS) + reply_answer_tokens())
    word_ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w))[0] for w in _THINK_WORDS]
    noise_ids = sorted(set(reply_ids + word_ids))
    special = _special_tokens(family)
    plain_ids = [i for i in range(len(tokenizer)) if i >= len(special)]
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in special}
    # the chat template's text before and after a user turn's content (Qwen: system turn, role markers)
    marker = "\x00QUESTION\x00"
    templated = tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    head_text, turn_text = templated.split(marker)
    head = tokenizer(head_text, add_special_tokens=False)
    turn = tokenizer(turn_text, add_special_tokens=False)
    image_start, image_end = ids[family.image_start], ids[family.image_end]
    end_of_turn, padding = ids[_end_of_turn(family)], ids["<|endoftext|>"]

    def example() -> tuple[list[int], list[int]]:
        task, question = pairs[rng.integers(len(pairs))]
        prompt = list(head["input_ids"])
        for _ in range(rng.integers(1, 5)):
            prompt += [image_start, *rng.choice(plain_ids, size=rng.integers(1, 5)).tolist()]
            prompt.append(image_end)
        prompt += question + list(turn["input_ids"])
        reply = _reply_ids(tokenizer, rng, answers[task], answers_by_task, noise_ids) + [end_of_turn]
        return prompt + reply, [-100] * len(prompt) + reply

    batch_size, losses = 16, []
    threads = torch.get_num_threads()
    # a 0.26M-parameter model only loses time to thread hand-offs (many times over on busy cores)
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            optimizer = torch.optim.AdamW(model.parameters(), lr=WARMUP_LR, weight_decay=0.0)
            model.train()
            for _ in tqdm(range(steps), desc="reply-prior warm-up", unit="step", disable=not progress):
                rows = [example() for _ in range(batch_size)]
                width = max(len(r[0]) for r in rows)
                # right padding: positions of real tokens stay 0..n-1, padded labels are ignored
                input_ids = torch.tensor([r[0] + [padding] * (width - len(r[0])) for r in rows])
                labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
                mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
                loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            model.eval()
    finally:
        torch.set_num_threads(threads)
    return {
        "steps": steps,
        "batch_size": batch_size,
        "mix": dict(REPLY_MIX),
        "on_task_share": ON_TASK_SHARE,
        "loss_first": round(sum(losses[:10]) / 10, 4),
        "loss_last": round(sum(losses[-10:]) / 10, 4),
    }
