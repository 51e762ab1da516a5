"""ssl4rl: self-supervised tasks as verifiable rewards for RL fine-tuning of vision-language models."""

__version__ = "0.1.0"
