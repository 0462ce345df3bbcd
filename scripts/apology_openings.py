"""How often responses open with an apology: the chosen and rejected sides of a run's pairs, by prompt
source, and each evaluated model's generations (the harmless run's "I'm sorry for your ..." habit); and
each model's commonest openings (first three words), which show the template a trained model settled on.

    python scripts/apology_openings.py runs/harmless
"""
import json
import sys
from collections import Counter
from pathlib import Path

OPENINGS = ("I'm sorry", "I am sorry", "I apologize")


def opens_with_apology(text: str) -> bool:
    return text.lstrip().replace("\u2019", "'").startswith(OPENINGS)


def main(run: Path) -> None:
    pairs = [json.loads(line) for line in (run / "pairs.jsonl").open()]
    for source in sorted({p["id"].rsplit("-", 1)[0] for p in pairs}):
        mine = [p for p in pairs if p["id"].rsplit("-", 1)[0] == source]
        print(f"pairs from {source} ({len(mine)}): chosen opens with an apology "
              f"{sum(opens_with_apology(p['chosen']) for p in mine)}, rejected "
              f"{sum(opens_with_apology(p['rejected']) for p in mine)}")
    for gen in sorted(run.glob("**/generations-*.jsonl")):
        rows = [json.loads(line) for line in gen.open()]
        sorry_for_your = sum("I'm sorry for your" in r["response"].replace("\u2019", "'") for r in rows)
        print(f"{gen.relative_to(run)} ({len(rows)}): opens with an apology "
              f"{sum(opens_with_apology(r['response']) for r in rows)}, "
              f"contains \"I'm sorry for your\" {sorry_for_your}")
        openings = Counter(" ".join(r["response"].replace("\u2019", "'").split()[:3]) for r in rows)
        print("  commonest openings: " + ", ".join(f"{o!r} {n / len(rows):.0%}" for o, n in openings.most_common(3)))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
