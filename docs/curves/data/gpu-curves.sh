#!/bin/bash
# One device call (one NVIDIA H200, 16 CPU cores): the train-step benchmark at 448², batch 8, on CUDA, then
# BiSeNet learning curves on the synthetic data at 128², 160² and 192², several schedule lengths, for
# both parsers, all at once (one process per run; the data loaders use the 16 cores). Precision is
# fp32 (32-true, cuDNN's default TF32 convolutions) so that the curves stand for the CPU recipe's
# arithmetic; the CPU minutes of a run are its iterations × the CPU seconds per step measured on the
# 2-core VM (docs/results.md). Run from the repository root with OUT set:
#   bash docs/curves/data/gpu-curves.sh
# Needs: python3 with torch (CUDA), numpy, opencv, typer, rich, safetensors, and omegaconf +
# lightning-fabric on PYTHONPATH (the device tool carries them as wheels).
set -u
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
FP=(python3 -c 'import sys; from faceparse.cli import main; sys.argv[0] = "faceparse"; main()')  # no install
W=/tmp/w; mkdir -p $W/logs
LIMIT=${LIMIT:-390}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "== bench $(date -u +%T)"
python3 benchmarks/train_step.py --device cuda --size 448 --batch 8 --steps 20 --rounds 3 --threads 4 2>&1 \
  | tee $OUT/bench-448-cuda.md
echo "== synth $(date -u +%T)"
timeout 60 "${FP[@]}" synth --out $W/synth128 --num 2000 --size 128 --workers 16 > $W/logs/synth128.log 2>&1 &
timeout 60 "${FP[@]}" synth --out $W/synth192 --num 2000 --size 192 --workers 16 > $W/logs/synth192.log 2>&1 &
wait
tail -n1 $W/logs/synth*.log
echo "== train $(date -u +%T)"
run() {  # name stage data size iterations workers
  local name=$1 stage=$2 data=$3 size=$4 its=$5 workers=$6
  local key=parsers.iterations
  [ "$stage" = pretrain-depth ] && key=parsers.depth_iterations
  timeout $LIMIT "${FP[@]}" train -c synthetic $stage data.root=$W/$data data.size=$size $key=$its data.workers=$workers \
    run.out=$W/runs/$name run.progress=false run.precision=32-true run.eval_every=500 run.ckpt_every=1000 \
    run.accelerator=cuda > $W/logs/$name.log 2>&1
  echo "   $name rc=$? $(date -u +%T)"
}
if [ "${SHORT:-0}" = 1 ]; then  # the second lease: 150 s of training left
run rgb128-3000 pretrain-rgb synth128 128 3000 2 &
run rgb160-4000 pretrain-rgb synth192 160 4000 4 &
run rgb192-4000 pretrain-rgb synth192 192 4000 5 &
run depth192-3000 pretrain-depth synth192 192 3000 3 &
else
run rgb128-3000 pretrain-rgb synth128 128 3000 1 &
run rgb128-6000 pretrain-rgb synth128 128 6000 2 &
run rgb160-6000 pretrain-rgb synth192 160 6000 3 &
run rgb192-4000 pretrain-rgb synth192 192 4000 2 &
run rgb192-8000 pretrain-rgb synth192 192 8000 4 &
run depth128-3000 pretrain-depth synth128 128 3000 1 &
run depth160-4000 pretrain-depth synth192 160 4000 1 &
run depth192-4000 pretrain-depth synth192 192 4000 2 &
fi
wait
echo "== pack $(date -u +%T)"
cd $W && tar czf $OUT/curves.tgz logs $(find runs -name val.csv -o -name "config*.yaml")
echo "== done $(date -u +%T)"
