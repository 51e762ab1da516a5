"""Questions per second of `ssl4rl eval` on a synthetic multiple-choice file.

Runs the whole benchmark path (TSV reading, image decoding, prompt building, batched generation,
answer extraction, prediction log, reports) with the transformers backend, and with vLLM when it is
installed and a GPU is visible. Without --model it builds the tiny offline Qwen2.5-VL, so the CPU
number measures pipeline overhead plus a very small model, not a 3B model's speed.

    python perf/eval_throughput.py                      # tiny model, CPU
    python perf/eval_throughput.py --model /models/Qwen2.5-VL-3B-Instruct --questions 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model directory (default: build the tiny Qwen2.5-VL)")
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--image-size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument(
        "--min-pixels", type=int, help="default: 784 for the tiny model, else the paper's 35840"
    )
    parser.add_argument("--max-pixels", type=int, help="default: 3136 for the tiny model, else the paper's")
    parser.add_argument("--backends", nargs="+", default=["transformers", "vllm"])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from ssl4rl.evaluation.backends import TransformersGenerator, VLLMGenerator, vllm_usable
    from ssl4rl.evaluation.runner import (
        PAPER_MAX_PIXELS,
        PAPER_MIN_PIXELS,
        BenchmarkEvalConfig,
        evaluate_benchmark,
    )
    from ssl4rl.evaluation.synthetic import SyntheticQuestion, write_vlmeval_tsv

    with tempfile.TemporaryDirectory(prefix="ssl4rl-eval-bench-") as tmp:
        model = args.model
        if model is None:
            from ssl4rl.tiny import build_tiny_qwen2_5_vl

            model = build_tiny_qwen2_5_vl(os.path.join(tmp, "tiny"))
        tiny = args.model is None
        min_pixels = args.min_pixels or (784 if tiny else PAPER_MIN_PIXELS)
        max_pixels = args.max_pixels or (3136 if tiny else PAPER_MAX_PIXELS)
        questions = [
            SyntheticQuestion(
                options=("a red car", "a blue bicycle", "a green bus", "a yellow truck"),
                answer="ABCD"[i % 4],
                l2_category="coarse_perception",
                question=f"Which vehicle is in picture {i}?",
            )
            for i in range(args.questions)
        ]
        data = write_vlmeval_tsv(os.path.join(tmp, "bench.tsv"), questions, image_size=tuple(args.image_size))

        results = []
        for backend in args.backends:
            if backend == "vllm" and not vllm_usable():
                print("vllm: skipped (not installed or no GPU)")
                continue
            started = time.perf_counter()
            if backend == "vllm":
                generator = VLLMGenerator(
                    model, min_pixels=min_pixels, max_pixels=max_pixels, max_new_tokens=args.max_new_tokens
                )
            else:
                generator = TransformersGenerator(
                    model, min_pixels=min_pixels, max_pixels=max_pixels, max_new_tokens=args.max_new_tokens
                )
            load_seconds = time.perf_counter() - started
            for batch_size in args.batch_sizes:
                out = os.path.join(tmp, f"{backend}-{batch_size}")
                run = BenchmarkEvalConfig(
                    benchmark="mmbench",
                    data=data,
                    out=out,
                    model=model,
                    protocol="direct",
                    batch_size=batch_size,
                    max_new_tokens=args.max_new_tokens,
                    min_pixels=min_pixels,
                    max_pixels=max_pixels,
                    progress=False,
                )
                started = time.perf_counter()
                evaluate_benchmark(run, generator)
                seconds = time.perf_counter() - started
                with open(os.path.join(out, "manifest.json")) as f:
                    generation = json.load(f)["timing"]
                results.append(
                    {
                        "backend": backend,
                        "device": generator.describe().get("device", "cuda"),
                        "batch_size": batch_size,
                        "questions": args.questions,
                        "questions_per_second": round(args.questions / seconds, 2),
                        "answer_loop_questions_per_second": generation["rows_per_second"],
                        "model_load_seconds": round(load_seconds, 2),
                    }
                )
                print(
                    f"{backend:12s} batch {batch_size:3d}: {args.questions / seconds:7.2f} questions/s end to end "
                    f"({generation['rows_per_second']} in the answer loop; model load {load_seconds:.1f} s)",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model or "tiny Qwen2.5-VL", "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
