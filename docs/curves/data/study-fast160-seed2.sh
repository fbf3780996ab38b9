#!/bin/bash
# Issue 9: the study on configs/study-fast.yaml (160² windows since commit 1a21ad6), seed 2, main fraction
# (10 % depth labels) first: every network trained from scratch by the study (F_R 3,000 iterations, F_D
# and the translator 1,000 each, then the gate on val and the joint arms). Runs after seed 0's 10 % arms, beside seed 1, on
# the other core, into the same OUT (each seed has its own folder; the report is rewritten by whichever run
# ends last, and a final run over every seed resumes all cells and writes the whole report). From the
# frozen worktree of 1a21ad6 (/work/study-tree2), so every seed runs the same code. Resumable: run again.
# OMP_NUM_THREADS=1: two one-thread jobs share the 2 cores without the two-thread collapse.
tree=${TREE:-/work/study-tree2}
cd "$tree"
OMP_NUM_THREADS=${THREADS:-1} PYTHONPATH="$tree/src" /work/main/.venv/bin/faceparse study -p study-fast \
  -o /work/exp/study-fast160/out --seeds 2 --fraction 0.1 data.root=/work/exp/synth192 run.eval_every=250 "$@"
