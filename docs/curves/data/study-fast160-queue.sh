#!/bin/bash
# Issue 9: the rest of the study as two queues, one per core, in the order of what matters most:
# the main cells of seeds 0-2 (Tables 2-4 and 7, light levels), the readings of Eq. 4 on every seed,
# Figure 7's other fractions (1 %, 100 %), the flip diagnostic. Each step is resumable; a step that fails
# (e.g. a seed missing the competence gate) is logged and the queue goes on. Usage: queue.sh a|b.
# Stop for the session: the queues first (so they start no next step), then SIGTERM to the study main
# processes only (each saves a checkpoint; a killed DataLoader worker would make its main process crash):
#   pkill -f '^bash queue.sh [ab]$'   # (started from this folder as 'bash queue.sh a')
#   for p in $(pgrep -f 'faceparse study'); do
#     pgrep -f 'faceparse study' | grep -qx "$(ps -o ppid= -p $p | tr -d ' ')" || kill -TERM $p; done
# Lives in /work/exp/study-fast160 beside run-study.sh (committed as docs/curves/data/study-fast160-{queue,run-study}.sh).
cd "$(dirname "$0")"
variants=(--variant ml-kl --variant ml-probs --variant ml-gated --variant ml-confident --variant ml-warmup
  --variant depth-bn-separate)
fractions=(--fraction 0.01 --fraction 1.0)
step() {
  echo "=== queue $queue: run-study.sh $* ($(date -u +%FT%TZ))"
  bash run-study.sh "$@" || echo "=== queue $queue: FAILED (rc $?): run-study.sh $*"
}
queue=$1
case "$queue" in
  a) step 1; step 0 "${variants[@]}"; step 1 "${variants[@]}"; step 0 "${fractions[@]}"
     step 0 --flip-diagnostic; step 2 "${fractions[@]}" ;;
  b) step 2; step 2 "${variants[@]}"; step 1 "${fractions[@]}"; step 1 --flip-diagnostic
     step 2 --flip-diagnostic ;;
  *) echo "usage: queue.sh a|b" >&2; exit 2 ;;
esac
echo "=== queue $queue: done ($(date -u +%FT%TZ))"
