"""Each model family's token budget agrees with that family's real image processor, on many image sizes and
aspect ratios, directly (TRL) and through verl's two resizes (qwen_vl_utils.fetch_image, then the processor)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssl4rl.budget import TokenBudget, scaled_sizes
from ssl4rl.errors import UserError
from ssl4rl.model_families import (
    GLM_4_1V,
    MODEL_FAMILIES,
    QWEN2_5_VL,
    QWEN3_VL,
    family_of_model_name,
    get_family,
    mismatch_reason,
    resolve_family,
)

pytest.importorskip("torchvision")  # the fast image processors of transformers 5

FAMILIES = [QWEN2_5_VL, QWEN3_VL, GLM_4_1V]
sides = st.integers(min_value=28, max_value=4000)
# aspect ratios up to 1:40 (a 3x1 jigsaw strip of a panorama) and sizes from the minimum to 4k
shapes = st.tuples(st.integers(28, 4000), st.floats(1 / 40, 40)).map(
    lambda t: (t[0], max(28, min(8000, round(t[0] * t[1]))))
)


def image_processor(family, min_pixels=None, max_pixels=None):
    """The family's real image processor class, as its released checkpoints configure it."""
    from transformers import Glm4vImageProcessor, Qwen2VLImageProcessor

    size = {"shortest_edge": min_pixels or family.min_pixels, "longest_edge": max_pixels or family.max_pixels}
    if family is GLM_4_1V:
        return Glm4vImageProcessor(size=size)
    return Qwen2VLImageProcessor(size=size, patch_size=family.patch_size, merge_size=family.merge_size)


PROCESSORS = {f.name: image_processor(f) for f in FAMILIES}
SMALL_LIMITS = {f.name: image_processor(f, 28 * 28, 112 * 112) for f in FAMILIES}


def processor_tokens(processor, width: int, height: int) -> int:
    """Image tokens as the processor itself counts them (what vLLM asks it for, without pixels)."""
    patches = processor.get_number_of_image_patches(height, width, {})
    return patches // processor.merge_size**2


def test_registry_has_the_three_families_with_their_geometry():
    assert MODEL_FAMILIES.names() == ["glm-4.1v", "qwen2.5-vl", "qwen3-vl"]
    assert (QWEN2_5_VL.factor, QWEN3_VL.factor, GLM_4_1V.factor) == (28, 32, 28)
    for family in FAMILIES:
        processor = PROCESSORS[family.name]
        assert (processor.patch_size, processor.merge_size) == (family.patch_size, family.merge_size)
    with pytest.raises(UserError, match="Did you mean 'qwen3-vl'"):
        get_family("qwen3vl")


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@settings(max_examples=250, deadline=None)
@given(shape=shapes)
def test_budget_counts_what_the_processor_counts(family, shape):
    width, height = shape
    budget = TokenBudget.for_family(family, fetch_resize=False)
    assert budget.image_pad_tokens(width, height) == processor_tokens(PROCESSORS[family.name], width, height)
    small = SMALL_LIMITS[family.name]
    budget = TokenBudget.for_family(family, 28 * 28, 112 * 112, fetch_resize=False)
    assert budget.image_pad_tokens(width, height) == processor_tokens(small, width, height)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@pytest.mark.parametrize("size", [(28, 28), (29, 31), (57, 113), (640, 28), (997, 33), (300, 200), (33, 450)])
def test_budget_counts_the_tokens_of_real_pixels(family, size):
    """The grid the processor returns for real pixels, and the placeholder count it is expanded to."""
    from PIL import Image

    processor = PROCESSORS[family.name]
    grid = processor(images=[Image.new("RGB", size)], return_tensors="pt")["image_grid_thw"][0]
    real = int(grid[1] * grid[2]) // family.merge_size**2  # t is 1 for a still image
    assert int(grid[0]) == 1
    assert TokenBudget.for_family(family, fetch_resize=False).image_pad_tokens(*size) == real


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@settings(max_examples=120, deadline=None)
@given(shape=st.tuples(st.integers(28, 1500), st.integers(28, 1500)))
def test_budget_models_verls_two_resizes(family, shape):
    """verl: qwen_vl_utils.fetch_image(image_patch_size=processor.patch_size), then the processor's resize."""
    from PIL import Image
    from qwen_vl_utils import fetch_image

    width, height = shape
    processor = SMALL_LIMITS[family.name]
    fetched = fetch_image({"image": Image.new("RGB", (width, height))}, image_patch_size=family.patch_size)
    budget = TokenBudget.for_family(family, 28 * 28, 112 * 112)
    assert budget.image_pad_tokens(width, height) == processor_tokens(processor, *fetched.size)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.tuples(sides, sides), min_size=1, max_size=9), limit=st.integers(50, 3000))
def test_fit_scale_fits_each_family(family, sizes, limit):
    budget = TokenBudget.for_family(family)
    scale = budget.fit_scale(sizes, limit)
    if scale is not None:
        assert budget.image_tokens(scaled_sizes(sizes, scale)) <= limit


def test_qwen3_tokens_cover_32_px_and_glm_counts_an_image_as_two_frames():
    # 896x896: 32x32 = 1024 Qwen2.5-VL tokens, 28x28 = 784 Qwen3-VL tokens
    assert TokenBudget.for_family(QWEN2_5_VL, fetch_resize=False).image_pad_tokens(896, 896) == 1024
    assert TokenBudget.for_family(QWEN3_VL, fetch_resize=False).image_pad_tokens(896, 896) == 784
    # GLM's limit bounds 2 x h x w: 9,633,792 / 2 pixels at most, 6144 tokens
    assert TokenBudget.for_family(GLM_4_1V, fetch_resize=False).image_pad_tokens(4000, 4000) <= 6144


def test_family_resolution_and_mismatch_reason(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    assert resolve_family(str(tmp_path), None) is QWEN3_VL
    with pytest.raises(UserError, match="is a Qwen3-VL model"):
        resolve_family(str(tmp_path), "glm-4.1v")
    assert resolve_family("Qwen/Qwen3-VL-8B-Instruct", None) is QWEN3_VL
    assert resolve_family("zai-org/GLM-4.1V-9B-Thinking", None) is GLM_4_1V
    assert resolve_family("someone/my-vlm", None) is QWEN2_5_VL  # the default
    assert family_of_model_name("Qwen/Qwen2.5-VL-3B-Instruct") is QWEN2_5_VL
    assert mismatch_reason("qwen2.5-vl", QWEN2_5_VL) is None
    reason = mismatch_reason("qwen2.5-vl", QWEN3_VL)
    assert "--model-family qwen3-vl" in reason and "\n" not in reason
