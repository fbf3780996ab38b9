"""Issue 9: per-seed paired differences that the merged study report does not print.

Reads committed cell jsons (or a merged study.json) and prints, per seed and depth-label fraction, each
arm's test mean F1 and L1, then ARM − REF (default: the control) on mean F1, per class and L1, and, with
--light, Eq. 4 − control by light level with mean ± sample std over seeds.

Usage (from the repository root):
  python3 docs/curves/data/study-fast160-paired.py [--ref ARM] [--light] FILE.json ...
e.g. python3 docs/curves/data/study-fast160-paired.py docs/curves/data/study-fast160/cell-seed4-0.1*.json
     python3 docs/curves/data/study-fast160-paired.py --light /tmp/m/study.json   (after study-merge)"""

import argparse
import json
import statistics
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
    parser.add_argument("--light", action="store_true", help="Eq. 4 − control by light level over seeds")
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
    if args.light:
        print("== Eq. 4 − control by light level (mean ± sample std over seeds, seeds improved)")
        for label in sorted({label for _, label in cells}):
            pairs = [
                a
                for (_, lab), a in sorted(cells.items())
                if lab == label and {"joint", "control"} <= a.keys()
            ]
            for group in ("dark", "normal", "bright"):
                for t in tasks:
                    xs = [
                        diff(a["joint"]["by_group"][group], a["control"]["by_group"][group], t) for a in pairs
                    ]
                    if len(xs) < 2:
                        continue
                    mean, std = statistics.mean(xs), statistics.stdev(xs)
                    up = sum(x > 0 for x in xs)
                    print(f"  {label} {group:6s} {t:5s} {mean:+.2f} ± {std:.2f} ({up}/{len(xs)} improved)")


if __name__ == "__main__":
    main()
