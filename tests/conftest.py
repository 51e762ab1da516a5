"""Shared fixtures: real photographs (scikit-image's bundled data) and adversarial images."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ssl4rl.images import LoadedImage, decode_image

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
MMBENCH_SAMPLE = os.path.abspath(os.path.join(SHARED_DATA, "mmbench_dev_en_sample.tsv"))


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), "RGB")


def adversarial_rgb_images() -> list[Image.Image]:
    """Sizes and contents that break naive implementations: minimum size, primes, extreme aspect."""
    sizes = [(28, 28), (29, 31), (31, 29), (57, 113), (640, 28), (28, 640), (101, 100), (997, 33), (256, 256)]
    images = [_noise(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    gradient = np.tile(np.arange(200, dtype=np.uint8), (150, 1))
    images.append(Image.fromarray(np.stack([gradient, gradient, 255 - gradient], -1), "RGB"))
    return images


@pytest.fixture(scope="session")
def photo_paths() -> list[str]:
    from ssl4rl.photos import photo_paths as paths

    return paths()


@pytest.fixture(scope="session")
def photos(photo_paths) -> list[LoadedImage]:
    return [decode_image(p, key=os.path.basename(p)) for p in photo_paths]


@pytest.fixture(scope="session")
def adversarial_images() -> list[LoadedImage]:
    return [decode_image(im, key=f"adv{i}") for i, im in enumerate(adversarial_rgb_images())]


@pytest.fixture(scope="session")
def mmbench_sample() -> str:
    if not os.path.exists(MMBENCH_SAMPLE):
        pytest.skip("shared MMBench excerpt not found beside the checkout")
    return MMBENCH_SAMPLE


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """The tiny offline Qwen2.5-VL (seed 0), built once per session; tests only read it."""
    pytest.importorskip("torchvision", reason="the Qwen2.5-VL processor needs torchvision")
    from ssl4rl.tiny import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(str(tmp_path_factory.mktemp("tiny") / "qwen"), seed=0)


@pytest.fixture(scope="session")
def tiny_family_model(tmp_path_factory, tiny_model):
    """`tiny_family_model(name)`: the tiny offline model (seed 0) of a registered model family, built once per
    session (Qwen2.5-VL is `tiny_model`)."""
    from ssl4rl.tiny import build_tiny_model

    made: dict[str, str] = {"qwen2.5-vl": tiny_model}

    def model(family: str) -> str:
        if family not in made:
            made[family] = build_tiny_model(
                str(tmp_path_factory.mktemp("tiny") / family), seed=0, family=family
            )
        return made[family]

    return model


@pytest.fixture(scope="session")
def small_photos(tmp_path_factory, photo_paths):
    """`small_photos(side, count)`: a folder of the first `count` real photographs as PNGs, longest side
    `side` px, written once per session per (side, count): the input of builds in tests."""
    made: dict[tuple[int, int | None], str] = {}

    def folder(side: int = 192, count: int | None = 8) -> str:
        if (side, count) not in made:
            root = tmp_path_factory.mktemp(f"photos{side}")
            for path in photo_paths[:count]:
                image = Image.open(path).convert("RGB")
                image.thumbnail((side, side))
                image.save(root / (os.path.splitext(os.path.basename(path))[0] + ".png"))
            made[(side, count)] = str(root)
        return made[(side, count)]

    return folder


@pytest.fixture(scope="session")
def photo_folder(small_photos) -> str:
    """8 real photographs as PNGs, longest side 192 px."""
    return small_photos(192, 8)


@pytest.fixture(scope="session")
def make_rl_parquet():
    """`make_rl_parquet(root, train_photos, tasks, val_photos=None)`: build each (task, knobs) of `tasks` on a
    train and a validation split and preprocess them into ROOT/verl (train.parquet, val.parquet). Validation
    rows come from `val_photos` (default the same photographs, with the validation split's seeds)."""
    from ssl4rl.builder import BuildConfig, build
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    def make(root, train_photos: str, tasks, val_photos: str | None = None) -> str:
        built: dict[str, list[str]] = {"train": [], "validation": []}
        for i, (task, knobs) in enumerate(tasks):
            for split, photos in (("train", train_photos), ("validation", val_photos or train_photos)):
                out = os.path.join(str(root), f"{i}-{task}-{split}")
                build(
                    BuildConfig(
                        task=task,
                        source="folder",
                        input=photos,
                        out=out,
                        knobs=dict(knobs),
                        split=split,
                        progress=False,
                    )
                )
                built[split].append(out)
        out = os.path.join(str(root), "verl")
        preprocess(
            PreprocessConfig(
                out=out,
                train=built["train"],
                val=built["validation"],
                allow_shared_images=val_photos is None,  # one set of photographs, two splits' samples
                progress=False,
            )
        )
        return out

    return make
