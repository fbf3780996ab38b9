"""Issue 9: per-seed paired differences of every arm, which the merged study report does not print.

Reads committed cell jsons (or a merged study.json) and prints, per seed and depth-label fraction, each
arm's test mean F1 and L1, then ARM − REF (default: the control) on mean F1, per class and L1. The report
(`faceparse study` / `study-merge`) prints joint − control per class and by light level with each seed's
value; this script covers the other arms.

Usage (from the repository root):
  python3 docs/curves/data/study-fast160-paired.py [--ref ARM] FILE.json ...
e.g. python3 docs/curves/data/study-fast160-paired.py docs/curves/data/study-fast160/cell-seed4-0.1*.json"""

import argparse
import json
from pathlib import Path


def load(files: list[Path]) -> dict[tuple[str, str], dict]:
    """Arms per (seed, fraction label), joined over every file (later files add arms)."""
    cells: dict[tuple[str, str], dict] = {}
    for path in files:
        try:
            per_seed = json.loads(path.read_text())["per_seed"]
        except (OSError, ValueError, KeyError) as err:
            raise SystemExit(f"{path}: not a study or cell json with 'per_seed' ({err})") from err
        for seed, labels in per_seed.items():
            for label, arms in labels.items():
                cells.setdefault((seed, label), {}).update(arms)
    return cells


def diff(a: dict, b: dict, task: str) -> float:
    return a[task]["mean_f1"] - b[task]["mean_f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="control", help="arm subtracted from the others")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    cells = load(args.files)
    tasks = ("rgb", "depth")
    for (seed, label), arms in sorted(cells.items()):
        print(f"== seed {seed}, {label}")
        for name, run in sorted(arms.items()):
            scores = " ".join(f"{t} {run[t]['mean_f1']:.2f}" for t in tasks if run.get(t))
            print(f"  {name:20s} {scores} L1 {run['translation']['l1']:.5f}")
        ref = arms.get(args.ref)
        if ref is None:
            continue
        for name, run in sorted(arms.items()):
            if name == args.ref:
                continue
            l1 = run["translation"]["l1"] - ref["translation"]["l1"]
            means = " ".join(f"{t} {diff(run, ref, t):+.2f}" for t in tasks)
            print(f"  {name} − {args.ref}: {means} L1 {l1:+.5f}")
            for t in tasks:
                pc, rc = run[t]["per_class"], ref[t]["per_class"]
                print(f"    {t}: " + " ".join(f"{k} {pc[k] - rc[k]:+.1f}" for k in pc))


if __name__ == "__main__":
    main()
