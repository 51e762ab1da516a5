"""A tiny random Qwen2.5-VL (about 0.2M parameters) built offline, for tests and the demo.

It has the real architecture, processor and chat template of Qwen2.5-VL, so everything that
loads `Qwen/Qwen2.5-VL-3B-Instruct` through `AutoProcessor` / `AutoModelForImageTextToText` loads
this directory the same way; only the sizes are tiny and the weights random. Images are kept
cheap: the image processor resizes every image to between `TINY_MIN_PIXELS` (28x28, 1 image
token) and `TINY_MAX_PIXELS` (56x56, 4 image tokens), so a 4-patch jigsaw prompt costs at most
16 image tokens plus markers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from .answer import FORMAT_INSTRUCTION
from .errors import require

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
VOCAB_SIZE = 512

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


def build_tiny_qwen2_5_vl(out_dir: str, seed: int = 0) -> str:
    """Write a tiny random Qwen2.5-VL (model, tokenizer, processor, chat template) to `out_dir`.

    Deterministic: the same seed gives byte-identical weights. The directory is written to a
    temporary sibling first and moved into place, so a crash never leaves a half-written model.
    Returns `out_dir`.
    """
    torch = require("torch", "torch", "building the tiny Qwen2.5-VL")
    transformers = require("transformers", "torch", "building the tiny Qwen2.5-VL")

    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tiny-qwen-", dir=parent)
    try:
        tokenizer = _build_tokenizer(transformers)
        processor = _build_processor(transformers, tokenizer)
        model = _build_model(torch, transformers, tokenizer, seed)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        # generation defaults: sampling stays on so GRPO groups differ; the trainer overrides anyway
        model.generation_config.save_pretrained(tmp)
        with open(os.path.join(tmp, "ssl4rl_tiny.json"), "w") as f:
            json.dump(
                {
                    "seed": seed,
                    "min_pixels": TINY_MIN_PIXELS,
                    "max_pixels": TINY_MAX_PIXELS,
                    "parameters": sum(p.numel() for p in model.parameters()),
                },
                f,
                indent=2,
            )
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _build_tokenizer(transformers):
    tokenizers = require("tokenizers", "torch", "building the tiny tokenizer")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
        padding_side="left",
    )
    # attribute names Qwen2.5-VL's processor looks up on its tokenizer
    tokenizer.image_token = "<|image_pad|>"
    tokenizer.video_token = "<|video_pad|>"
    return tokenizer


def _build_processor(transformers, tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(size)),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=dict(size)),
        chat_template=CHAT_TEMPLATE,
    )


def _build_model(torch, transformers, tokenizer, seed: int):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            vocab_size=len(tokenizer),
            max_position_embeddings=4096,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            bos_token_id=None,  # like Qwen's tokenizer: no BOS token is prepended
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
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
    # Seed a private generator stream: the global RNG state of the caller is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.update(
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
    )
    return model.eval()
