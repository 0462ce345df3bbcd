#!/usr/bin/env bash
# The CPU experiment: UDASA against every baseline (recipes/cpu-full.yaml), then its headline table
# into docs/RESULTS.md. Resumable: rerun after a crash and finished stages are reused.
#   bash scripts/experiments.sh [recipe] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=${1:-recipes/cpu-full.yaml}
shift || true
.venv/bin/udasa run "$recipe" "$@"
name=$(.venv/bin/python -c "import sys; from udasa.recipe import load_recipe; print(load_recipe(sys.argv[1]).out_dir)" "$recipe")
.venv/bin/python scripts/results_section.py "$name" "$(echo "bash scripts/experiments.sh $recipe $*" | sed "s/ *$//")"
