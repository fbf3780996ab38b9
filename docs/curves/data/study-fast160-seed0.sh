#!/bin/bash
# Issue 9: the study on configs/study-fast.yaml (160² windows since commit 1a21ad6), seed 0, main fraction
# (10 % depth labels) first. F_R is the crop-160 pilot's (docs/curves/data/adam-crop160.sh: the same
# preset, data, seed and schedule), copied into OUT/seed-0/pretrain-rgb before the first run, so the study
# finds it complete. Run from a frozen worktree of 1a21ad6 (/work/study-tree2) so that edits to main
# cannot change the code under the running job. Resumable: run it again.
# OMP_NUM_THREADS=1: other jobs share the 2 cores; two threads collapse under contention.
tree=${TREE:-/work/study-tree2}
cd "$tree"
OMP_NUM_THREADS=${THREADS:-1} PYTHONPATH="$tree/src" /work/main/.venv/bin/faceparse study -p study-fast \
  -o /work/exp/study-fast160/out --seeds 0 --fraction 0.1 data.root=/work/exp/synth192 run.eval_every=250 "$@"
