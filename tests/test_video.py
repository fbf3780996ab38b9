"""faceparse.inference.video: `predict` on a video file or a folder of frames (issue 12, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from faceparse.data.format import read_label, write_rgb
from faceparse.inference import face_parser, overlay
from faceparse.inference.video import open_clip, predict_video
from faceparse.utils.io import DataError
from test_inference import SCHEME

SIZE, FPS, SECONDS = 64, 10, 2
FRAMES = FPS * SECONDS


@pytest.fixture(scope="module")
def rgb_parser(run_dir):
    return face_parser(run_dir, "rgb", batch_size=4)


def _heads(n: int = FRAMES, size: int = SIZE) -> list[np.ndarray]:
    """A synthetic head (skin disc, hair cap, nose) moving left to right over a dark background."""
    yy, xx = np.mgrid[:size, :size]
    frames = []
    for k in range(n):
        cx, cy, r = size * (0.3 + 0.4 * k / max(n - 1, 1)), size * 0.5, size * 0.25
        d = np.hypot(xx - cx, yy - cy)
        rgb = np.full((size, size, 3), 20, np.uint8)
        rgb[d < r] = (224, 172, 140)  # skin
        rgb[(d < r) & (yy < cy - 0.4 * r)] = (60, 40, 30)  # hair
        rgb[d < 0.2 * r] = (200, 140, 110)  # nose
        frames.append(rgb)
    return frames


def _write_video(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v", fps: float = FPS) -> Path:
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames, fps


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", _heads())


def test_a_two_second_video_is_parsed_into_label_maps_and_an_overlay_video(rgb_parser, clip, tmp_path):
    """Issue 12's acceptance: 2 s of synthetic heads → 20 label maps, an overlay video, the JSON."""
    ticks: list[tuple[int, int, str]] = []
    report = predict_video(rgb_parser, clip, tmp_path, on_progress=lambda *a: ticks.append(a))
    assert (report.frames, report.parsed, report.kept, report.problems) == (FRAMES, FRAMES, 0, [])
    decoded = [rgb for _, rgb in open_clip(clip).frames()]  # what the parser saw: RGB, not OpenCV's BGR
    assert len(decoded) == FRAMES and np.abs(decoded[0].astype(int) - _heads()[0]).mean() < 8
    expected = rgb_parser(decoded, keep_logits=False)["labels"]
    labels = [read_label(tmp_path / "clip" / f"frame-{k:06d}.png") for k in range(FRAMES)]
    names = [f"frame-{k:06d}.png" for k in range(FRAMES)]
    assert sorted(p.name for p in (tmp_path / "clip").iterdir()) == names
    assert all(np.array_equal(a, b) for a, b in zip(labels, expected, strict=True))

    frames, fps = _read_video(report.overlay)
    assert report.overlay == tmp_path / "clip.overlay.mp4"
    assert len(frames) == FRAMES and fps == FPS and frames[0].shape == (SIZE, SIZE, 3)
    for shown, rgb, label in zip(frames, decoded, labels, strict=True):  # lossy codec: close, not equal
        error = np.abs(shown.astype(int) - overlay(rgb, label, SCHEME)).mean()
        assert error < 12 and error < np.abs(shown.astype(int) - rgb).mean() / 2  # the overlay, not the frame

    summary = json.loads((tmp_path / "clip.json").read_text())
    assert summary["complete"] and summary["fps"] == FPS and summary["frame_count"] == FRAMES
    assert (summary["width"], summary["height"], summary["frames_declared"]) == (SIZE, SIZE, FRAMES)
    assert summary["classes"] == list(SCHEME.classes) and summary["overlay"] == "clip.overlay.mp4"
    record = {"name": "frame-000003", "label": "clip/frame-000003.png", "box": None, "score": None}
    assert summary["frames"][3] == record
    assert ticks[0][0] == 0 and ticks[-1][:2] == (FRAMES, FRAMES)
    assert [t[0] for t in ticks] == sorted(t[0] for t in ticks)  # done never decreases
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporaries left


def test_the_front_door_parses_a_video_path(rgb_parser, clip, tmp_path):
    """``parser("clip.mp4")``: every frame, as predict_video writes them, with frame names and fps."""
    out = rgb_parser(clip, keep_logits=False)
    assert out["fps"] == FPS and out["frames"] == [f"frame-{k:06d}" for k in range(FRAMES)]
    predict_video(rgb_parser, clip, tmp_path)
    written = [read_label(tmp_path / "clip" / f"{name}.png") for name in out["frames"]]
    assert len(out["labels"]) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(out["labels"], written, strict=True))


class _Counting:
    """Wraps a parser, counting the frames it is asked to parse."""

    def __init__(self, parser) -> None:
        self.parser, self.seen = parser, 0

    def __getattr__(self, name):
        return getattr(self.parser, name)

    def __call__(self, images, **kwargs):
        self.seen += len(images)
        return self.parser(images, **kwargs)


def test_a_rerun_parses_only_missing_frames_and_rebuilds_the_whole_overlay(rgb_parser, clip, tmp_path):
    predict_video(rgb_parser, clip, tmp_path)
    first = {p.name: p.read_bytes() for p in (tmp_path / "clip").iterdir()}
    for k in (0, 7, 19):
        (tmp_path / "clip" / f"frame-{k:06d}.png").unlink()
    (tmp_path / "clip.overlay.mp4").unlink()
    counting = _Counting(rgb_parser)
    report = predict_video(counting, clip, tmp_path)
    assert (counting.seen, report.parsed, report.kept, report.frames) == (3, 3, 17, FRAMES)
    assert {p.name: p.read_bytes() for p in (tmp_path / "clip").iterdir()} == first
    assert len(_read_video(report.overlay)[0]) == FRAMES
    again = predict_video(counting, clip, tmp_path, overwrite=True)
    assert again.parsed == FRAMES and again.kept == 0


def test_an_interrupted_run_leaves_no_partial_video_and_resumes(rgb_parser, clip, tmp_path):
    def stop(done: int, total: int, info: str) -> None:
        if done == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_video(rgb_parser, clip, tmp_path, on_progress=stop)
    assert not (tmp_path / "clip.overlay.mp4").exists()  # the video is renamed into place only when whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nor a temporary left behind
    done = len(list((tmp_path / "clip").iterdir()))
    assert 9 <= done < FRAMES
    assert json.loads((tmp_path / "clip.json").read_text())["complete"] is False
    counting = _Counting(rgb_parser)
    report = predict_video(counting, clip, tmp_path)
    assert counting.seen == FRAMES - done and report.kept == done
    assert len(_read_video(report.overlay)[0]) == FRAMES
    assert json.loads((tmp_path / "clip.json").read_text())["complete"] is True


def test_detected_boxes_are_recorded_and_kept_on_resume(rgb_parser, clip, tmp_path):
    rgb_parser.detector = lambda rgb: ((4, 2, 48), 0.75)
    try:
        predict_video(rgb_parser, clip, tmp_path, detect=True)
        summary = json.loads((tmp_path / "clip.json").read_text())
        assert summary["detect"] and len(summary["frames"]) == FRAMES
        assert summary["frames"][5]["box"] == [4, 2, 48] and summary["frames"][5]["score"] == 0.75
        label = read_label(tmp_path / "clip" / "frame-000005.png")
        assert not label[:, :4].any() and not label[50:].any()  # background outside the crop
        counting = _Counting(rgb_parser)
        predict_video(counting, clip, tmp_path, detect=True)
        assert counting.seen == 0  # boxes come from the JSON
        assert json.loads((tmp_path / "clip.json").read_text())["frames"] == summary["frames"]
    finally:
        rgb_parser.detector = None
    counting = _Counting(rgb_parser)
    plain = tmp_path / "plain"
    predict_video(counting, clip, plain)
    (plain / "clip" / "frame-000002.png").unlink()
    rgb_parser.detector = lambda rgb: None  # no face: the whole frame is parsed, box null
    try:
        counting.seen = 0
        predict_video(counting, clip, plain, detect=True)  # without boxes, no frame counts as done
        assert counting.seen == FRAMES
    finally:
        rgb_parser.detector = None
    summary = json.loads((plain / "clip.json").read_text())
    assert summary["frames"][0]["box"] is None and summary["frames"][0]["score"] == 0.0


def test_unreadable_videos_are_named(rgb_parser, tmp_path):
    for name, data in (("garbage.mp4", b"not a video" * 50), ("empty.mov", b"")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            predict_video(rgb_parser, tmp_path / name, tmp_path / "out")
        assert e.value.path == tmp_path / name and "cannot be read as a video" in str(e.value)
    assert not (tmp_path / "out").exists()  # nothing written for a bad input
    with pytest.raises(DataError, match="not found"):
        predict_video(rgb_parser, tmp_path / "missing.mp4", tmp_path / "out")
    write_rgb(tmp_path / "photo.png", _heads(1)[0])
    with pytest.raises(DataError, match="not a video file"):
        predict_video(rgb_parser, tmp_path / "photo.png", tmp_path / "out", fps=5)


def test_a_truncated_video_keeps_what_decodes_and_says_so(rgb_parser, tmp_path):
    whole = _write_video(tmp_path / "whole.mkv", _heads(), fourcc="MJPG")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    report = predict_video(rgb_parser, cut, tmp_path / "out")
    assert report.declared == FRAMES and 0 < report.frames < FRAMES and report.ended_early
    assert f"{cut}: decoding stopped after {report.frames} of the {FRAMES} frames" in report.problems[0]
    summary = json.loads((tmp_path / "out" / "cut.json").read_text())
    assert summary["frame_count"] == report.frames and summary["problems"] == report.problems
    assert len(_read_video(report.overlay)[0]) == report.frames


def _invoke(*args: object):
    from faceparse.cli import app

    result = CliRunner().invoke(app, ["predict", *(str(a) for a in args)])
    return result, "".join(result.output.split())  # rich wraps long lines


def test_predict_cli_parses_a_video(run_dir, clip, tmp_path):
    result, flat = _invoke("-c", run_dir, "-i", clip, "-o", tmp_path, "--batch", "8")
    assert result.exit_code == 0, result.output
    assert f"{FRAMES}frames({FRAMES}parsed,0kept" in flat and "clip.overlay.mp4" in flat
    assert len(list((tmp_path / "clip").glob("frame-*.png"))) == FRAMES
    result, flat = _invoke("-c", run_dir, "-i", clip, "-o", tmp_path, "--video-fps", "25")
    assert result.exit_code == 0 and f"0parsed,{FRAMES}kept" in flat
    assert _read_video(tmp_path / "clip.overlay.mp4")[1] == 25
    other = _write_video(tmp_path / "elsewhere" / "clip.mp4", _heads(5))  # same name, another clip
    result, flat = _invoke("-c", run_dir, "-i", other, "-o", tmp_path)
    assert result.exit_code == 2 and f"{tmp_path / 'clip.json'}:waswrittenforanotherclip" in flat
    result, flat = _invoke("-c", run_dir, "-i", other, "-o", tmp_path, "--overwrite")
    assert result.exit_code == 0 and "5frames(5parsed" in flat
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 100)
    result, flat = _invoke("-c", run_dir, "-i", bad, "-o", tmp_path)
    assert result.exit_code == 2 and f"{bad}:cannotbereadasavideo" in flat
    result, flat = _invoke("-c", run_dir, "-i", clip, "-o", tmp_path, "--modality", "depth")
    assert result.exit_code == 2 and "RGBonly" in flat
    result, flat = _invoke("-c", run_dir, "-i", clip, "-o", tmp_path, "--video-fps", 0)
    assert result.exit_code == 2 and "--video-fps" in flat and "mustbe>0" in flat


def test_a_folder_of_frames_is_a_clip_with_video_fps(run_dir, tmp_path):
    frames = tmp_path / "shot"
    for k, rgb in enumerate(_heads(6)):
        write_rgb(frames / f"img{k:03d}.png", rgb)
    result, flat = _invoke("-c", run_dir, "-i", frames, "-o", tmp_path / "out", "--video-fps", "5")
    assert result.exit_code == 0, result.output
    names = [f"img{k:03d}.png" for k in range(6)]
    assert sorted(p.name for p in (tmp_path / "out" / "shot").iterdir()) == names
    shown, fps = _read_video(tmp_path / "out" / "shot.overlay.mp4")
    assert len(shown) == 6 and fps == 5
    summary = json.loads((tmp_path / "out" / "shot.json").read_text())
    assert summary["frame_count"] == 6 and summary["frames"][0]["label"] == "shot/img000.png"
    # without --video-fps the folder is the plain folder mode: <stem>.png beside each other, no video
    result, _ = _invoke("-c", run_dir, "-i", frames, "-o", tmp_path / "plain")
    assert result.exit_code == 0 and sorted(p.name for p in (tmp_path / "plain").iterdir())[0] == "img000.png"
    # labels that would land in the input folder are refused, nothing written
    result, flat = _invoke("-c", run_dir, "-i", frames, "-o", tmp_path, "--video-fps", "5")
    assert result.exit_code == 2 and "wouldreplacetheinput" in flat
    assert sorted(p.name for p in frames.iterdir()) == names
    (frames / "img002b.jpg").write_bytes(b"not a jpeg")
    result, flat = _invoke("-c", run_dir, "-i", frames, "-o", tmp_path / "o", "--video-fps", 5)
    assert result.exit_code == 2 and f"{frames / 'img002b.jpg'}:" in flat
    (frames / "img002b.jpg").unlink()
    write_rgb(frames / "img003.png", _heads(1, size=32)[0])
    result, flat = _invoke("-c", run_dir, "-i", frames, "-o", tmp_path / "o", "--video-fps", 5)
    assert result.exit_code == 2 and f"{frames / 'img003.png'}:frameimg003is32×32" in flat


def test_odd_sizes_and_max_side(rgb_parser, tmp_path):
    """OpenCV's writer codes even sizes only (an odd-sized frame comes back a pixel short): an odd-sized
    clip's overlay is padded a pixel, never cropped. With max_side the frames are parsed shrunk; label maps
    of another size are parsed again, not kept. (OpenCV cannot write an odd-sized video to read: frames.)"""
    odd = tmp_path / "odd"
    for k, rgb in enumerate(_heads(5)):
        write_rgb(odd / f"{k}.png", rgb[:47, :63])
    report = predict_video(rgb_parser, odd, tmp_path / "out", fps=5)
    assert read_label(tmp_path / "out" / "odd" / "4.png").shape == (47, 63)
    shown, _ = _read_video(report.overlay)
    assert len(shown) == 5 and shown[0].shape == (48, 64, 3)
    edge = shown[0].astype(int)  # lossy: the repeated row and column are close to their neighbours
    assert np.abs(edge[47] - edge[46]).mean() < 10 and np.abs(edge[:, 63] - edge[:, 62]).mean() < 10
    small = predict_video(rgb_parser, odd, tmp_path / "out", fps=5, max_side=32)
    assert small.parsed == 5 and read_label(tmp_path / "out" / "odd" / "0.png").shape == (24, 32)
    assert _read_video(small.overlay)[0][0].shape == (24, 32, 3)
    with pytest.raises(DataError, match="frames of 64×64 exceed the cap of"):
        predict_video(rgb_parser, _write_video(tmp_path / "c.mp4", _heads(2)), tmp_path, max_pixels=1000)
