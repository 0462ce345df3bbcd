"""Copy a run's one-screen summary (headline table and stage times) into docs/RESULTS.md, its plots into
docs/figures/NAME/, and what the docs' figures are computed from into docs/runs/NAME/: every evaluated model's
metrics.json and generations-<task>.jsonl (what the hand-read refusal audits score), the report's
diagnostics.json and the pairs summaries. runs/ does not survive a change of machine; these files do, and
scripts that read a run's evaluations (scripts/refusal_audit.py) fall back on them. Weights, samples,
scores and pairs stay in runs/.

    python scripts/results_section.py RUN_DIR "COMMAND THAT PRODUCED IT"
    python scripts/results_section.py RUN_DIR --archive-only     # only the files for docs/runs/NAME/
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RESULTS.md"
ARCHIVE = ROOT / "docs" / "runs"
KEPT = ("metrics.json", "generations-*.jsonl", "diagnostics.json", "*.summary.json")


def run_path(recorded: str) -> Path:
    """A path recorded in a label file or a report: as given where it exists (or is absolute), otherwise from
    the repository root (label files record paths from there)."""
    path = Path(recorded)
    return path if path.is_absolute() or path.exists() else ROOT / path


def archived(folder: str) -> Path | None:
    """Where `archive` keeps a copy of a folder under runs/ (``runs/NAME/...`` -> ``docs/runs/NAME/...``), or
    None for a folder outside runs/."""
    p = Path(folder) if Path(folder).is_absolute() else Path.cwd() / folder
    try:
        return ARCHIVE / p.resolve().relative_to((ROOT / "runs").resolve())
    except ValueError:  # a relative runs/... path read from another directory than the one it was written in
        return ARCHIVE.joinpath(*Path(folder).parts[1:]) if Path(folder).parts[:1] == ("runs",) else None


def archive_dir(run_dir: str) -> Path:
    """docs/runs/<the run folder's path under runs/>: where scripts/refusal_audit.py looks for it."""
    dest = archived(str(Path(run_dir).resolve()))
    if dest is None:
        raise SystemExit(f"{run_dir}: not a folder under runs/ (only those are archived)")
    return dest


def archive(run_dir: Path, dest: Path) -> list[Path]:
    """Copy the files named by `KEPT` under ``run_dir`` to ``dest``, keeping their relative paths; skip model
    folders' checkpoints. Return the copies."""
    copies = []
    for pattern in KEPT:
        for src in sorted(run_dir.rglob(pattern)):
            rel = src.relative_to(run_dir)
            if any(part.startswith("checkpoint-") for part in rel.parts):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / rel)
            copies.append(dest / rel)
    earlier = sorted({f for pattern in KEPT for f in dest.rglob(pattern)} - set(copies))
    if earlier:  # kept, not deleted: a run folder rebuilt in part must not erase what the docs cite
        print(f"{len(earlier)} files in {dest} are not in {run_dir} now (kept), e.g. {earlier[0]}")
    return copies


def main(run_dir: str, command: str) -> None:
    dest = archive_dir(run_dir)
    report = (Path(run_dir) / "report" / "report.md").read_text()
    summary = report.split("## Evaluation tables", 1)[0]
    summary = re.sub(r"^# .*\n", "", summary)
    summary = re.sub(r"^## ", "### ", summary, flags=re.M)  # nested under this run's own section
    figures = DOC.parent / "figures" / Path(run_dir).name  # runs/ is not committed; the plots are
    figures.mkdir(parents=True, exist_ok=True)
    for png in (Path(run_dir) / "report").glob("*.png"):
        shutil.copy(png, figures / png.name)
    summary = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", rf"![\1](figures/{Path(run_dir).name}/\2)", summary)
    copies = archive(Path(run_dir), dest)
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
    print(f"updated {DOC} ({title}); {len(copies)} files in {dest}")


if __name__ == "__main__":
    if sys.argv[2:] == ["--archive-only"]:
        dest = archive_dir(sys.argv[1])
        print(f"{len(archive(Path(sys.argv[1]), dest))} files in {dest}")
    else:
        main(sys.argv[1], sys.argv[2])
