#!/bin/bash
# Issue 9: the study on configs/study-fast.yaml, seed 0, main fraction (10 % depth labels) first.
# Resumable: run it again. Run on 2026-11-30 from commit 2653150 (a frozen worktree, so that edits could
# not change the code under the running job), out = /work/exp/study-fast/out.
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=2 .venv/bin/faceparse study -p study-fast -o runs/study-fast --seeds 0 --fraction 0.1 \
  run.eval_every=250 "$@"
