#!/usr/bin/env bash
# GRPO on seedbench images with the jigsaw task (recipe seedbench_jigsaw); env and arguments: see verl/launch.sh and verl/README.md.
exec bash "$(dirname "$0")/launch.sh" seedbench_jigsaw "$@"
