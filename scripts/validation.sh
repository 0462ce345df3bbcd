#!/usr/bin/env bash
# Does u agree with human preferences? (docs/RESULTS.md, "Validation".) Each spec's scoring settings are
# fitted on its dev slice (HH items 0-99, TruthfulQA validation questions 0-149) and written into
# src/udasa/specs/; u is then measured on the disjoint reporting slice (HH items 100-399, TruthfulQA
# 150-299), and the table goes into docs/RESULTS.md. Resumable: rerun after a stop and it continues.
#   bash scripts/validation.sh            (about 7 hours on one core of a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
for d in hh-harmless hh-helpful; do
  .venv/bin/udasa validate --fit --data "$d" --out "runs/val/$d-dev" --threads 1
  .venv/bin/udasa validate --data "$d" --out "runs/val/$d" --threads 1
done
.venv/bin/udasa validate --fit --data truthfulqa --out runs/val/truthfulqa-dev --threads 1
.venv/bin/udasa validate --data truthfulqa --out runs/val/truthfulqa --threads 1
.venv/bin/python scripts/validation_table.py runs/val
