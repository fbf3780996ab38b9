"""The progress convention (faceparse.utils.progress): ``on_progress(done, total, info)`` from library jobs,
and ``progress_bar`` drawing it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from faceparse.data.check import check_dataset
from faceparse.data.convert.celebamask import convert_celebamask
from faceparse.data.synth import generate_dataset
from faceparse.utils import progress as progress_mod
from faceparse.utils.progress import progress_bar
from fixtures_raw import make_celebamask


class Recorder:
    """An OnProgress callback that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, str]] = []

    def __call__(self, done: int, total: int, info: str) -> None:
        assert isinstance(done, int) and isinstance(total, int) and isinstance(info, str)
        self.calls.append((done, total, info))

    @property
    def done(self) -> list[int]:
        return [c[0] for c in self.calls]


def assert_well_formed(rec: Recorder, total: int, start: int = 0) -> None:
    """One call before the work (done = units already there), one per unit after, ending at total."""
    assert {c[1] for c in rec.calls} == {total}
    assert rec.done == list(range(start, total + 1))


def test_generate_dataset_reports_each_sample_and_resume(tmp_path):
    root = tmp_path / "s"
    rec = Recorder()
    generate_dataset(root, 5, size=32, seed=0, workers=1, on_progress=rec)
    assert_well_formed(rec, 5)
    assert {c[2] for c in rec.calls} == {"32px, 1 workers"}

    for kind in ("rgb", "depth", "label"):  # two samples lost: a resumed run starts at 3
        (root / kind / "000001.png").unlink()
    (root / "label" / "000004.png").unlink()
    rec = Recorder()
    generate_dataset(root, 5, size=32, seed=0, workers=1, on_progress=rec)
    assert_well_formed(rec, 5, start=3)

    rec = Recorder()  # nothing left to do: one call, already complete
    generate_dataset(root, 5, size=32, seed=0, workers=1, on_progress=rec)
    assert rec.calls == [(5, 5, "32px, 1 workers")]

    rec = Recorder()  # the same convention through check_dataset
    report = check_dataset(root, workers=1, on_progress=rec)
    assert report.ok and report.checked == 5
    assert_well_formed(rec, 5)
    assert {c[2] for c in rec.calls} == {""}


def test_converter_reports_bad_samples_as_info(tmp_path):
    raw = make_celebamask(tmp_path / "raw", bad=True)
    rec = Recorder()
    report = convert_celebamask(raw, tmp_path / "out", size=32, workers=1, on_progress=rec)
    n = len(report.outcomes)
    assert_well_formed(rec, n)
    # info after each sample: the running count of bad samples, "" while there is none
    expected, bad = [""], 0
    for o in report.outcomes:
        bad += o.status == "bad"
        expected.append(f"{bad} bad" if bad else "")
    assert [c[2] for c in rec.calls] == expected
    assert rec.calls[-1][2] == "3 bad" and "1 bad" in expected  # samples 3, 4 and 5 (6 never ran)

    rec = Recorder()  # resume: skipped samples count as done
    again = convert_celebamask(raw, tmp_path / "out", size=32, workers=1, on_progress=rec)
    assert {o.status for o in again.outcomes} == {"skipped", "bad"}
    assert_well_formed(rec, n)


def test_converter_in_parallel_reports_every_sample(tmp_path):
    raw = make_celebamask(tmp_path / "raw", n=5)
    rec = Recorder()
    convert_celebamask(raw, tmp_path / "out", size=32, workers=2, on_progress=rec)
    assert_well_formed(rec, 5)
    assert {c[2] for c in rec.calls} == {""}


def test_disabled_bar_yields_none():
    with progress_bar("anything", enabled=False) as on_progress:
        assert on_progress is None


@pytest.fixture
def captured(monkeypatch) -> io.StringIO:
    """Route the shared console into a buffer (not a terminal: the bar is printed once, when it stops)."""
    buf = io.StringIO()
    monkeypatch.setattr(progress_mod, "console", Console(file=buf, width=120, force_terminal=False))
    return buf


def test_bar_draws_the_callback(captured):
    with progress_bar("synth") as on_progress:
        assert on_progress is not None
        on_progress(2, 5, "")
        on_progress(3, 5, "32px, 2 workers")
    text = captured.getvalue()
    assert "synth" in text and "3/5" in text and "32px, 2 workers" in text


def test_bar_without_calls_draws_no_task(captured):
    with progress_bar("never used") as on_progress:
        assert on_progress is not None
    assert "never used" not in captured.getvalue()
