#!/bin/bash
# Issue 9: one study cell on two one-thread lanes, then its evaluation and out/cell-seed<S>-<CELL>.json.
# Usage: cell.sh SEED CELL ARM...   (CELL: 0.01 | 0.1 | 1.0 | flip; ARMs: control joint no-ml ml-kl ...)
# Lane A: F_R, then ARMs 1, 3, 5...; lane B: F_D and G, then (once F_R is done) ARMs 2, 4, 6...
# Resumable: run it again (finished stages are skipped). Lives in /work/exp/study-fast160 beside
# cell-part.py (committed as docs/curves/data/study-fast160-cell{,-part}.{sh,py}).
# Stop: pkill -f '^bash cell.sh'; then SIGTERM to the cell-part.py main processes only (each saves a
# checkpoint; a killed DataLoader worker, which shares the command line, crashes its run instead):
#   for p in $(pgrep -f cell-part.py); do
#     pgrep -f cell-part.py | grep -qx "$(ps -o ppid= -p $p | tr -d ' ')" || kill -TERM $p; done
cd "$(dirname "$0")"
seed=$1; cell=$2; shift 2; arms=("$@"); here=$PWD; tree=/work/study-tree2
tag="$seed-$cell"
part() {
  echo "=== seed $seed, $cell: $* ($(date -u +%FT%TZ))"
  (cd "$tree" && OMP_NUM_THREADS=1 PYTHONPATH="$tree/src" /work/main/.venv/bin/python "$here/cell-part.py" \
    "$seed" "$cell" "$@")
}
lane_a=(); lane_b=()
for i in "${!arms[@]}"; do if (( i % 2 == 0 )); then lane_a+=("${arms[$i]}"); else lane_b+=("${arms[$i]}"); fi; done
rm -f "cell-$tag-rgb.done"
(
  part pretrain-rgb && touch "cell-$tag-rgb.done" || exit 1
  for arm in "${lane_a[@]}"; do part "$arm" || exit 1; done
) >> "log-cell-$tag-a.txt" 2>&1 &
a=$!
(
  part pretrain-depth && part pretrain-translator || exit 1
  until [ -f "cell-$tag-rgb.done" ]; do kill -0 $a 2>/dev/null || exit 1; sleep 30; done
  for arm in "${lane_b[@]}"; do part "$arm" || exit 1; done
) >> "log-cell-$tag-b.txt" 2>&1 &
b=$!
wait $a; ra=$?; wait $b; rb=$?
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
  part evaluate "${arms[@]}" >> "log-cell-$tag-a.txt" 2>&1 && echo "=== cell $tag done ($(date -u +%FT%TZ))"
else
  echo "=== cell $tag: a lane failed or stopped (rc $ra, $rb); run again to resume"
fi
