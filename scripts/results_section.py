"""Copy a run's one-screen summary (headline table and stage times) into docs/RESULTS.md, its plots into
docs/figures/NAME/, and what the docs' figures are computed from into docs/runs/NAME/: every evaluated model's
metrics.json and generations-<task>.jsonl (what the hand-read refusal audits score), the report's
diagnostics.json and the pairs summaries. runs/ does not survive a change of machine; these files do, and
scripts that read a run's evaluations (scripts/refusal_audit.py) fall back on them. Weights and pairs stay
in runs/.

A run's shared inputs (prompts, samples, scores: an hour or more of a CPU for the harmless recipe) can be
kept too, gzipped, and put back on a new machine, so that `udasa run` resumes after them instead of drawing
them again (a rerun draws a few samples differently: docs/robustness.md); the base's evaluation comes back
with them, since the base model does not change:

    python scripts/results_section.py RUN_DIR "COMMAND THAT PRODUCED IT"
    python scripts/results_section.py RUN_DIR --archive-only     # only the files for docs/runs/NAME/
    python scripts/results_section.py RUN_DIR --keep-inputs      # and prompts/samples/scores, gzipped
    python scripts/results_section.py RUN_DIR --restore          # put them (and eval-base) back into RUN_DIR
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RESULTS.md"
ARCHIVE = ROOT / "docs" / "runs"
KEPT = ("metrics.json", "generations-*.jsonl", "diagnostics.json", "*.summary.json")
INPUTS = ("prompts.jsonl", "samples.jsonl", "scores.jsonl")  # the shared stages' artifacts, at the run's top
STAGE_INPUTS = {"prompts": "prompts.jsonl", "sample": "samples.jsonl", "score": "scores.jsonl"}
RESTORED = ("eval-base",)  # evaluations of a model no training changes


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


def _kept_stage(marker: Path) -> str | None:
    """What a shared stage's marker (``.stages/<stage>.json``) stands for: its input file (`INPUTS`), the
    `RESTORED` folder of a base evaluation, or None for any other stage (pairs, training, variants, rounds).
    By the marker's name, which the pipeline fixes: a round's ``round-2/sample`` writes a ``samples.jsonl``
    too, under ``round-2/``, and is not the run's."""
    stage = marker.stem
    if stage in STAGE_INPUTS:
        return STAGE_INPUTS[stage]
    return next((folder for folder in RESTORED if stage.startswith(folder + "__")), None)


def keep_inputs(run_dir: Path, dest: Path) -> list[Path]:
    """Gzip the run's shared inputs (`INPUTS`) whose stage has finished into ``dest`` as NAME.gz, with the
    stage markers of those and of the `RESTORED` evaluations (``.stages/``), so that a restored run counts
    them as done, with the time they took. A file whose stage has not finished is not kept. What an earlier
    call kept is replaced as a whole: kept samples of one run beside kept scores of another would be
    restored as one run."""
    for old in [*dest.glob("*.jsonl.gz"), *dest.glob(".stages/*.json")]:
        old.unlink()
    copies = []
    for marker in sorted((run_dir / ".stages").glob("*.json")):
        kept = _kept_stage(marker)
        if kept is None:
            continue
        dest.joinpath(".stages").mkdir(parents=True, exist_ok=True)
        shutil.copy(marker, dest / ".stages" / marker.name)
        copies.append(dest / ".stages" / marker.name)
        if kept in INPUTS:
            with open(run_dir / kept, "rb") as fin, open(dest / f"{kept}.gz", "wb") as raw, \
                    gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fout:  # same bytes every time
                shutil.copyfileobj(fin, fout)
            copies.append(dest / f"{kept}.gz")
    return copies


def restore(dest: Path, run_dir: Path) -> list[Path]:
    """Put kept inputs, their stage markers and the `RESTORED` evaluations back into ``run_dir``. A file
    already there is left as it is if identical and refused if it differs: restoring never overwrites a run's
    own work."""
    planned = []
    for name in INPUTS:
        if (dest / f"{name}.gz").exists():
            with gzip.open(dest / f"{name}.gz", "rb") as f:
                planned.append((run_dir / name, f.read()))
    for folder in (*RESTORED, ".stages"):
        for src in sorted((dest / folder).rglob("*")) if (dest / folder).is_dir() else []:
            if src.is_file():
                planned.append((run_dir / src.relative_to(dest), src.read_bytes()))
    if not any(path.name in INPUTS for path, _ in planned):
        raise SystemExit(f"{dest}: no inputs kept to restore (keep them with --keep-inputs)")
    clashes = [str(path) for path, data in planned if path.exists() and path.read_bytes() != data]
    if clashes:
        raise SystemExit(f"{len(clashes)} files in {run_dir} differ from the kept copies, e.g. {clashes[0]}: "
                         "restore into an empty run folder, or delete them first")
    written = []
    for path, data in sorted(planned, key=lambda p: p[0].parent.name == ".stages"):  # markers last
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_name(path.name + ".restoring").write_bytes(data)
            path.with_name(path.name + ".restoring").replace(path)  # whole or absent, never half a file
            written.append(path)
    return written


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


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder under runs/")
    parser.add_argument("command", nargs="?", help="the command that produced it (for the section)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--archive-only", action="store_true", help="copy the evaluations etc., no section")
    what.add_argument("--keep-inputs", action="store_true", help="also keep prompts, samples and scores")
    what.add_argument("--restore", action="store_true", help="put kept inputs and eval-base back")
    args = parser.parse_args(argv)
    run_dir, dest = Path(args.run_dir), archive_dir(args.run_dir)
    if args.restore:
        print(f"{len(restore(dest, run_dir))} files written into {run_dir} from {dest}")
    elif args.archive_only or args.keep_inputs:
        copies = archive(run_dir, dest) + (keep_inputs(run_dir, dest) if args.keep_inputs else [])
        print(f"{len(copies)} files in {dest}")
    elif args.command:
        main(args.run_dir, args.command)
    else:
        parser.error("give the command that produced the run, or --archive-only / --keep-inputs / --restore")


if __name__ == "__main__":
    cli(sys.argv[1:])
