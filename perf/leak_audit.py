"""Can a model answer from content-free features? A cross-validated classifier on sizes, formats and the
JPEG block-grid phase of every view, per task, on JPEG sources and on a PNG control.

Run by hand (not a test; needs scikit-learn: `pip install -e ".[audit]"`):
    .venv/bin/python perf/leak_audit.py [--sources 300] [--tasks jigsaw:grid=2 rotation ...]

It makes MMBench-like JPEG photos (random crops of scikit-image's photographs, odd sizes 300-640 px,
quality 70-95, 4:2:0 chroma) and the same pictures as PNG (not JPEG-coded here), builds each task from
both folders with `ssl4rl build`'s code, and describes every stored view by what carries no content: its
encoded format, its width and height, and the phase of its 8 px luma and 16 px chroma block grid (where
its block edges lie, read from the pixels). A random forest predicts the answer from these features with 5-fold cross-validation; at chance, no shortcut of
this kind exists. The answer is predicted per sample, except for jigsaw (each shown patch's original
position, from that patch alone) and flip_patch (the mirrored patch's number, from the phase of every
patch region of the one view).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score

from ssl4rl.builder import BuildConfig, build
from ssl4rl.photos import photo_paths

DEFAULT_TASKS = [
    "jigsaw:grid=2",
    "jigsaw:grid=3",
    "jigsaw:grid=2x3",
    "flip_patch:grid=2",
    "single_rotation",
    "single_rotation:square=false",
    "rotation",
    "inpaint",
    "position",
]
FORMATS = {b"\xff\xd8": 0, b"\x89P": 1, b"RI": 2}


def make_sources(folder_jpeg: str, folder_png: str, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    bases = [Image.open(p).convert("RGB") for p in photo_paths()]
    for i in range(count):
        base = bases[i % len(bases)]
        side = int(rng.integers(300, 641))
        image = base.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        w, h = image.size
        cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = image.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(70, 96)), subsampling="4:2:0")
        with open(os.path.join(folder_jpeg, f"{i:05d}.jpg"), "wb") as f:
            f.write(buffer.getvalue())
        image.save(os.path.join(folder_png, f"{i:05d}.png"))  # the control: the same picture, never a JPEG


def grid_phase(image: Image.Image) -> np.ndarray:
    """Where the view's block edges lie: the phase (0-7) of the 8 px luma grid along x and y and of the
    16 px chroma grid (0-15), each the phase whose pixel-to-pixel jumps are largest on average. Only
    the phase, never how strong the edges are: their strength follows the content (a flat sky shows its
    blocks, a texture hides them), which a model may use anyway."""
    ycc = np.asarray(image.convert("YCbCr")).astype(np.float64)
    phases = []
    for channels, period in (((0,), 8), ((1, 2), 16)):
        for axis in (1, 0):
            jumps = np.abs(np.diff(ycc[..., list(channels)], axis=axis)).mean(axis=(1 - axis, 2))
            scores = [jumps[(p - 1) % period :: period].mean() for p in range(period)]
            phases.append(int(np.argmax(scores)))
    return np.array(phases)


def view_features(data: bytes) -> tuple[np.ndarray, Image.Image]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    head = [FORMATS.get(data[:2], 3), image.width, image.height]
    return np.concatenate([head, grid_phase(image)]), image


def samples(task: str, rows: list[dict]) -> tuple[np.ndarray, list]:
    features, labels = [], []
    for row in rows:
        views = [view_features(cell["bytes"]) for cell in row["images"]]
        label = json.loads(row["label"])
        if task == "jigsaw":
            for shown, original in enumerate(label["permutation"]):
                features.append(views[shown][0])
                labels.append(original)
        elif task == "flip_patch":
            image = views[0][1]
            patch_w, patch_h = label["patch_size"]
            regions = [
                grid_phase(image.crop((c * patch_w, r * patch_h, (c + 1) * patch_w, (r + 1) * patch_h)))
                for r in range(label["rows"])
                for c in range(label["cols"])
            ]
            features.append(np.concatenate([views[0][0], *regions]))
            labels.append(label["patch"])
        else:
            features.append(np.concatenate([v[0] for v in views]))
            labels.append(row["answer"])
    return np.array(features), labels


def audit(task_spec: str, folder: str, out: str) -> tuple[int, float, float]:
    name, _, knob_text = task_spec.partition(":")
    knobs = {}
    for item in filter(None, knob_text.split(",")):
        key, value = item.split("=")
        knobs[key] = {"true": True, "false": False}.get(value, value)
    build(
        BuildConfig(task=name, source="folder", input=folder, out=out, knobs=knobs, workers=2, progress=False)
    )
    rows = pq.read_table(os.path.join(out, "data")).to_pylist()
    x, y = samples(name, rows)
    counts = Counter(y)
    folds = min(5, min(counts.values()))
    forest = RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=2)
    accuracy = cross_val_score(forest, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=0)).mean()
    return len(y), max(counts.values()) / len(y), float(accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=300, help="pictures per format")
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS, help="task[:knob=value,...]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        jpeg, png = os.path.join(tmp, "jpeg"), os.path.join(tmp, "png")
        os.makedirs(jpeg)
        os.makedirs(png)
        make_sources(jpeg, png, args.sources)
        print(
            f"{args.sources} sources per format; accuracy of a random forest (5-fold CV) on content-free features"
        )
        print(f"{'task':32} {'samples':>9} {'chance':>7} {'JPEG':>6} {'PNG':>6}")
        for spec in args.tasks:
            n, chance, on_jpeg = audit(spec, jpeg, os.path.join(tmp, "out-jpeg", spec.replace(":", "_")))
            _, _, on_png = audit(spec, png, os.path.join(tmp, "out-png", spec.replace(":", "_")))
            print(f"{spec:32} {n:9d} {chance:7.3f} {on_jpeg:6.3f} {on_png:6.3f}", flush=True)


if __name__ == "__main__":
    main()
