#!/bin/bash
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=2 .venv/bin/faceparse train -c demo pretrain-rgb data.root=/work/exp/synth192 run.out=/work/exp/adam-rgb2500 run.progress=false run.eval_every=250 parsers.iterations=2500 parsers.warmup_iters=50 run.ckpt_every=250
