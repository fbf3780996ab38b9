#!/bin/bash
# Issue 9, study-fast at 160² windows: the study for some seeds, resumable (finished stages are skipped,
# cached evaluations reused). Usage: run-study.sh SEEDS [study options: --fraction F, --variant V,
# --flip-diagnostic]; SEEDS is one seed or a comma list (0,1,2: the final report over every seed). The
# main fraction (10 %) is always part of the cell. Same frozen code (/work/study-tree2, commit 1a21ad6),
# preset, data and overrides as study-fast160-seed{0,1,2}.sh. One thread: two one-thread jobs share the
# 2 cores without the two-thread collapse.
seeds=(); for s in ${1//,/ }; do seeds+=(--seeds "$s"); done; shift
tree=${TREE:-/work/study-tree2}
cd "$tree"
exec env OMP_NUM_THREADS="${THREADS:-1}" PYTHONPATH="$tree/src" /work/main/.venv/bin/faceparse study \
  -p study-fast -o /work/exp/study-fast160/out "${seeds[@]}" --fraction 0.1 \
  data.root=/work/exp/synth192 run.eval_every=250 "$@"
