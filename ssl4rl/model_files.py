"""Model directories that transformers 4.x loads too: the legacy files beside the ones transformers 5.x writes.

transformers 5.x `save_pretrained` writes `processor_config.json` (image/video processor configs nested
inside), `chat_template.jinja`, a `tokenizer_config.json` naming the 5.x-only class `TokenizersBackend`, and a
`config.json` whose text rope settings live only in `text_config.rope_parameters`. Evaluation environments
(VLMEvalKit pins no transformers; users run 4.x) need:

  all 4.x (4.49 - 4.57)  tokenizer_config.json: a tokenizer class 4.x knows (AutoTokenizer raises otherwise)
                         config.json: text rope in `rope_scaling` (every forward raises TypeError otherwise)
  4.49 - 4.55            preprocessor_config.json (AutoProcessor raises OSError otherwise), and
                         processor_config.json without the nested image/video dicts (TypeError otherwise)
  4.49 - 4.53            min_pixels/max_pixels inside preprocessor_config.json (else *silently* the default
                         3136..1003520 pixel range: other image-token counts, no error)
  4.49 - 4.51            a flat config.json (the Hub layout); a nested text_config crashes model init

`write_legacy_processor_files(model_dir)` derives all of it from the 5.x files with json/os only; transformers
5.x loads the result to identical processor outputs, logits and generations (tests/test_merge.py checks both
lines on a merged checkpoint).
"""

from __future__ import annotations

import copy
import json
import os

from .fileio import atomic_path

# tokenizer classes that exist only in transformers 5.x -> the 4.x class that reads tokenizer.json as is.
# (Not Qwen2TokenizerFast: in 5.x that name means Qwen2Tokenizer, which rebuilds the pre-tokenizer from
# Qwen's defaults instead of taking tokenizer.json's; 5.x treats PreTrainedTokenizerFast as TokenizersBackend.)
_V5_ONLY_TOKENIZER_CLASSES = {
    "TokenizersBackend": "PreTrainedTokenizerFast",
    "PythonBackend": "PreTrainedTokenizerFast",
}
_NESTED_PROCESSOR_KEYS = ("image_processor", "video_processor")


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path, data):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def _version(text: str) -> tuple[int, int]:
    major, minor = str(text).split(".")[:2]
    return int(major), int(minor)


def _legacy_rope(text: dict) -> tuple[dict | None, float | None]:
    """(rope_scaling, rope_theta) for 4.x from 5.x `rope_parameters`: 4.x Qwen2.5-VL attention indexes
    rope_scaling['mrope_section'] and reads text_config.rope_theta. 5.x reads `rope_scaling` *instead of*
    `rope_parameters` when both are present (taking rope_theta from text_config.rope_theta), so this keeps
    every other key and 5.x loads the same rope. rope_theta stays out of rope_scaling: 4.x warns on it."""
    rope = text.get("rope_parameters") or text.get("rope_scaling")
    if not isinstance(rope, dict) or "mrope_section" not in rope:
        return None, None
    theta = rope.get("rope_theta", text.get("rope_theta"))
    rope = {k: v for k, v in rope.items() if k != "rope_theta"}
    rope.setdefault("type", "mrope")  # as on the Hub; 4.x maps type 'mrope' to rope_type 'default'
    rope.setdefault("rope_type", "default")
    return rope, theta


# Families whose Hub config.json is flat and whose 4.49 - 4.51 classes crash on a nested text_config. Newer
# families (Qwen3-VL, GLM-4.1V) are nested on the Hub and in every transformers that has them: flattening their
# config would make 5.x build a default-sized text model (tens of GB) and drop every trained text weight.
FLAT_LAYOUT_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")


def write_legacy_processor_files(model_dir: str, oldest: str = "4.49") -> list[str]:
    """Add / patch, beside transformers 5.x's files in `model_dir`, what transformers >= `oldest` (4.x)
    needs to load the processor, tokenizer, chat template and model. Returns the file names written or
    changed; idempotent; never deletes a file.

    Always (any 4.x):
      tokenizer_config.json           tokenizer_class TokenizersBackend -> PreTrainedTokenizerFast
      config.json                     text_config.rope_scaling + rope_theta, torch_dtype (= dtype)
      preprocessor_config.json        the nested image processor dict + processor_class + min_pixels /
                                      max_pixels (= size.shortest_edge / longest_edge), as on the Hub
      video_preprocessor_config.json  the nested video processor dict + processor_class
      chat_template.json              {"chat_template": chat_template.jinja} (the Hub's file; every 4.x
                                      >= 4.49 also reads the .jinja, so this one is for other tools)
    oldest < 4.56:
      processor_config.json           drop the nested image_processor / video_processor dicts (4.x < 4.56
                                      passes them to the processor's __init__ and raises TypeError);
                                      5.x then reads the two files above, to the same processor
    oldest < 4.52, Qwen2-VL / Qwen2.5-VL only (FLAT_LAYOUT_MODEL_TYPES):
      config.json                     flat (Hub) layout: text_config's fields at the top level and no
                                      `text_config` (4.49 - 4.51 crash on a nested one); 5.x / 4.52+ read
                                      it too (5.x's only difference: text_config.dtype is set)
    """
    oldest_v = _version(oldest)
    changed = []
    proc_path = os.path.join(model_dir, "processor_config.json")
    proc = _read_json(proc_path) if os.path.isfile(proc_path) else {}
    processor_class = proc.get("processor_class")

    def put(name, data):
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path) or _read_json(path) != data:
            _write_json(path, data)
            changed.append(name)

    # 1. image processor -> preprocessor_config.json
    image = proc.get("image_processor")
    if isinstance(image, dict):
        legacy = dict(image)
        if processor_class:
            legacy.setdefault("processor_class", processor_class)
        ip_type = legacy.get("image_processor_type", "")
        if ip_type.endswith("Fast"):  # the slow name resolves on every 4.x; use_fast still picks fast
            legacy["image_processor_type"] = ip_type[: -len("Fast")]
        size = legacy.get("size") or {}
        # 4.49 - 4.53 take the pixel range from min_pixels/max_pixels only (defaults otherwise); later
        # 4.x let them override `size`: both say the same.
        if "shortest_edge" in size and "longest_edge" in size:
            legacy["min_pixels"] = size["shortest_edge"]
            legacy["max_pixels"] = size["longest_edge"]
        put("preprocessor_config.json", legacy)

    # 2. video processor -> video_preprocessor_config.json
    video = proc.get("video_processor")
    if isinstance(video, dict):
        legacy = dict(video)
        if processor_class:
            legacy.setdefault("processor_class", processor_class)
        put("video_preprocessor_config.json", legacy)

    # 3. processor_config.json without nested dicts, for 4.x < 4.56 (after 1./2. wrote them out)
    if oldest_v < (4, 56) and any(k in proc for k in _NESTED_PROCESSOR_KEYS):
        put("processor_config.json", {k: v for k, v in proc.items() if k not in _NESTED_PROCESSOR_KEYS})

    # 4. chat template -> chat_template.json
    jinja_path = os.path.join(model_dir, "chat_template.jinja")
    template = None
    if os.path.isfile(jinja_path):
        with open(jinja_path, encoding="utf-8") as f:
            template = f.read()
    elif isinstance(proc.get("chat_template"), str):
        template = proc["chat_template"]
    if template is not None:
        put("chat_template.json", {"chat_template": template})

    # 5. tokenizer_config.json: a tokenizer class 4.x knows
    tok_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.isfile(tok_path):
        tok = _read_json(tok_path)
        if tok.get("tokenizer_class") in _V5_ONLY_TOKENIZER_CLASSES:
            put(
                "tokenizer_config.json",
                {**tok, "tokenizer_class": _V5_ONLY_TOKENIZER_CLASSES[tok["tokenizer_class"]]},
            )

    # 6. config.json: rope_scaling, torch_dtype, and for 4.49 - 4.51 the flat layout
    cfg_path = os.path.join(model_dir, "config.json")
    if os.path.isfile(cfg_path):
        cfg = _read_json(cfg_path)
        new = copy.deepcopy(cfg)
        dtype = new.get("dtype") or new.get("torch_dtype")
        if dtype is not None:  # 4.x < 4.56 reads torch_dtype, 4.56+ and 5.x dtype
            new.setdefault("torch_dtype", dtype)
            new.setdefault("dtype", dtype)
        text = new.get("text_config")
        if isinstance(text, dict):
            rope, theta = _legacy_rope(text)
            if rope is not None:
                text["rope_scaling"] = rope
                if theta is not None:
                    text["rope_theta"] = theta
            if oldest_v < (4, 52) and new.get("model_type") in FLAT_LAYOUT_MODEL_TYPES:
                del new["text_config"]
                for key, value in text.items():
                    if key not in (
                        "model_type",
                        "dtype",
                        "torch_dtype",
                        "architectures",
                        "transformers_version",
                    ):
                        new.setdefault(key, value)  # the composite config's own token ids / flags win
        if new != cfg:
            _write_json(cfg_path, new)
            changed.append("config.json")
    return changed


# --------------------------------------------------------------------------------------------------
# Proof harness (runs the same dump script under transformers 5.x and each 4.x found).
