"""Interrupting jobs that run worker processes (faceparse.utils.workers): `synth` and the converters' pool.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group, parent and workers alike; these
tests do the same (``os.killpg``) to a job started in its own session, twice in quick succession, and check
that the job ends promptly with a clean message, leaves no process of its group behind and no temporary
file, and that running it again resumes and completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from faceparse.data.synth import generate_dataset

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")

STOP_WITHIN_S = 20.0  # the pool's own bound is a few seconds; generous for a loaded 2-core machine
CLI = [sys.executable, "-c", "from faceparse.cli import main; main()"]


def group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of process group ``pgid``, as ``pid state`` strings, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            found.append(f"{entry.name} {state}")
    return found


def start(args: list[str]) -> subprocess.Popen:
    """Start ``args`` in a new session (its own process group, like a terminal job), output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    return subprocess.Popen(
        args, start_new_session=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the job ended before it was interrupted:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the job did not start in time")
        time.sleep(0.02)


def ctrl_c_twice(proc: subprocess.Popen, gap: float = 0.05) -> tuple[int, str, float]:
    """Two Ctrl-Cs to the job's whole group; returns (exit code, output, seconds to end). A job that does
    not end in time is killed (group-wide) and fails the test."""
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(gap)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        left = group_members(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"still running {STOP_WITHIN_S}s after two Ctrl-Cs (group: {left}):\n{output}")
    return proc.returncode, output, time.monotonic() - sent


def assert_ended_cleanly(proc: subprocess.Popen, code: int, output: str) -> None:
    deadline = time.monotonic() + 5  # the kernel reaps a killed worker a moment after its parent exits
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(proc.pid) == [], "orphaned processes"
    assert code == 130, output
    assert "Traceback" not in output, output
    assert "interrupted" in output, output


def test_two_ctrl_c_stop_synth_promptly_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "synth"
    args = [*CLI, "synth", "--out", str(out), "--num", "40", "--size", "32", "--seed", "3", "--workers", "2"]
    proc = start(args)
    wait_for(lambda: len(list(out.glob("rgb/*.png"))) >= 4, 60, proc)

    code, output, took = ctrl_c_twice(proc)

    assert_ended_cleanly(proc, code, output)
    assert "run the same command again to resume" in " ".join(output.split())  # rich wraps lines
    assert not list(out.rglob(".*.tmp*")), "temporary files left behind"
    assert not (out / "dataset.json").exists()  # written only once every sample is there
    done = len(list(out.glob("label/*.png")))
    assert 0 < done < 40, f"{done} samples: the interrupt came too late to test anything"

    info = generate_dataset(out, 40, size=32, seed=3, workers=2)  # resumes, then completes
    assert sum(info.counts.values()) == 40
    assert len(list(out.glob("meta/*.json"))) == 40


SLOW_CONVERSION = """
import signal, sys, time
from pathlib import Path
from faceparse.data.convert.common import ConvertReport, Job, Outcome, Provenance, RunOptions
from faceparse.data.convert.common import convert_and_finish
from faceparse.utils.io import atomic_write_text

def convert_one(job):
    (out,) = job.outputs
    time.sleep(0.02)  # a slow sample
    atomic_write_text(out, job.sid)
    return Outcome(job.sid, job.split, "written")

if __name__ == "__main__":
    out = Path(sys.argv[1])
    jobs = [Job(f"{i:03d}", "train", out, (out / f"{i:03d}.txt",)) for i in range(150)]
    provenance, report = Provenance("slow", "celebamask13", "slow", {}), ConvertReport("slow")
    try:
        convert_and_finish(jobs, convert_one, report, out, out, provenance, RunOptions(workers=2))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the CLI does: the second Ctrl-C may come late
        print("interrupted")
        sys.exit(130)
    statuses = [o.status for o in report.outcomes]
    print("written", statuses.count("written"), "skipped", statuses.count("skipped"))
"""


@pytest.mark.parametrize("gap", [0.05, 0.3])  # the second Ctrl-C during the first one's cleanup, or after
def test_two_ctrl_c_stop_a_conversion_promptly_and_a_rerun_resumes(tmp_path, gap):
    out = tmp_path / "converted"
    out.mkdir()
    script = tmp_path / "convert.py"
    script.write_text(textwrap.dedent(SLOW_CONVERSION))
    proc = start([sys.executable, str(script), str(out)])
    wait_for(lambda: len(list(out.glob("*.txt"))) >= 4, 60, proc)

    code, output, took = ctrl_c_twice(proc, gap)

    assert_ended_cleanly(proc, code, output)
    assert took < 5, f"took {took:.1f}s to stop: the pool waited for its queue instead of stopping"
    assert not list(out.rglob(".*.tmp*")), "temporary files left behind"
    done = {p.stem for p in out.glob("*.txt")}
    assert all((out / f"{sid}.txt").read_text() == sid for sid in done)  # whole files only
    assert 0 < len(done) < 150

    rerun = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.stdout.split() == ["written", str(150 - len(done)), "skipped", str(len(done))]
