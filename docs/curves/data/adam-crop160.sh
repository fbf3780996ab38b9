#!/bin/bash
# Pilot (issue 9): the study-fast recipe ended its 3,000-iteration RGB schedule with l_brow 49.9 < 50
# (gate met at 2,750). Do 160² windows of the 192² heads (1.56× the pixels per step) lift the brows
# clear of the gate? Same data, seed and schedule as the study's seed 0, only data.crop=160.
# Resumable: run it again.
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=2 .venv/bin/faceparse train -c study-fast pretrain-rgb --resume data.root=/work/exp/synth192 \
  data.workers=1 run.out=/work/exp/adam-crop160 run.progress=false run.eval_every=250 run.ckpt_every=250 \
  data.crop=160
