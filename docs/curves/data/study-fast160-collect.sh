#!/usr/bin/env bash
# Copy finished cells' results into the main tree: cell json and val csvs (issue 9).
# Usage: collect.sh SEED FRACTION_PERCENT   (e.g. collect.sh 1 1  or  collect.sh 1 100)
set -euo pipefail
S=$1; F=$2
case $F in 1) C=0.01;; 10) C=0.1;; 100) C=1.0;; esac
OUT=/work/exp/study-fast160/out; D=/work/main/docs/curves/data
cp "$OUT/cell-seed$S-$C.json" "$D/study-fast160/"
base=$OUT/seed-$S/depth-$F
cp "$base/pretrain-depth/val.csv" "$D/study-fast160-seed$S-pretrain-depth$F-val.csv"
cp "$base/pretrain-translator/val.csv" "$D/study-fast160-seed$S-translator$F-val.csv"
cp "$base/control/joint/val.csv" "$D/study-fast160-seed$S-control$F-val.csv"
for arm in "$base"/*/; do
  a=$(basename "$arm"); case $a in pretrain-*|control) continue;; esac
  # Eq. 4 (joint) keeps its val.csv in its own folder; every other arm in ARM/joint/
  for v in "$arm/val.csv" "$arm/joint/val.csv"; do
    [ -f "$v" ] && cp "$v" "$D/study-fast160-seed$S-${a//-/}$F-val.csv"
  done
done
ls -l "$D"/study-fast160-seed$S-*$F-val.csv
