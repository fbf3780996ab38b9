#!/bin/bash
# The RGB parser at 192², 4,000 iterations, on the 2-core CPU VM: the CPU check of the recipe that the
# GPU curves (gpu-curves.sh) point to. Resumable: run it again and it continues from the last checkpoint.
set -eu
cd "$(dirname "$0")/../../.."
EXP=${EXP:-/work/exp}
[ -f $EXP/synth192/dataset.json ] || .venv/bin/faceparse synth --out $EXP/synth192 --num 2000 --size 192
OMP_NUM_THREADS=2 .venv/bin/faceparse train -c synthetic pretrain-rgb data.root=$EXP/synth192 data.size=192 \
  parsers.iterations=4000 run.out=$EXP/cpu192 run.progress=false "$@"
