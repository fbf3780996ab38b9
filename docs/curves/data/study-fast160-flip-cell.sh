#!/bin/bash
# Issue 9: the flip diagnostic's cell of one seed on two one-thread lanes (the study runs a cell's stages
# one after another; this runs the same stages, same folders, two at a time). Lane A: F_R (no swap), then
# the control; lane B: F_D and G (no swap), then, once F_R is done, the joint phase. Then the evaluations.
# Resumable: run it again. Usage: flip-cell.sh SEED. Lives in /work/exp/study-fast160 (committed as
# docs/curves/data/study-fast160-flip-cell.sh beside study-fast160-flip-part.py).
# Stop: pkill -f '^bash flip-cell.sh'; then SIGTERM to the python processes (each saves a checkpoint).
cd "$(dirname "$0")"
seed=$1; here=$PWD; tree=/work/study-tree2
part() {
  echo "=== seed $seed: $1 ($(date -u +%FT%TZ))"
  (cd "$tree" && OMP_NUM_THREADS=1 PYTHONPATH="$tree/src" /work/main/.venv/bin/python "$here/flip-part.py" "$seed" "$1")
}
rm -f "flip-$seed-rgb.done"
( part pretrain-rgb && touch "flip-$seed-rgb.done" && part control ) >> "log-flip-$seed-a.txt" 2>&1 &
a=$!
( part pretrain-depth && part pretrain-translator && until [ -f "flip-$seed-rgb.done" ]; do sleep 30; done \
  && part joint ) >> "log-flip-$seed-b.txt" 2>&1 &
b=$!
wait $a; ra=$?; wait $b; rb=$?
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then part evaluate >> "log-flip-$seed-a.txt" 2>&1; else echo "lanes failed: $ra $rb"; fi
echo "=== seed $seed: flip cell done ($(date -u +%FT%TZ))"
