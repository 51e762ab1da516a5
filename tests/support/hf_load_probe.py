"""Load a model directory the way VLMEvalKit's Qwen2VLChat does, with whichever transformers is importable
(PYTHONPATH picks a 4.x install), and print what a comparison needs as one JSON line.

    python tests/support/hf_load_probe.py MODEL_DIR
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import torch
import transformers
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration


def main(model_dir: str) -> None:
    warnings.simplefilter("ignore")
    transformers.logging.set_verbosity_error()
    dtype = {"dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype": torch.float32}
    processor = AutoProcessor.from_pretrained(model_dir, use_fast=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, **dtype).eval()
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)) for size in ((60, 80, 3), (301, 157, 3))
    ]
    content = [{"type": "image", "image": image} for image in images]
    content.append({"type": "text", "text": "The second image is the first image rotated. How many degrees?"})
    text = processor.apply_chat_template(
        [[{"role": "user", "content": content}]], tokenize=False, add_generation_prompt=True
    )
    text = text[0] if isinstance(text, list) else text
    inputs = processor(text=[text], images=images, padding=True, return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(
            **inputs, max_new_tokens=8, do_sample=False, top_p=None, top_k=None, temperature=None
        )
    print(
        "PROBE "
        + json.dumps(
            {
                "version": transformers.__version__,
                "tokenizer_ids": tokenizer("<answer>90</answer> top-left")["input_ids"],
                "input_ids": inputs["input_ids"][0].tolist(),
                "image_grid_thw": inputs["image_grid_thw"].tolist(),
                "pixel_sum": float(inputs["pixel_values"].double().sum()),
                "generated": generated[0, inputs["input_ids"].shape[1] :].tolist(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
