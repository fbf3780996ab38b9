#!/bin/bash
# Demo-scale pilots (RGB parser only, ~6.5 min each on 2 cores), run one at a time after the curve.
cd /work/main
while pgrep -f "run.out=/work/exp/curve128" >/dev/null; do sleep 10; done
common="data.root=/work/exp/synth128 run.progress=false run.eval_every=250"
run() { name=$1; shift; echo "== $name $(date -u +%T)"; OMP_NUM_THREADS=2 .venv/bin/faceparse train -c demo pretrain-rgb $common run.out=/work/exp/pilot-$name "$@" > /work/exp/logs/pilot-$name.log 2>&1; echo "   done $(date -u +%T) rc=$?"; }
run p0-default
run p1-batch4 parsers.batch_size=4 parsers.iterations=1000 parsers.warmup_iters=100
run p2-mildzoom "data.scales=[0.75,1.0,1.25]"
run p3-plainsgd parsers.head_lr_mult=1 parsers.decay_norms=true parsers.warmup_iters=0
