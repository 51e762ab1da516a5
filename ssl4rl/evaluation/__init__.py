"""Benchmark and SSL-task evaluation (see docs/evaluation.md). Modules import their heavy
dependencies lazily; nothing is imported here.

- questions: multiple-choice rows from VLMEvalKit TSV / Hugging Face layouts, circular rotations
- extract:   which option letter a free-form response picks
- protocols: what a question asks, word for word (paper, cot, direct, vlmevalkit, ssl4rl-tags)
- backends:  vLLM / transformers / scripted generators behind `generate(requests) -> list[str]`
- runner:    `ssl4rl eval --benchmark` (resumable prediction log, reports, manifest)
- ssl_eval:  `ssl4rl eval --ssl` (accuracy per task and knob, scored by ssl4rl.reward)
- report, compare: tables in the paper's column order, compliance, intervals, changes per protocol
- stats:     Wilson intervals, paired bootstrap and Newcombe intervals for changes
- vlmeval:   VLMEvalKit config and prediction-file import
- synthetic: VLMEvalKit-layout TSVs for tests and benchmarks
"""
