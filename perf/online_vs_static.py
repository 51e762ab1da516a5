"""Items per second: on-the-fly SSL data (`OnlineRLHFDataset`) vs the static parquet read by verl's `RLHFDataset`.

Both are read through verl 0.9.1's own `__getitem__` (the raw rows verl's dataloader hands to the rollout),
in one process, with a Qwen2.5-VL processor at Qwen2.5-VL-3B's pixel limits and the paper's 1024-token
prompt budget. The static side also reports what it paid up front (`ssl4rl build` + `ssl4rl preprocess`).

    python perf/online_vs_static.py                  # 9 bundled photos x 8 copies, all four tasks
    python perf/online_vs_static.py --copies 16 --tasks rotation,jigsaw --workers 2

`+decode` also decodes every image of the row (what the rollout does next): static rows hold lazily opened
PNG/JPEG files, online rows mostly hold decoded views already. The online dataset reads epochs 2.. too, so
its passes draw new samples while the static passes re-read the same rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

QWEN25VL_MIN_PIXELS, QWEN25VL_MAX_PIXELS = 3136, 12845056


def make_photos(root: str, copies: int, max_side: int) -> str:
    from PIL import Image

    from ssl4rl.photos import photo_paths

    folder = os.path.join(root, "photos")
    os.makedirs(folder, exist_ok=True)
    for path in photo_paths():
        image = Image.open(path).convert("RGB")
        if max_side:
            image.thumbnail((max_side, max_side))
        name = os.path.splitext(os.path.basename(path))[0]
        for k in range(copies):
            # a one-pixel tweak per copy keeps the copies distinct images (contrastive pairs them)
            copy = image.copy()
            copy.putpixel((0, 0), (k % 256, 0, 0))
            copy.save(os.path.join(folder, f"{name}_{k:03d}.png"))
    return folder


def data_config(max_prompt_length: int, cache_dir: str, **extra):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "max_prompt_length": max_prompt_length,
            "filter_overlong_prompts": False,
            "cache_dir": cache_dir,
            "train_batch_size": 64,
            "filter_overlong_prompts_workers": 1,
            **extra,
        }
    )


def load_images(item) -> None:
    """Decode every image of a verl row, as the rollout's vision preprocessing will."""
    for message in item["raw_prompt"]:
        for content in message["content"]:
            if content.get("type") == "image":
                content["image"].load()


def items_per_second(dataset, passes: int, workers: int, decode: bool = False) -> float:
    if workers == 0:
        started = time.perf_counter()
        for _ in range(passes):
            for i in range(len(dataset)):
                item = dataset[i]
                if decode:
                    load_images(item)
        return passes * len(dataset) / (time.perf_counter() - started)
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.utils.dataset.rl_dataset import collate_fn

    loader = StatefulDataLoader(
        dataset, batch_size=8, num_workers=workers, collate_fn=collate_fn, shuffle=True
    )
    started = time.perf_counter()
    count = 0
    for _ in range(passes):
        for batch in loader:
            count += len(batch["raw_prompt"])
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="rotation,jigsaw,position,contrastive")
    parser.add_argument(
        "--copies", type=int, default=8, help="copies of each bundled photo (items per task = 9 x copies)"
    )
    parser.add_argument(
        "--max-side", type=int, default=0, help="downscale photos to this side first (0: native)"
    )
    parser.add_argument("--max-prompt-length", type=int, default=1024)
    parser.add_argument("--passes", type=int, default=2, help="epochs read from each dataset")
    parser.add_argument(
        "--workers", type=int, default=0, help="read through a StatefulDataLoader with N workers"
    )
    parser.add_argument(
        "--image-format",
        default="pil",
        choices=("pil", "encoded"),
        help="online views as PIL images or PNG bytes",
    )
    args = parser.parse_args(argv)

    root = tempfile.mkdtemp(prefix="ssl4rl-online-bench-")
    os.environ.setdefault("HF_DATASETS_CACHE", os.path.join(root, "hf-cache"))
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from ssl4rl.backends.verl.dataset import OnlineRLHFDataset
    from ssl4rl.builder import BuildConfig, build
    from ssl4rl.tiny import build_tiny_qwen2_5_vl
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    photos = make_photos(root, args.copies, args.max_side)
    model = build_tiny_qwen2_5_vl(os.path.join(root, "tiny"))
    processor = AutoProcessor.from_pretrained(
        model, min_pixels=QWEN25VL_MIN_PIXELS, max_pixels=QWEN25VL_MAX_PIXELS
    )
    config = data_config(args.max_prompt_length, os.path.join(root, "verl-cache"))
    print(
        f"{len(os.listdir(photos))} photos per task, prompt budget {args.max_prompt_length} tokens, "
        f"{args.passes} passes, {args.workers} dataloader workers, online views as {args.image_format}; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    header = (
        f"{'task':<12} {'items':>5} {'static prep s':>13} {'static it/s':>11} {'+decode':>8} "
        f"{'online it/s':>11} {'+decode':>8} {'online/static (+decode)':>23}"
    )
    print(header)
    print("-" * len(header))
    for task in args.tasks.split(","):
        built = os.path.join(root, "built", task)
        started = time.perf_counter()
        build(
            BuildConfig(
                task=task,
                source="folder",
                input=photos,
                out=built,
                max_prompt_tokens=args.max_prompt_length,
                tokenizer=model,
                progress=False,
            )
        )
        verl_dir = os.path.join(root, "verl", task)
        preprocess(PreprocessConfig(out=verl_dir, train=[built], val=[built], progress=False))
        prep_seconds = time.perf_counter() - started
        static = RLHFDataset(
            data_files=[os.path.join(verl_dir, "train.parquet")],
            tokenizer=processor.tokenizer,
            config=config,
            processor=processor,
        )
        spec = os.path.join(root, f"{task}.yaml")
        with open(spec, "w") as f:
            f.write(f"task: {task}\nsource: folder\ninput: {photos}\nimage_format: {args.image_format}\n")
        online = OnlineRLHFDataset(
            data_files=[spec], tokenizer=processor.tokenizer, config=config, processor=processor
        )
        static_rate = items_per_second(static, args.passes, args.workers)
        online_rate = items_per_second(online, args.passes, args.workers)
        decoded = {}
        if args.workers == 0:
            decoded = {
                "static": items_per_second(static, args.passes, 0, decode=True),
                "online": items_per_second(online, args.passes, 0, decode=True),
            }
        ratio = f"{online_rate / static_rate:.3f}"
        if decoded:
            ratio += f" ({decoded['online'] / decoded['static']:.3f})"
        print(
            f"{task:<12} {len(online):>5} {prep_seconds:>13.1f} {static_rate:>11.1f} "
            f"{decoded.get('static', float('nan')):>8.1f} {online_rate:>11.1f} "
            f"{decoded.get('online', float('nan')):>8.1f} {ratio:>23}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
