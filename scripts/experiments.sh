#!/usr/bin/env bash
# Run a recipe (UDASA against its baselines; default recipes/cpu-full.yaml), then copy its report summary
# into docs/RESULTS.md (a "### Reading" written there survives). Resumable: rerun after a crash.
#   bash scripts/experiments.sh [recipe] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=${1:-recipes/cpu-full.yaml}
shift || true
.venv/bin/udasa run "$recipe" "$@"
name=$(.venv/bin/python -c "import sys; from udasa.recipe import load_recipe; print(load_recipe(sys.argv[1]).out_dir)" "$recipe")
.venv/bin/python scripts/results_section.py "$name" "$(echo "bash scripts/experiments.sh $recipe $*" | sed "s/ *$//")"
