"""Issue 9: one stage of the left/right-flip diagnostic's cell (``faceparse study --flip-diagnostic``,
``Study.run_flip_cell``), so that two one-thread processes can share the cell's work on the 2 cores:
exactly the configs, run folders and evaluations that the study itself uses (same Study object, same
preset and overrides as run-study.sh), so `faceparse study ... --flip-diagnostic` later finds every stage
complete and every evaluation cached. Resumable (each stage resumes from its last checkpoint).

Usage (from the frozen tree, PYTHONPATH=src): flip-part.py SEED PART, PART one of
  pretrain-rgb | pretrain-depth | pretrain-translator   (with data.flip_swap=false, 10 % depth labels)
  control | joint                                         (the joint phase with the correct flip)
  evaluate                                                (Study.run_flip_cell: val gate record + test)
Committed as docs/curves/data/study-fast160-flip-part.py."""

import sys
from pathlib import Path

from faceparse.runs.stages import JOINT, PRETRAIN_DEPTH, PRETRAIN_RGB, PRETRAIN_TRANSLATOR
from faceparse.utils.progress import progress_bar
from faceparse.workflows.study import FLIP_DIR, VARIANT_LABELS, Study, fraction_dir, variant_overrides

OUT = "/work/exp/study-fast160/out"
OVERRIDES = ["data.root=/work/exp/synth192", "run.eval_every=250"]

seed, part = int(sys.argv[1]), sys.argv[2]
study = Study(OUT, "study-fast", OVERRIDES, fractions=(0.1,), progress=progress_bar)
fraction = study.main_fraction
root = Path(OUT) / f"seed-{seed}" / FLIP_DIR
fdir = root / fraction_dir(fraction)
pre = ["data.flip_swap=false"]
if part == "pretrain-rgb":
    study._train(study.config(seed, root, pre), PRETRAIN_RGB, part)
elif part in ("pretrain-depth", "pretrain-translator"):
    stage = PRETRAIN_DEPTH if part == "pretrain-depth" else PRETRAIN_TRANSLATOR
    study._train(study.config(seed, fdir, [f"data.depth_fraction={fraction}", *pre]), stage, part)
elif part in ("control", "joint"):
    run_out = fdir if part == "joint" else fdir / part
    inits = [
        f"joint.init_rgb={root / PRETRAIN_RGB.name}",
        f"joint.init_depth={fdir / PRETRAIN_DEPTH.name}",
        f"joint.init_translator={fdir / PRETRAIN_TRANSLATOR.name}",
    ]
    print(f"seed {seed} ({FLIP_DIR}): joint ({VARIANT_LABELS[part]})", flush=True)
    extra = [f"data.depth_fraction={fraction}", *inits, *variant_overrides(part)]
    study._train(study.config(seed, run_out, extra), JOINT, f"joint-{part}")
elif part == "evaluate":
    # the cell's evaluations (cached beside its runs), then flip-seed<S>.json: a study.json holding this
    # arm alone, which `faceparse study-merge` (main's code) joins to the seed's main cell
    from faceparse.eval.results import jsonable
    from faceparse.runs.config import load_config
    from faceparse.utils.io import atomic_write_json

    flip = study.run_flip_cell(seed)
    for name, run in flip.items():
        print(name, {t: round(s.mean_f1, 2) for t, s in (("rgb", run.rgb), ("depth", run.depth)) if s})
    cfg = study.config(seed, study.out)
    record = {
        "preset": "study-fast",
        "overrides": OVERRIDES,
        "seeds": [seed],
        "variants": [],
        "samples": load_config("study-fast", OVERRIDES).study.samples,
        "data": str(study.data_root),
        "size": cfg.data.size,
        "iterations": {
            "parsers": cfg.parsers.iterations,
            "translator": cfg.translator.iterations,
            "joint": cfg.joint.iterations,
        },
        "main_fraction": study.main_fraction,
        "gate": {"enabled": True, "cells": {seed: {k: r.to_json() for k, r in study.gates[seed].items()}}},
        "per_seed": {},
        "flip_per_seed": {seed: {name: run.to_json() for name, run in flip.items()}},
    }
    atomic_write_json(Path(OUT) / f"flip-seed{seed}.json", jsonable(record))
else:
    sys.exit(f"unknown part {part!r}")
