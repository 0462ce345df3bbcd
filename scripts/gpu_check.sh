#!/usr/bin/env bash
# On any machine with a CUDA GPU, in a few minutes: the tiny pipeline with every stage on the GPU (and a check
# that each neural stage really ran there), the sampler against `generate` at 64 and 512 rows, and a DPO
# step. The figures go into the GPU sections of docs/BENCHMARKS.md.
#   bash scripts/gpu_check.sh
# Without a virtual environment it uses python3 with src/ on the path (see ../shared/gpu/README.md for the
# wheels a bare GPU machine needs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="${PYTHONPATH:-}:$PWD/src" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: gpu_check needs one')"
work=$(mktemp -d)

echo "== 1. the tiny pipeline on the GPU"
$PY - "$work" <<'PY'
import json, subprocess, sys
from pathlib import Path
import yaml
from udasa.testing import build_tiny_model
work = Path(sys.argv[1])
model = build_tiny_model(work / "tiny")
recipe = yaml.safe_load(Path("recipes/tiny.yaml").read_text())
tasks = ["truthful", "sentiment"]  # their evaluators need no extra package (no MiniLM, no profanity-check)
recipe.update(model=str(model), out=str(work / "run"), device="cuda", dtype="auto", baselines=[])
recipe["eval"].update(tasks=tasks)
(work / "tiny.yaml").write_text(yaml.safe_dump(recipe))
r = subprocess.run([sys.executable, "-m", "udasa.cli", "run", str(work / "tiny.yaml")], capture_output=True, text=True)
print(r.stdout[-1500:], r.stderr[-3000:])
assert r.returncode == 0, "the tiny pipeline failed on the GPU"
marks = {p.stem: json.loads(p.read_text()) for p in (work / "run" / ".stages").glob("*.json")}
placed = {k: m["placement"] for k, m in marks.items() if "placement" in m}
for k, p in sorted(placed.items()):
    print(f"  {k:40s} {p['device']:8s} {p['dtype']}")
neural = ["sample", "score", "train", "eval-base__truthful", "eval-base__sentiment", "eval__truthful", "eval__sentiment"]
missing = [k for k in neural if k not in placed]
off = [k for k in neural if k in placed and not placed[k]["device"].startswith("cuda")]
assert not missing and not off, f"stages not placed on the GPU: missing {missing}, elsewhere {off}"
print("every neural stage ran on the GPU")
PY

echo "== 2. sampler vs generate"
$PY benchmarks/sampling_gpu.py --rows 64 512 --write

echo "== 3. DPO step"
$PY benchmarks/training_gpu.py --write
echo "figures written to docs/BENCHMARKS.md"
