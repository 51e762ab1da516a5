#!/usr/bin/env bash
# GRPO on seedbench images with several SSL tasks mixed (recipe seedbench_mix, data from `ssl4rl mix --recipe seedbench_mix`); env and arguments: see verl/launch.sh and verl/README.md.
exec bash "$(dirname "$0")/launch.sh" seedbench_mix "$@"
