"""Framing: synthetic heads framed like CelebAMask-HQ (inter-ocular distance / width, FACTS §5b)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceparse.data.framing import interocular_ratio
from faceparse.data.synth import FOV_DEG, MARKER, generate_dataset, generate_sample
from faceparse.utils.io import DataError


def test_interocular_ratio_uses_the_eye_corner_centres():
    points = np.zeros((478, 3))
    points[[33, 133], 0] = [100, 140]  # one eye's corners: centre x = 120
    points[[362, 263], 0] = [220, 260]  # the other's: centre x = 240
    points[[33, 133, 362, 263], 1] = 200
    assert interocular_ratio(points, 500) == pytest.approx(120 / 500)


def _head_width(label: np.ndarray) -> int:
    cols = np.flatnonzero((label > 0).any(axis=0))
    return int(cols[-1] - cols[0] + 1)


def test_smaller_fov_frames_the_same_head_larger():
    wide = generate_sample(2, 96, seed=1, pose=(0.0, 0.0, 0.0), fov_deg=40.0)
    default = generate_sample(2, 96, seed=1, pose=(0.0, 0.0, 0.0))
    assert default["meta"]["camera"]["fov_deg"] == FOV_DEG == 32.0
    ratio = _head_width(default["label"]) / _head_width(wide["label"])
    expected = np.tan(np.radians(20.0)) / np.tan(np.radians(16.0))  # ≈ 1.27
    assert ratio == pytest.approx(expected, rel=0.08)


def test_fov_is_recorded_validated_and_guards_resume(tmp_path):
    info = generate_dataset(tmp_path / "d", 3, size=32, seed=0, workers=1, fov_deg=36.0)
    assert info.provenance["fov_deg"] == 36.0
    saved = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert saved["provenance"]["fov_deg"] == 36.0
    with pytest.raises(DataError, match=MARKER):
        generate_dataset(tmp_path / "d", 3, size=32, seed=0, workers=1)  # other framing
    with pytest.raises(ValueError, match="fov_deg"):
        generate_sample(0, 32, seed=0, fov_deg=5.0)


@pytest.mark.slow
def test_default_framing_matches_celebamask_hq():
    """Acceptance: median inter-ocular distance / width within 0.22-0.26 at 256² (MediaPipe face mesh)."""
    pytest.importorskip("mediapipe")
    from faceparse.data.framing import measure_framing

    images = [(str(i), generate_sample(i, 256, seed=0)["rgb"]) for i in range(40)]
    report = measure_framing(images)
    assert len(report.iod) >= 30
    assert 0.22 <= report.median <= 0.26
