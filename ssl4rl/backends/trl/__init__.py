"""TRL backend: local GRPO (CPU or one GPU) with TRL's GRPOTrainer on the same RL parquet and reward as verl."""
