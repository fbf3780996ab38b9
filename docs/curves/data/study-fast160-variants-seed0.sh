#!/bin/bash
# Issue 9: the readings of Eq. 4 that the paper leaves open (docs/method.md), on seed 0 at 10 % depth labels,
# each a 500-iteration joint arm from the same pre-trained triple, against the same control (already
# trained). Same frozen code (/work/study-tree2, commit 1a21ad6), preset, data and overrides as
# run.sh: the study finds the four Table 7 arms complete and trains only the variants. Resumable.
tree=${TREE:-/work/study-tree2}
cd "$tree"
OMP_NUM_THREADS=${THREADS:-1} PYTHONPATH="$tree/src" /work/main/.venv/bin/faceparse study -p study-fast \
  -o /work/exp/study-fast160/out --seeds 0 --fraction 0.1 data.root=/work/exp/synth192 run.eval_every=250 \
  --variant ml-kl --variant ml-probs --variant ml-gated --variant ml-confident --variant ml-warmup \
  --variant depth-bn-separate "$@"
