#!/bin/bash
# Does the demo's budget recipe (128² windows of 192² heads, Adam) reach the competence gate, and when?
# RGB parser: a 2,000-iteration schedule; depth parser: 1,000. Validation every 250 iterations.
# Resumable: run it again and each stage continues from its last checkpoint.
set -eu
cd "$(dirname "$0")/../../.."
EXP=${EXP:-/work/exp}
[ -f $EXP/synth192/dataset.json ] || .venv/bin/faceparse synth --out $EXP/synth192 --num 2000 --size 192
common=(data.root=$EXP/synth192 run.out=$EXP/adam-recipe run.progress=false run.eval_every=250
  parsers.iterations=2000 parsers.depth_iterations=1000 parsers.warmup_iters=50 run.ckpt_every=250)
for stage in pretrain-rgb pretrain-depth; do
  OMP_NUM_THREADS=2 .venv/bin/faceparse train -c demo $stage "${common[@]}" "$@"
done
