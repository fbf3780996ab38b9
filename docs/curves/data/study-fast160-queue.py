"""Issue 9: run several study cells on two one-thread lanes, keeping both cores busy, and stop on time.

cell.sh runs one cell with a fixed split (lane A: F_R then arms; lane B: F_D and G then arms), which leaves
a lane idle while the other finishes F_R, and needs stopping by hand. This scheduler takes the session's
whole plan, turns it into stages with their dependencies, and gives each free lane the first stage whose
inputs are done: a cell's evaluation first, then the stages in plan order (F_R, F_D, G, arms). Every stage
is a `cell-part.py SEED CELL PART` process with OMP_NUM_THREADS=1 under the frozen tree, as in cell.sh,
so the folders, checkpoints and results are the same. Stages are resumable and finished ones are skipped,
so running the same plan again continues it.

Usage (from /work/exp/study-fast160, with main's venv python; stdlib only):
  lanes.py [--lanes 2] [--stop-at HH:MM] SEED:CELL:ARM[,ARM...] ...
  e.g. lanes.py --stop-at 02:05 1:0.01:control,joint 1:1.0:control,joint
CELL is 0.01, 0.1, 1.0 or flip. --stop-at (UTC, today or, if already past, tomorrow): at that time, and on
SIGTERM or SIGINT, each running stage gets SIGTERM (only the stage's main process, not its DataLoader
workers, which share its command line), saves a checkpoint and exits; then the queue exits.
Each lane logs to log-queue-<lane>.txt; the queue itself prints one line per start and end.
Committed as docs/curves/data/study-fast160-queue.py; runs beside cell-part.py as lanes.py (not queue.py:
cell-part.py runs from that folder, and a queue.py there shadows the standard library's queue for torch)."""

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = Path("/work/study-tree2")
PYTHON = "/work/main/.venv/bin/python"


@dataclass
class Stage:
    key: tuple
    argv: list[str]
    needs: list[tuple] = field(default_factory=list)
    state: str = "waiting"  # waiting | running | done | failed | skipped


def plan_stages(plans: list[str]) -> list[Stage]:
    """The stages of every cell in plan order, each F_R once per seed and flip setting."""
    stages: dict[tuple, Stage] = {}
    evals: list[Stage] = []
    for plan in plans:
        try:
            seed, cell, arms_text = plan.split(":")
            arms = [a for a in arms_text.split(",") if a]
            int(seed)
            if cell != "flip":
                float(cell)
        except ValueError:
            sys.exit(f"bad plan {plan!r}: expected SEED:CELL:ARM[,ARM...], e.g. 1:0.01:control,joint")
        if not arms:
            sys.exit(f"bad plan {plan!r}: no arms")
        rgb = ("rgb", seed, cell == "flip")
        depth, translator = ("depth", seed, cell), ("translator", seed, cell)
        stages.setdefault(rgb, Stage(rgb, [seed, cell, "pretrain-rgb"]))
        stages.setdefault(depth, Stage(depth, [seed, cell, "pretrain-depth"]))
        stages.setdefault(translator, Stage(translator, [seed, cell, "pretrain-translator"]))
        for arm in arms:
            key = ("arm", seed, cell, arm)
            stages.setdefault(key, Stage(key, [seed, cell, arm], [rgb, depth, translator]))
        needs = [("arm", seed, cell, a) for a in arms]
        evals.append(Stage(("eval", seed, cell), [seed, cell, "evaluate", *arms], needs))
    return evals + list(stages.values())


def stop_time(text: str | None) -> float | None:
    if text is None:
        return None
    now = dt.datetime.now(dt.UTC)
    hour, minute = (int(x) for x in text.split(":"))
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at += dt.timedelta(days=1)
    return at.timestamp()


def say(text: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--stop-at", help="HH:MM UTC: checkpoint every running stage and exit")
    parser.add_argument("plans", nargs="+")
    args = parser.parse_args()
    stages = plan_stages(args.plans)
    by_key = {s.key: s for s in stages}
    deadline = stop_time(args.stop_at)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running: dict[int, tuple[Stage, subprocess.Popen, object]] = {}  # lane → stage, process, log
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TREE / "src")}
    while True:
        if deadline is not None and time.time() >= deadline and not stopping:
            say("stop time reached")
            stopping = True
        for lane, (stage, proc, log) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            log.close()
            del running[lane]
            if stopping:
                stage.state = "waiting"
                say(f"lane {lane}: {' '.join(stage.argv)} stopped (rc {rc})")
            else:
                stage.state = "done" if rc == 0 else "failed"
                say(f"lane {lane}: {' '.join(stage.argv)} {stage.state} (rc {rc})")
        if stopping:
            for stage, proc, _ in running.values():
                if proc.poll() is None and stage.state == "running":
                    proc.send_signal(signal.SIGTERM)
                    stage.state = "stopping"
            if not running:
                break
            time.sleep(2)
            continue
        for stage in stages:  # a stage whose input failed cannot run
            failed = any(by_key[k].state in ("failed", "skipped") for k in stage.needs)
            if stage.state == "waiting" and failed:
                stage.state = "skipped"
                say(f"skipped {' '.join(stage.argv)}: an input failed")
        for lane in range(args.lanes):
            if lane in running:
                continue
            ready = [
                s for s in stages if s.state == "waiting" and all(by_key[k].state == "done" for k in s.needs)
            ]
            if not ready:
                break
            stage = ready[0]
            log = open(HERE / f"log-queue-{lane}.txt", "a")
            log.write(f"=== {' '.join(stage.argv)} ({dt.datetime.now(dt.UTC):%FT%TZ})\n")
            log.flush()
            proc = subprocess.Popen(
                [PYTHON, str(HERE / "cell-part.py"), *stage.argv],
                cwd=TREE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stage.state = "running"
            running[lane] = (stage, proc, log)
            say(f"lane {lane}: {' '.join(stage.argv)} started (pid {proc.pid})")
        if not running:
            break
        time.sleep(5)
    left = [" ".join(s.argv) for s in stages if s.state != "done"]
    say("all stages done" if not left else "not done: " + "; ".join(left))
    sys.exit(0 if not left else 1)


if __name__ == "__main__":
    main()
