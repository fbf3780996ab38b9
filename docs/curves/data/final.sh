#!/bin/bash
# After the depth curve: the demo from a fresh clone (as a newcomer), then the benchmarks. One at a time.
while pgrep -f "depthcurve.sh" >/dev/null; do sleep 10; done
rm -rf /tmp/fresh && git clone -q /work/main /tmp/fresh && cd /tmp/fresh
echo "== make venv $(date -u +%T)"; /usr/bin/time -f "venv wall %e s" make venv > /work/exp/logs/fresh-venv.log 2>&1; tail -1 /work/exp/logs/fresh-venv.log
echo "== make demo $(date -u +%T)"; /usr/bin/time -f "demo wall %e s user %U s" make demo > /work/exp/logs/fresh-demo.log 2>&1; echo "rc=$?"; tail -1 /work/exp/logs/fresh-demo.log
echo "== precisions $(date -u +%T)"
.venv/bin/python benchmarks/train_step.py --precisions --size 128 --batch 8 --steps 2 --rounds 1 > /work/exp/logs/bench-precisions.log 2>&1
echo "== train_step 448 $(date -u +%T)"
.venv/bin/python benchmarks/train_step.py --size 448 --batch 8 --steps 2 --rounds 2 --skip-joint > /work/exp/logs/bench-448.log 2>&1
echo "== done $(date -u +%T)"
