#!/bin/bash
# While flip-cell.sh's lane B waits for F_R (no swap), re-create seed 0's F_D at 10 % (the main cell's),
# one thread: does re-created pre-training reproduce the committed val curve bit for bit?
cd "$(dirname "$0")"
until pgrep -f "flip-part.py 0 pretrain-translator" > /dev/null; do sleep 20; done
while pgrep -f "flip-part.py 0 pretrain-translator" > /dev/null; do sleep 20; done
echo "=== seed 0, 10 %: pretrain-depth ($(date -u +%FT%TZ))"
cd /work/study-tree2 && OMP_NUM_THREADS=1 PYTHONPATH=/work/study-tree2/src /work/main/.venv/bin/python \
  /work/exp/study-fast160/cell-part.py 0 0.1 pretrain-depth
echo "=== done ($(date -u +%FT%TZ))"
