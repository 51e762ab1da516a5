"""Token budget math agrees with transformers' Qwen2-VL resize rule and fits what it claims to fit."""

from hypothesis import given, settings
from hypothesis import strategies as st

from ssl4rl.budget import FACTOR, TokenBudget, scaled_sizes

sides = st.integers(min_value=28, max_value=4000)


@settings(max_examples=300, deadline=None)
@given(sides, sides, st.sampled_from([(3136, 12845056), (35840, 12845056), (3136, 200704), (784, 50176)]))
def test_matches_transformers_smart_resize(width, height, limits):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    min_pixels, max_pixels = limits
    h_bar, w_bar = smart_resize(height, width, factor=FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
    budget = TokenBudget(min_pixels=min_pixels, max_pixels=max_pixels, fetch_resize=False)
    assert budget.image_pad_tokens(width, height) == (h_bar // FACTOR) * (w_bar // FACTOR)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(28, 1500),
    st.integers(28, 1500),
    st.sampled_from([(784, 3136), (3136, 12845056), (784, 50176)]),
)
def test_matches_verls_two_resizes(width, height, limits):
    """verl: qwen_vl_utils.fetch_image (its default limits), then the processor's smart_resize."""
    from PIL import Image
    from qwen_vl_utils import fetch_image
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    min_pixels, max_pixels = limits
    fetched = fetch_image({"image": Image.new("RGB", (width, height))})
    h_bar, w_bar = smart_resize(
        fetched.height, fetched.width, factor=FACTOR, min_pixels=min_pixels, max_pixels=max_pixels
    )
    budget = TokenBudget(min_pixels=min_pixels, max_pixels=max_pixels)
    assert budget.image_pad_tokens(width, height) == (h_bar // FACTOR) * (w_bar // FACTOR)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(sides, sides), min_size=1, max_size=9), st.integers(min_value=50, max_value=3000))
def test_fit_scale_fits_or_says_impossible(sizes, limit):
    budget = TokenBudget(min_pixels=3136, max_pixels=12845056)
    scale = budget.fit_scale(sizes, limit)
    if scale is None:
        smallest = min(min(w, h) for w, h in sizes)
        assert budget.image_tokens(scaled_sizes(sizes, 28 / smallest)) > limit or smallest <= 28
    else:
        assert 0 < scale <= 1
        assert budget.image_tokens(scaled_sizes(sizes, scale)) <= limit
        if scale == 1.0:
            assert budget.image_tokens(sizes) <= limit
