#!/bin/bash
# The joint-phase control pilot (docs/results.md): 30 joint iterations from the pre-trained stages of the
# demo-preset pilot /work/exp/demo1 (700 / 350 / 100 its), symlinked into each /work/exp/jt-NAME first.
cd "$(dirname "$0")/../../.."
c="data.root=/work/exp/demo1/data run.progress=false run.eval_every=0 joint.iterations=30"
OMP_NUM_THREADS=2 .venv/bin/faceparse train -c demo joint $c run.out=/work/exp/jt-control joint.lambda1=0 joint.lambda2=0
OMP_NUM_THREADS=2 .venv/bin/faceparse train -c demo joint $c run.out=/work/exp/jt-warm joint.warmup_iters=10
for d in jt-control jt-warm; do OMP_NUM_THREADS=2 .venv/bin/faceparse evaluate -c /work/exp/$d/joint --split test > /work/exp/logs/$d-eval.txt 2>&1; done
echo done
