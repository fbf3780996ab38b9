"""Issue 9: one stage of a study cell of `faceparse study` (a seed at a depth-label fraction, or the
seed's flip-diagnostic arm), so that two one-thread processes can share a cell's work on the 2 cores (the
study runs a cell's stages one after another), and so that a cell can be run and reported on its own in
one session. Same Study object, preset, overrides, configs and run folders as run-study.sh: the study
finds each stage complete and each evaluation cached. Resumable (each stage resumes from its checkpoint).

Usage (from the frozen tree, PYTHONPATH=src): cell-part.py SEED CELL PART [ARM ...]
  STUDY_FORCE_FP32=1 in the environment keeps `run.precision: auto` at fp32 on a CPU with native bf16
  (AMX / AVX512-BF16), where it would resolve to bf16-mixed: the study's cells so far trained in fp32.
  CELL: a depth-label fraction (0.01, 0.1, 1.0) or "flip" (pre-training with data.flip_swap=false at the
        main fraction, then the joint phase with the correct flip)
  PART: pretrain-rgb | pretrain-depth | pretrain-translator | a joint arm (joint, control, no-ml, no-e2e,
        ml-kl, ...) | evaluate ARM ... (the gate on val, the baseline and the ARMs on test, as the study
        evaluates them; then out/cell-seed<S>-<CELL>.json, a study.json holding this cell alone, which
        main's `faceparse study-merge` joins to the other cells)
Committed as docs/curves/data/study-fast160-cell-part.py."""

import os
import sys
from pathlib import Path

import faceparse.runs.precision

if os.environ.get("STUDY_FORCE_FP32") == "1":
    # the study's cells so far ran where `run.precision: auto` resolved to 32-true (a 2-core AVX2 CPU); on a
    # CPU with native bf16 it would resolve to bf16-mixed, a different design: keep auto's fp32 resolution
    faceparse.runs.precision.cpu_has_native_bf16 = lambda: False

from faceparse.eval.results import jsonable
from faceparse.runs.config import load_config
from faceparse.runs.stages import JOINT, PRETRAIN_DEPTH, PRETRAIN_RGB, PRETRAIN_TRANSLATOR
from faceparse.utils.io import atomic_write_json
from faceparse.utils.progress import progress_bar
from faceparse.workflows.study import FLIP_DIR, VARIANT_LABELS, Study, fraction_dir, variant_overrides

OUT = "/work/exp/study-fast160/out"
OVERRIDES = ["data.root=/work/exp/synth192", "run.eval_every=250"]
PRESET = "study-fast"

seed, cell, part, arms = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
flip = cell == "flip"
fraction = 0.1 if flip else float(cell)
study = Study(OUT, PRESET, OVERRIDES, fractions=(fraction,), progress=progress_bar)
root = Path(OUT) / f"seed-{seed}" / (FLIP_DIR if flip else "")
fdir = root / fraction_dir(fraction)
pre = ["data.flip_swap=false"] if flip else []
if part == "pretrain-rgb":
    study._train(study.config(seed, root, pre), PRETRAIN_RGB, part)
elif part in ("pretrain-depth", "pretrain-translator"):
    stage = PRETRAIN_DEPTH if part == "pretrain-depth" else PRETRAIN_TRANSLATOR
    study._train(study.config(seed, fdir, [f"data.depth_fraction={fraction}", *pre]), stage, part)
elif part in VARIANT_LABELS and part != "baseline":
    run_out = fdir if part == "joint" else fdir / part
    inits = [
        f"joint.init_rgb={root / PRETRAIN_RGB.name}",
        f"joint.init_depth={fdir / PRETRAIN_DEPTH.name}",
        f"joint.init_translator={fdir / PRETRAIN_TRANSLATOR.name}",
    ]
    print(f"seed {seed}, {cell}: joint ({VARIANT_LABELS[part]})", flush=True)
    extra = [f"data.depth_fraction={fraction}", *inits, *variant_overrides(part)]
    study._train(study.config(seed, run_out, extra), JOINT, f"joint-{part}")
elif part == "evaluate":
    # Study._cell as run_cell / run_flip_cell call it, with the arms given: complete stages are skipped
    runs = study._cell(seed, fraction, root, tuple(arms), pre, gated=not flip)
    for name, run in runs.items():
        print(name, {t: round(s.mean_f1, 2) for t, s in (("rgb", run.rgb), ("depth", run.depth)) if s})
    cfg = study.config(seed, study.out)
    label = f"{fraction * 100:g}%"
    record = {
        "preset": PRESET,
        "overrides": OVERRIDES,
        "seeds": [seed],
        "variants": [a for a in arms if a not in ("joint", "no-e2e", "no-ml", "control")],
        "samples": load_config(PRESET, OVERRIDES).study.samples,
        "data": str(study.data_root),
        "size": cfg.data.size,
        "iterations": {
            "parsers": cfg.parsers.iterations,
            "translator": cfg.translator.iterations,
            "joint": cfg.joint.iterations,
        },
        "main_fraction": study.main_fraction,
        "precision": faceparse.runs.precision.auto_precision(),  # the study's preset leaves run.precision auto
        "gate": {"enabled": True, "cells": {seed: {k: r.to_json() for k, r in study.gates[seed].items()}}},
        "per_seed": {} if flip else {seed: {label: {name: run.to_json() for name, run in runs.items()}}},
        "flip_per_seed": {seed: {name: run.to_json() for name, run in runs.items()}} if flip else {},
    }
    atomic_write_json(Path(OUT) / f"cell-seed{seed}-{cell}.json", jsonable(record))
else:
    sys.exit(f"unknown part {part!r}")
