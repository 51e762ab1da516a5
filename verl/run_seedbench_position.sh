#!/usr/bin/env bash
# GRPO on seedbench images with the position task (recipe seedbench_position); env and arguments: see verl/launch.sh and verl/README.md.
exec bash "$(dirname "$0")/launch.sh" seedbench_position "$@"
