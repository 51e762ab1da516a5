"""decode_image: every input mode comes out as correct 8-bit RGB, bad inputs become SkipSample."""

import io

import numpy as np
import pytest
from PIL import Image

from ssl4rl.images import Encoding, SkipSample, decode_image, encode_image


def _bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_rgb_jpeg_passes_through_unchanged():
    data = _bytes(Image.new("RGB", (64, 48), (10, 200, 30)), "JPEG")
    loaded = decode_image(data)
    assert loaded.raw == data and loaded.image.size == (64, 48)


def test_sixteen_bit_is_scaled_not_clipped():
    array = np.full((40, 40), 65535, dtype=np.uint16)
    array[:20] = 32896  # 128 * 257
    loaded = decode_image(_bytes(Image.fromarray(array)))
    pixels = np.asarray(loaded.image)
    assert pixels[0, 0].tolist() == [128, 128, 128] and pixels[-1, -1].tolist() == [255, 255, 255]
    assert loaded.raw is None  # converted images are re-encoded, never passed through


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    pixels = np.asarray(decode_image(_bytes(rgba)).image)
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[5, 5].tolist() == [255, 255, 255]
    la = Image.new("LA", (32, 32), (0, 0))
    assert np.asarray(decode_image(_bytes(la)).image)[1, 1].tolist() == [255, 255, 255]


def test_palette_and_cmyk_keep_their_colours():
    palette = Image.new("RGB", (30, 30), (12, 34, 56)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert np.asarray(decode_image(_bytes(palette)).image)[3, 3].tolist() == [12, 34, 56]
    cmyk = Image.new("CMYK", (30, 30), (0, 255, 255, 0))  # pure red
    red = np.asarray(decode_image(_bytes(cmyk, "JPEG", quality=100)).image)[3, 3]
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 30), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 30, 30))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 270-degree turn
    loaded = decode_image(_bytes(image, "JPEG", exif=exif.tobytes(), quality=100))
    assert loaded.image.size == (30, 60) and loaded.raw is None
    assert np.asarray(loaded.image)[5, 15].mean() > 200  # white half now on top


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"not an image at all", "corrupt"),
        (_bytes(Image.new("RGB", (200, 200), (1, 2, 3)), "JPEG")[:300], "corrupt"),
        (_bytes(Image.new("RGB", (27, 400))), "too_small"),
        (_bytes(Image.new("1", (10, 10))), "too_small"),
    ],
)
def test_bad_inputs_are_skipped_with_a_reason(data, reason):
    with pytest.raises(SkipSample) as info:
        decode_image(data)
    assert info.value.reason == reason


def test_decompression_bomb_is_rejected_before_decoding():
    with pytest.raises(SkipSample) as info:
        decode_image(_bytes(Image.new("L", (2000, 1000))), max_pixels=1_000_000)
    assert info.value.reason == "too_large"


def test_a_bomb_above_pils_own_limit_is_too_large_not_corrupt():
    # PIL refuses to open more than twice Image.MAX_IMAGE_PIXELS itself (DecompressionBombError) before our
    # own check runs: still a decompression bomb, counted as too_large as documented.
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 16
    bomb = _bytes(Image.new("1", (side, side)))  # a few hundred KB of PNG for ~180 M pixels
    with pytest.raises(SkipSample) as info:
        decode_image(bomb, max_pixels=10**12)
    assert info.value.reason == "too_large"


def test_skip_details_carry_no_memory_addresses():
    with pytest.raises(SkipSample) as info:
        decode_image(b"not an image at all")
    assert " at 0x" not in info.value.detail and " at 0x" not in str(info.value)
    assert "cannot identify image file" in info.value.detail


def test_equal_pixels_have_equal_digest_across_containers():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    assert (
        decode_image(_bytes(image, "PNG")).digest == decode_image(_bytes(image, "WEBP", lossless=True)).digest
    )


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_lossless_encodings_round_trip(fmt):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (33, 47, 3), dtype=np.uint8))
    decoded = Image.open(io.BytesIO(encode_image(image, Encoding(format=fmt)))).convert("RGB")
    assert np.array_equal(np.asarray(decoded), np.asarray(image))
