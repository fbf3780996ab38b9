#!/bin/bash
cd /work/main
while pgrep -f "pilots.sh" >/dev/null; do sleep 10; done
echo "== depth curve $(date -u +%T)"
OMP_NUM_THREADS=2 .venv/bin/faceparse train -c synthetic pretrain-depth data.root=/work/exp/synth128 run.out=/work/exp/curve128 run.progress=false parsers.iterations=1500 > /work/exp/logs/curve128-depth.log 2>&1
echo "   done $(date -u +%T) rc=$?"
