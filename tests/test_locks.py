"""One writer per output folder (faceparse.utils.locks): a second `synth` or `prepare` into a folder that
another process is writing is refused, naming the folder and the holder's pid; a lock whose holder was
killed does not block; and a resumed conversion must use the options it was started with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.data.convert.celebamask import convert_celebamask
from faceparse.data.convert.common import MARKER as PREPARE_MARKER
from faceparse.data.convert.lapa import convert_lapa
from faceparse.data.synth import generate_dataset
from faceparse.utils.io import DataError
from faceparse.utils.locks import LOCK_FILE, folder_lock
from fixtures_raw import make_celebamask, make_lapa

HOLD = """
import sys, time
from faceparse.utils.locks import folder_lock
with folder_lock(sys.argv[1], "test holder"):
    print("held", flush=True)
    time.sleep(120)
"""


def hold(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_synth_into_a_busy_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "synth"
    first = subprocess.Popen(
        [sys.executable, "-c", "from faceparse.cli import main; main()", "synth", "--out", str(out)]
        + ["--num", "500", "--size", "32", "--seed", "0", "--workers", "1"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("rgb/*.png")):
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.02)
        # the race of the issue: another seed into the same folder while the first run writes it
        with pytest.raises(DataError, match=rf"{out}: in use by another process \(pid {first.pid}: "):
            generate_dataset(out, 500, size=32, seed=1, workers=1)
        result = CliRunner().invoke(
            app, ["synth", "--out", str(out), "--num", "500", "--size", "32", "--seed", "1", "--workers", "1"]
        )
        assert result.exit_code == 2
        assert f"pid {first.pid}: faceparse synth" in " ".join(result.output.split())
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(30)
    assert not (out / "dataset.json").exists()
    assert (out / LOCK_FILE).read_text() == ""  # released: it names nobody


def test_a_conversion_into_a_busy_folder_is_refused_and_a_killed_holder_blocks_nobody(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "lapa"
    make_lapa(raw)
    holder = hold(out)
    try:
        busy = rf"{out}: in use by another process \(pid {holder.pid}: test holder"
        with pytest.raises(DataError, match=busy):
            convert_lapa(raw, out, workers=1)
    finally:
        holder.kill()  # no chance to clean up: the kernel releases its lock
        holder.communicate(timeout=30)
    report = convert_lapa(raw, out, workers=1)
    assert not report.bad and (out / "dataset.json").is_file()


def test_the_same_process_may_take_a_folder_it_holds(tmp_path):
    with folder_lock(tmp_path / "f", "outer") as folder, folder_lock(folder, "inner"):
        assert '"job": "outer"' in (folder / LOCK_FILE).read_text()
    assert (folder / LOCK_FILE).read_text() == ""


def test_an_unfinished_conversion_resumes_only_with_its_own_options(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "celeba"
    make_celebamask(raw)
    convert_celebamask(raw, out, size=32, workers=1)
    (out / "dataset.json").unlink()  # as if interrupted: samples written, dataset.json not yet
    with pytest.raises(DataError, match=rf"{PREPARE_MARKER}: this folder was prepared with other options"):
        convert_celebamask(raw, out, size=16, workers=1)  # would mix 32² and 16² samples
    convert_celebamask(raw, out, size=32, workers=1)  # the same options resume
    convert_celebamask(raw, out, size=16, workers=1, overwrite=True)  # --overwrite redoes every sample


def test_a_depth_import_into_a_busy_dataset_is_refused(tmp_path):
    data = tmp_path / "data"
    holder = hold(data)
    try:
        result = CliRunner().invoke(
            app, ["depth", "import-released", "--src", str(tmp_path / "zip"), "--data", str(data)]
        )
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert result.exit_code == 2
    assert f"in use by another process (pid {holder.pid}: test holder" in " ".join(result.output.split())


def test_a_second_training_of_a_stage_being_trained_is_refused(tiny_data, tmp_path):
    from faceparse.engine import train
    from tiny import tiny_overrides

    holder = hold(tmp_path / "run" / "pretrain-rgb")
    try:
        with pytest.raises(DataError, match=rf"pretrain-rgb: in use by another process \(pid {holder.pid}: "):
            train(None, "pretrain-rgb", overrides=tiny_overrides(tiny_data, tmp_path / "run"))
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    train(None, "pretrain-rgb", overrides=tiny_overrides(tiny_data, tmp_path / "run"))  # free again


def test_a_released_lock_is_free_while_processes_forked_under_it_linger(tmp_path):
    """DataLoader or pool workers forked while the lock was held share its open file: releasing it must
    not wait for them to exit."""
    import multiprocessing

    with folder_lock(tmp_path / "f", "parent") as folder:
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        child.start()
    try:
        with folder_lock(folder, "next"):  # a new open file: refused if the child still held the lock
            pass
    finally:
        child.kill()
        child.join()
