"""Copy a run's one-screen summary (headline table and stage times) into docs/RESULTS.md.

    python scripts/results_section.py RUN_DIR "COMMAND THAT PRODUCED IT"
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md"


def main(run_dir: str, command: str) -> None:
    report = (Path(run_dir) / "report" / "report.md").read_text()
    summary = report.split("## Evaluation tables", 1)[0]
    summary = re.sub(r"^# .*\n", "", summary)
    summary = re.sub(r"^## ", "### ", summary, flags=re.M)  # nested under this run's own section
    figures = DOC.parent / "figures" / Path(run_dir).name  # runs/ is not committed; the plots are
    figures.mkdir(parents=True, exist_ok=True)
    for png in (Path(run_dir) / "report").glob("*.png"):
        shutil.copy(png, figures / png.name)
    summary = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", rf"![\1](figures/{Path(run_dir).name}/\2)", summary)
    title = f"Experiment: {Path(run_dir).name}"
    body = f"Command: `{command}`; full report: `{run_dir}/report/report.md`.\n{summary}"
    text = DOC.read_text() if DOC.exists() else "# Results\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    old = pattern.search(text)
    if old and "\n### Reading\n" in old.group(0):  # the written reading survives a regenerated table
        section += "\n### Reading\n" + old.group(0).split("\n### Reading\n", 1)[1].rstrip() + "\n"
    text = pattern.sub(lambda m: section + "\n", text) if old else text.rstrip() + "\n\n" + section
    DOC.write_text(text)
    print(f"updated {DOC} ({title})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
