"""Package data: the verl Hydra overlay (`ssl4rl_grpo.yaml`), the recipe table (`recipes.yaml`) and TRL configs.

`CONFIG_DIR` is the directory to pass to `python -m verl.trainer.main_ppo --config-path`.
"""

import os

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
OVERLAY_NAME = "ssl4rl_grpo"
RECIPES_FILE = os.path.join(CONFIG_DIR, "recipes.yaml")
