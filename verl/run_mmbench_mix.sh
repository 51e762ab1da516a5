#!/usr/bin/env bash
# GRPO on mmbench images with several SSL tasks mixed (recipe mmbench_mix, data from `ssl4rl mix --recipe mmbench_mix`); env and arguments: see verl/launch.sh and verl/README.md.
exec bash "$(dirname "$0")/launch.sh" mmbench_mix "$@"
