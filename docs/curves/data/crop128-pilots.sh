#!/bin/bash
# Demo-budget pilots at 192² data with 128² training windows (data.crop), RGB parser, 1,000-iteration
# schedules, two at once with one thread each.
cd "$(dirname "$0")/../../.."
common="data.root=${EXP:-/work/exp}/synth192 data.size=192 data.crop=128 data.scales=[0.75,1.0,1.25] parsers.iterations=1000 parsers.warmup_iters=50 run.progress=false run.eval_every=250 run.ckpt_every=250"
run() { name=$1; shift; echo "== $name $(date -u +%T)"; OMP_NUM_THREADS=1 .venv/bin/faceparse train -c synthetic pretrain-rgb $common run.out=${EXP:-/work/exp}/p2-$name "$@" > ${EXP:-/work/exp}/logs/p2-$name.log 2>&1; echo "   done $name $(date -u +%T) rc=$?"; }
run "$@"
