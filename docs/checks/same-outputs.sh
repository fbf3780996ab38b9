#!/bin/bash
# Same commands with two source trees; outputs into $2. Usage: run.sh SRC OUT
set -e
SRC=$1; OUT=$2; rm -rf $OUT; mkdir -p $OUT
export PYTHONPATH=$SRC OMP_NUM_THREADS=1
fp() { /work/main/.venv/bin/python -c "import sys; from faceparse.cli import main; sys.argv[0]='faceparse'; main()" "$@"; }
cd /work/main
fp synth --out $OUT/data --num 12 --size 32 --seed 0 >>$OUT/log.txt 2>&1
T="data.root=$OUT/data data.size=32 data.workers=0 data.depth_fraction=0.5 model.generator_ngf=4 model.discriminator_ndf=4 parsers.iterations=3 parsers.batch_size=2 translator.iterations=3 translator.batch_size=2 joint.iterations=3 joint.batch_size=4 run.out=$OUT/run run.accelerator=cpu run.log_every=1 run.progress=false"
fp train all $T >>$OUT/log.txt 2>&1
fp evaluate -c $OUT/run -b $OUT/run --split val -o $OUT/eval >>$OUT/log.txt 2>&1
mkdir -p $OUT/pred
fp predict -i $OUT/data/rgb -c $OUT/run -o $OUT/pred --overlay >>$OUT/log.txt 2>&1 || echo "predict failed"
fp export-onnx -c $OUT/run -o $OUT/parser.onnx --size 32 --tolerance 0.01 >>$OUT/log.txt 2>&1 || echo "export failed"
echo done
