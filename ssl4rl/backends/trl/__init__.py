"""TRL backend: local GRPO (CPU or one GPU) with TRL's GRPOTrainer on the same RL parquet and reward as verl.

Modules, by job: `config` (TrlGrpoConfig: the settings, their YAML files and their flags; imports no TRL,
transformers or torch, so `ssl4rl train -h` and the verl backend work without them), `train` (the training
loop, `train_grpo`), `data` (verl RL parquet as a TRL dataset), `online` (on-the-fly data), `rewards`
(reward wrappers: per-task group metrics, curriculum recording), `callbacks` (metrics.jsonl, TensorBoard,
online curriculum progress), `filtering` (the zero-signal filtering trainer) and `zero_signal` (its group
decisions in plain numpy).
"""
