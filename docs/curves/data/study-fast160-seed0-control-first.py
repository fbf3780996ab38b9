"""Issue 9: train seed 0's control arm (10 % depth labels) ahead of the study's own order, with exactly the
config `faceparse study` builds for it (same frozen code, preset, overrides, seed, inits and out folder),
so that the study later finds the arm complete. Run from /work/study-tree2 with its src on PYTHONPATH:

    cd /work/study-tree2 && OMP_NUM_THREADS=1 PYTHONPATH=src /work/main/.venv/bin/python \
        /work/main/docs/curves/data/study-fast160-seed0-control-first.py
"""

from pathlib import Path

from faceparse.runs.stages import JOINT
from faceparse.utils.progress import progress_bar
from faceparse.workflows.study import Study, fraction_dir, variant_overrides

OUT = Path("/work/exp/study-fast160/out")
OVERRIDES = ["data.root=/work/exp/synth192", "run.eval_every=250"]  # as study-fast160-seed0.sh passes them
seed, fraction = 0, 0.1
study = Study(OUT, "study-fast", OVERRIDES, fractions=(fraction,), progress=progress_bar)
seed_dir = OUT / f"seed-{seed}"
fdir = seed_dir / fraction_dir(fraction)
inits = [
    f"joint.init_rgb={seed_dir / 'pretrain-rgb'}",
    f"joint.init_depth={fdir / 'pretrain-depth'}",
    f"joint.init_translator={fdir / 'pretrain-translator'}",
]
extra = [f"data.depth_fraction={fraction}", *inits, *variant_overrides("control")]
study._train(study.config(seed, fdir / "control", extra), JOINT, "joint-control")
