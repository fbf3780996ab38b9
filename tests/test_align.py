"""faceparse.inference.align: the framings, the similarity warp and its inverse, several faces, depth,
and (with MediaPipe) the acceptance check on real photographs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from faceparse.inference import FaceParser, NetworkInfo
from faceparse.inference.align import (
    CELEBA_HQ,
    SCHEME_FRAMINGS,
    Face,
    Framing,
    align_transform,
    resolve_framing,
    similarity,
    synthetic_framing,
    warp_back,
    warp_face,
)
from faceparse.inference.detect import OUTSIDE_LOGIT
from faceparse.labels import get_scheme

SCHEME = get_scheme("celebamask13")
SIZE = 64


class Constant(nn.Module):
    """Skin (class 1) everywhere, whatever the input: labels show where a face crop was pasted back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], SCHEME.num_classes, *x.shape[2:])
        logits[:, 1] = 1.0
        return logits


def _info(modality: str = "rgb", source: str = "test") -> NetworkInfo:
    depth = modality == "depth"
    return NetworkInfo(
        role=f"parser_{modality}",
        arch="bisenet",
        in_channels=1 if depth else 3,
        normalization="depth" if depth else "imagenet",
        input_size=(SIZE, SIZE),
        scheme=SCHEME,
        source=source,
    )


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array(
        [[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]]
    )


def _landmarks_for(matrix: np.ndarray, framing: Framing = CELEBA_HQ) -> np.ndarray:
    """The five image points that ``matrix`` (image → crop) puts exactly on the framing's template."""
    back = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    points = framing.points((SIZE, SIZE))
    return np.c_[points, np.ones(5)] @ back.T


def _footprint(matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: image pixels whose centre lands inside the (SIZE, SIZE) crop."""
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]]
    u = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    v = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return (u >= -0.5) & (u <= SIZE - 0.5) & (v >= -0.5) & (v <= SIZE - 0.5)


# --- framings -----------------------------------------------------------------------------------------------


def test_celeba_hq_framing_matches_the_measured_one():
    """Karras et al.'s crop rule on the ArcFace mean face gives CelebA-HQ's framing: eyes 0.24 of the
    width apart (MediaPipe measured 0.239 and 0.241 on CelebA-HQ photos, FACTS §5b), level, centred."""
    assert 0.239 <= CELEBA_HQ.iod <= 0.242
    (lx, ly), (rx, ry), nose, (mlx, mly), (mrx, mry) = CELEBA_HQ.template
    assert abs(ly - ry) < 0.002 and abs((lx + rx) / 2 - 0.5) < 0.002
    assert ly < nose[1] < mly and 0.45 < ly < 0.5 and abs(mly - 0.75) < 0.01
    assert SCHEME_FRAMINGS["celebamask19_fpt"] is CELEBA_HQ


def test_synthetic_framing_follows_the_field_of_view():
    assert synthetic_framing(32).iod == pytest.approx(0.239)
    # v1's 40° frames faces 1.27x smaller: 0.188 (FACTS §5b measured 0.187)
    assert synthetic_framing(40).iod == pytest.approx(
        0.239 * math.tan(math.radians(16)) / math.tan(math.radians(20))
    )
    assert abs(synthetic_framing(40).iod - 0.187) < 0.003


def test_framing_comes_from_the_checkpoint_then_the_dataset_then_the_scheme(tmp_path):
    data = tmp_path / "synth"
    data.mkdir()
    provenance = {"generator": "faceparse.data.synth", "generator_version": 2, "fov_deg": 40.0}
    (data / "dataset.json").write_text(json.dumps({"provenance": provenance}))
    checkpoint = tmp_path / "iter-1"
    checkpoint.mkdir()
    (checkpoint / "meta.json").write_text(json.dumps({"config": {"data": {"root": str(data)}}}))
    assert resolve_framing(_info(source=str(checkpoint))) == synthetic_framing(40.0)
    provenance["generator"] = "faceparse.data.convert.celebamask"  # a real dataset: its scheme's
    (data / "dataset.json").write_text(json.dumps({"provenance": provenance}))
    assert resolve_framing(_info(source=str(checkpoint))) is CELEBA_HQ
    recorded = Framing(((0.4, 0.5), (0.6, 0.5), (0.5, 0.6), (0.45, 0.7), (0.55, 0.7)), "recorded")
    (checkpoint / "meta.json").write_text(json.dumps({"framing": recorded.to_json()}))
    assert resolve_framing(_info(source=str(checkpoint))) == recorded
    assert resolve_framing(_info(source="79999_iter.pth")) is CELEBA_HQ  # released weights: the scheme's


# --- geometry --------------------------------------------------------------------------------------------


def test_a_known_similarity_is_recovered_and_inverted():
    matrix = _similarity(25.0, 0.7, -12.0, 30.0)
    landmarks = _landmarks_for(matrix)
    assert np.allclose(align_transform(landmarks, CELEBA_HQ, (SIZE, SIZE)), matrix, atol=1e-9)
    assert np.allclose(similarity(landmarks, landmarks), np.eye(2, 3), atol=1e-12)
    mirrored = landmarks * [-1, 1]  # a mirror image is not a similarity: no reflection is fitted
    assert np.linalg.det(similarity(mirrored, landmarks)[:, :2]) > 0

    # a linear ramp survives the warp into the crop and back (bilinear is exact on it); the crop (53 image
    # pixels wide, turned by 25°) lies inside the image
    size = (90, 120)
    matrix = _similarity(25.0, 1.2, 0.0, 0.0)
    matrix[:, 2] = (SIZE - 1) / 2 - matrix[:, :2] @ [60.0, 45.0]
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
    ramp = (0.3 * xs + 0.5 * ys + 10).astype(np.float32)
    crop = warp_face(ramp, matrix, (SIZE, SIZE))  # float: warped as masked depth (all > 0 here)
    region, sampled, distance = warp_back(torch.from_numpy(crop)[None], matrix, size)
    inner = (distance < 0.45).numpy()  # away from the crop's edge
    assert inner.sum() > 1000
    assert np.abs(sampled[0].numpy() - ramp[region])[inner].max() < 1e-3
    assert np.array_equal(np.isfinite(distance.numpy()), _footprint(matrix, size)[region])


def test_large_shrinks_are_reduced_first_and_stay_aligned():
    """A face 8x larger than the crop: area-reduced before the warp (a one-pixel checkerboard becomes flat
    grey, not aliased stripes), without moving it (a ramp lands where the transform says)."""
    size = (600, 700)
    matrix = _similarity(-10.0, 0.125, 0.0, 0.0)
    matrix[:, 2] = (SIZE - 1) / 2 - matrix[:, :2] @ [350.0, 300.0]  # crop centre on the image centre
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]]
    ramp = np.repeat((xs * 0.3)[..., None], 3, axis=-1).astype(np.uint8)
    crop = warp_face(ramp, matrix, (SIZE, SIZE)).astype(np.float64)
    back = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    v, u = np.mgrid[0:SIZE, 0:SIZE]
    x = back[0, 0] * u + back[0, 1] * v + back[0, 2]
    assert np.abs(crop[..., 0] - x * 0.3).max() < 1.5
    checkers = np.repeat((((xs + ys) % 2) * 255)[..., None], 3, axis=-1).astype(np.uint8)
    grey = warp_face(checkers, matrix, (SIZE, SIZE)).astype(np.float64)
    assert np.abs(grey - 127.5).max() < 10


# --- parsing -----------------------------------------------------------------------------------------------


def test_two_faces_come_back_at_the_original_size_with_background_elsewhere():
    size = (150, 200)
    first, second = _similarity(0.0, 1.0, -20.0, -10.0), _similarity(15.0, 1.6, -180.0, -130.0)
    faces = [(first, 0.9), (second, 0.7)]

    def landmarker(rgb: np.ndarray) -> list[Face]:
        assert rgb.shape[1:] == (size[1], 3)
        return [Face((0.0, 0.0, 10.0, 10.0), _landmarks_for(m), s) for m, s in faces]

    parser = FaceParser(Constant(), _info(), landmarker=landmarker)
    image = np.full((*size, 3), 90, np.uint8)
    out = parser([image, image[:100]], align=True)
    assert out["sizes"] == [size, (100, 200)]
    labels, logits = out["labels"][0], out["logits"][0]
    assert labels.shape == size and logits.shape == (SCHEME.num_classes, *size)
    covered = _footprint(first, size) | _footprint(second, size)
    assert _footprint(first, size).any() and _footprint(second, size).any()
    assert np.array_equal(labels == 1, covered) and 0 < covered.mean() < 1
    assert (logits[1:, ~torch.from_numpy(covered)] == OUTSIDE_LOGIT).all()
    assert np.array_equal(labels, logits.argmax(0).numpy())
    (one, two) = out["faces"][0]
    assert (one.score, two.score) == (0.9, 0.7)
    assert np.allclose(one.transform, first) and np.allclose(two.transform, second)
    described = two.to_json()
    assert len(described["landmarks"]) == 5 and described["box"] == [0.0, 0.0, 10.0, 10.0]
    light = parser([image, image[:100]], align=True, keep_logits=False)
    assert "logits" not in light
    for a, b in zip(out["labels"], light["labels"], strict=True):
        assert np.array_equal(a, b)


def test_overlapping_faces_share_pixels_by_the_nearest_crop_centre():
    """Two overlapping crops: each pixel takes the logits of the face whose crop centre is nearer, in crop
    units. A model that labels the crop's left half 1 and right half 2 shows whose logits a pixel has."""

    class Halves(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(x.shape[0], SCHEME.num_classes, *x.shape[2:])
            logits[:, 1, :, : x.shape[3] // 2] = 1.0
            logits[:, 2, :, x.shape[3] // 2 :] = 1.0
            return logits

    left, right = _similarity(0.0, 1.0, 0.0, 0.0), _similarity(0.0, 1.0, -40.0, 0.0)  # crops at x 0 and 40
    parser = FaceParser(
        Halves(),
        _info(),
        landmarker=lambda rgb: [Face((0, 0, 1, 1), _landmarks_for(m), 1.0) for m in (left, right)],
    )  # noqa: E501
    labels = parser(np.zeros((SIZE, 110, 3), np.uint8), align=True)["labels"][0]
    row = labels[SIZE // 2]
    # left crop: 1 on [0, 32), 2 on [32, 64); right crop: 1 on [40, 72), 2 on [72, 104); the border
    # between the centres (31.5 and 71.5) is at 51.5
    assert (row[:32] == 1).all() and (row[32:52] == 2).all() and (row[52:72] == 1).all()
    assert (row[72:104] == 2).all() and (row[104:] == 0).all()


def test_no_face_parses_the_whole_image():
    parser = FaceParser(Constant(), _info(), landmarker=lambda rgb: [])
    image = np.zeros((40, 70, 3), np.uint8)
    out = parser(image, align=True)
    assert out["faces"] == [[]]
    assert out["labels"].shape == (1, 40, 70) and (out["labels"] == 1).all()  # as parser(image) gives
    assert np.array_equal(parser(image, align=True, keep_logits=False)["labels"], out["labels"])
    with pytest.raises(ValueError, match="exclude each other"):
        parser(image, align=True, detect=True)
    with pytest.raises(ValueError, match="paired RGB frames"):
        parser(image, align=True, rgb=image)
    # landmarks all at one point (a broken landmarker) give no transform: the face is dropped
    parser.landmarker = lambda rgb: [Face((0, 0, 1, 1), np.full((5, 2), 7.0), 0.5)]
    assert parser(image, align=True)["faces"] == [[]]


def test_depth_aligns_with_a_paired_rgb_frame_or_crops_its_surface():
    size = (80, 100)
    matrix = _similarity(10.0, 0.8, -5.0, 3.0)
    seen = []

    def landmarker(rgb: np.ndarray) -> list[Face]:
        seen.append(rgb.shape)
        return [Face((0, 0, 1, 1), _landmarks_for(matrix), 0.8)]

    parser = FaceParser(Constant(), _info("depth"), landmarker=landmarker)
    nearness = np.zeros(size, np.float32)
    nearness[20:60, 30:70] = 0.7
    out = parser(nearness, align=True, rgb=np.zeros((*size, 3), np.uint8))
    assert seen == [(*size, 3)] and np.allclose(out["faces"][0][0].transform, matrix)
    assert np.array_equal(out["labels"][0] == 1, _footprint(matrix, size))
    alone = parser(nearness, align=True)  # no RGB: the square around the surface, 10% margin
    (face,) = alone["faces"][0]
    assert face.landmarks is None and face.box == (30.0, 20.0, 70.0, 60.0)
    covered = np.argwhere(alone["labels"][0] == 1)
    assert covered.min(axis=0).tolist() == [18, 28] and covered.max(axis=0).tolist() == [61, 71]
    with pytest.raises(ValueError, match="RGB frame"):
        parser(nearness, align=True, rgb=np.zeros((10, 10, 3), np.uint8))


# --- real photographs (MediaPipe) ----------------------------------------------------------------------


def _photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as img:
        grace = np.asarray(img.convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": grace}


@pytest.mark.parametrize(
    "framing",
    [CELEBA_HQ, synthetic_framing(32.0), synthetic_framing(40.0)],
    ids=["celeba_hq", "synth_fov32", "synth_fov40"],
)
def test_real_photographs_are_aligned_to_the_training_framing(framing):
    """Acceptance (issue 12): MediaPipe finds the face in scikit-image's astronaut and matplotlib's Grace
    Hopper; the aligned crop, measured with the framing measure (face-mesh eye centres / width), has the
    parser's inter-ocular distance within 10%; labels come back at the original size."""
    pytest.importorskip("mediapipe", reason="alignment needs MediaPipe (the [depth] extra)")
    from faceparse.data.framing import interocular_ratio
    from faceparse.utils.facemesh import FaceMeshEstimator

    parser = FaceParser(Constant(), _info(), framing=framing)
    with FaceMeshEstimator() as estimator:
        for name, photo in _photos().items():
            out = parser(photo, align=True)
            assert out["labels"].shape == (1, *photo.shape[:2]), name
            (face,) = out["faces"][0]
            x0, y0, x1, y1 = face.box
            assert face.score > 0.5 and 0 <= x0 < x1 <= photo.shape[1] and 0 <= y0 < y1 <= photo.shape[0]
            eyes = face.landmarks[:2].mean(axis=0)
            assert x0 < eyes[0] < x1 and y0 < eyes[1] < y1, name
            crop = warp_face(photo, align_transform(face.landmarks, framing, (512, 512)), (512, 512))
            found = estimator.landmarks(crop)
            assert found is not None, name
            ratio = interocular_ratio(found.points, 512)
            assert abs(ratio / framing.iod - 1) < 0.10, (name, ratio, framing.iod)


# --- files and the command line ------------------------------------------------------------------------


def test_predict_files_writes_labels_and_faces(tmp_path):
    from faceparse.data.format import read_label, write_rgb
    from faceparse.inference import predict_files

    matrix = _similarity(0.0, 0.5, 10.3, 5.2)  # no pixel centre on the crop's edge: no ties to round
    parser = FaceParser(
        Constant(), _info(), landmarker=lambda rgb: [Face((1, 2, 3, 4), _landmarks_for(matrix), 0.75)]
    )
    write_rgb(tmp_path / "in" / "a.png", np.zeros((120, 90, 3), np.uint8))
    report = predict_files(parser, [tmp_path / "in" / "a.png"], tmp_path / "out", align=True)
    label = read_label(tmp_path / "out" / "a.png")
    assert label.shape == (120, 90) and np.array_equal(label == 1, _footprint(matrix, (120, 90)))
    described = json.loads((tmp_path / "out" / "faces" / "a.json").read_text())
    assert described["image"] == "a.png" and described["size"] == [120, 90]
    assert described["framing"]["iod"] == pytest.approx(CELEBA_HQ.iod)
    (face,) = described["faces"]
    assert face["score"] == 0.75 and face["box"] == [1, 2, 3, 4] and np.allclose(face["transform"], matrix)
    assert np.allclose(face["landmarks"], _landmarks_for(matrix), atol=1e-3)
    assert report.faces == {tmp_path / "in" / "a.png": 1}


def test_predict_align_command_on_real_photographs(tmp_path):
    """`faceparse predict --align` on the two sample photographs: one face each, label maps at the
    photographs' own sizes, the faces' JSON beside them."""
    pytest.importorskip("mediapipe", reason="alignment needs MediaPipe (the [depth] extra)")
    from typer.testing import CliRunner

    from faceparse.cli import app
    from faceparse.data.format import read_label, write_rgb
    from tiny import engine_checkpoint

    engine_checkpoint(tmp_path / "run")
    for name, photo in _photos().items():
        write_rgb(tmp_path / "photos" / f"{name}.png", photo)
    args = ["predict", "-c", str(tmp_path / "run"), "-i", str(tmp_path / "photos"), "-o", str(tmp_path / "p")]
    result = CliRunner().invoke(app, [*args, "--align"])
    assert result.exit_code == 0, result.output
    assert "aligned 2 faces" in " ".join(result.output.split())
    for name, photo in _photos().items():
        assert read_label(tmp_path / "p" / f"{name}.png").shape == photo.shape[:2]
        faces = json.loads((tmp_path / "p" / "faces" / f"{name}.json").read_text())["faces"]
        assert len(faces) == 1 and faces[0]["score"] > 0.5 and len(faces[0]["landmarks"]) == 5
    refused = CliRunner().invoke(app, [*args, "--align", "--detect"])
    assert refused.exit_code == 2 and "--align" in refused.output
    video = CliRunner().invoke(app, [*args, "--align", "--video-fps", "25"])
    assert video.exit_code == 2 and "not aligned yet" in video.output


def test_training_records_the_synthetic_framing_in_its_checkpoints(tmp_path):
    """A run on `faceparse synth` data stores the framing in meta.json, so a checkpoint moved away from its
    dataset still aligns faces to it; a run on other data stores none (its scheme's is used)."""
    import shutil

    from faceparse.data.format import DatasetInfo, write_info
    from faceparse.engine import train
    from faceparse.inference import face_parser
    from faceparse.runs.checkpoint import latest_checkpoint, read_meta
    from tiny import noise_dataset, tiny_overrides

    data = tmp_path / "data"
    noise_dataset(data, n=4)
    train(None, "pretrain-rgb", overrides=tiny_overrides(data, tmp_path / "plain", iterations=1))
    assert read_meta(latest_checkpoint(tmp_path / "plain" / "pretrain-rgb"))["framing"] is None
    assert face_parser(tmp_path / "plain", "rgb").info.scheme.name == "celebamask13"
    provenance = {"generator": "faceparse.data.synth", "generator_version": 2, "fov_deg": 36.0}
    write_info(data, DatasetInfo(name="data", scheme="celebamask13", provenance=provenance))
    train(None, "pretrain-rgb", overrides=tiny_overrides(data, tmp_path / "synth", iterations=1))
    meta = read_meta(latest_checkpoint(tmp_path / "synth" / "pretrain-rgb"))
    assert Framing.from_json(meta["framing"]) == synthetic_framing(36.0)
    shutil.rmtree(data)  # the checkpoint alone still knows
    assert resolve_framing(face_parser(tmp_path / "synth", "rgb").info) == synthetic_framing(36.0)
    assert resolve_framing(face_parser(tmp_path / "plain", "rgb").info) is CELEBA_HQ


def test_predict_files_aligns_depth_maps_with_their_paired_rgb_frames(tmp_path):
    from typer.testing import CliRunner

    from faceparse.cli import app
    from faceparse.data.format import read_label, write_depth, write_rgb
    from faceparse.inference import predict_files

    matrix = _similarity(5.0, 0.6, 8.3, 4.2)
    seen = []

    def landmarker(rgb: np.ndarray) -> list[Face]:
        seen.append(int(rgb[0, 0, 0]))
        return [Face((0, 0, 1, 1), _landmarks_for(matrix), 0.8)]

    parser = FaceParser(Constant(), _info("depth"), landmarker=landmarker)
    nearness = np.zeros((70, 90), np.float32)
    nearness[10:60, 20:80] = 0.5
    for stem in ("a", "b"):
        write_depth(tmp_path / "depth" / f"{stem}.png", nearness)
    write_rgb(tmp_path / "rgb" / "a.jpg", np.full((70, 90, 3), 200, np.uint8))
    write_rgb(tmp_path / "rgb" / "c.png", np.zeros((70, 90, 3), np.uint8))
    inputs = [tmp_path / "depth" / "a.png", tmp_path / "depth" / "b.png"]
    report = predict_files(parser, inputs, tmp_path / "out", align=True, rgb_frames=tmp_path / "rgb")
    assert abs(seen[0] - 200) <= 2 and len(seen) == 1  # a's frame (a JPEG) gave the landmarks
    assert np.array_equal(read_label(tmp_path / "out" / "a.png") == 1, _footprint(matrix, (70, 90)))
    assert [(p.name, problem) for p, problem in report.failed] == [
        ("b.png", f"no paired RGB frame b.* in {tmp_path / 'rgb'}")
    ]
    refused = CliRunner().invoke(app, ["predict", "-c", "x", "-i", "y", "-o", "z", "--rgb", str(tmp_path)])
    assert refused.exit_code == 2 and "paired RGB frames align depth maps" in refused.output


def test_two_real_faces_in_one_image():
    """Astronaut and Grace Hopper side by side: MediaPipe finds both, each gets its own aligned crop, and
    both come back in the one label map at the image's size."""
    pytest.importorskip("mediapipe", reason="alignment needs MediaPipe (the [depth] extra)")
    photos = _photos()
    both = np.zeros((600, 1024, 3), np.uint8)
    both[:512, :512] = photos["astronaut"]
    both[:, 512:] = photos["grace_hopper"]
    out = FaceParser(Constant(), _info())(both, align=True)
    faces = sorted(out["faces"][0], key=lambda f: f.box[0])
    assert len(faces) == 2 and out["labels"].shape == (1, 600, 1024)
    assert faces[0].box[2] < 512 < faces[1].box[0]  # the astronaut's on the left, Grace Hopper's right
    for face in faces:
        x, y = face.landmarks[:2].mean(axis=0).round().astype(int)
        assert out["labels"][0][y, x] == 1
    assert out["labels"][0][590, 10] == 0  # far from both faces: background
