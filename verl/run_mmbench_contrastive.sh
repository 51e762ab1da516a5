#!/usr/bin/env bash
# GRPO on mmbench images with the contrastive task (recipe mmbench_contrastive); env and arguments: see verl/launch.sh and verl/README.md.
exec bash "$(dirname "$0")/launch.sh" mmbench_contrastive "$@"
