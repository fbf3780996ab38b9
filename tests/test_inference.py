"""faceparse.inference: the predictor, folder prediction, visualisation, and the `predict` command."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from faceparse.data.format import read_label, write_depth, write_label, write_rgb
from faceparse.inference import (
    DetectorUnavailable,
    FaceParser,
    colorize,
    face_parser,
    overlay,
    predict_files,
    side_by_side,
)
from faceparse.inference.detect import OUTSIDE_LOGIT, crop_square, paste_logits
from faceparse.labels import get_scheme
from faceparse.models import build_model
from faceparse.models.pretrained import PretrainedInfo, save_pretrained
from faceparse.runs import checkpoint as ckpt
from faceparse.utils.io import DataError
from tiny import bomb_png

SIZE = 64
SCHEME = get_scheme("celebamask13")


@pytest.fixture(scope="module")
def rgb_parser(run_dir):
    return face_parser(run_dir, "rgb", batch_size=2)


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((48, 80), (64, 64), (97, 51))]


def test_checkpoint_parser_knows_its_scheme_size_and_normalisation(rgb_parser, run_dir):
    assert rgb_parser.classes == SCHEME.classes
    assert rgb_parser.input_size == (SIZE, SIZE)  # from the training config
    assert rgb_parser.info.normalization == "imagenet"
    assert rgb_parser.info.source.endswith("iter-0000010")  # the run folder resolved to its checkpoint
    depth_parser = face_parser(run_dir, "depth")
    assert depth_parser.info.normalization == "depth" and depth_parser.info.in_channels == 1


def test_mixed_sizes_give_logits_and_labels_at_each_images_size(rgb_parser):
    images = _images()
    out = rgb_parser(images)  # 3 images in batches of 2
    assert out["sizes"] == [(48, 80), (64, 64), (97, 51)]
    for image, logits, labels in zip(images, out["logits"], out["labels"], strict=True):
        assert logits.shape == (SCHEME.num_classes, *image.shape[:2]) and logits.dtype == torch.float32
        assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
        assert np.array_equal(labels, logits.argmax(0).numpy())
    assert out["classes"] == SCHEME.classes and out["scheme"] is SCHEME


def test_labels_without_logits_are_the_same_labels(rgb_parser):
    """keep_logits=False upsamples one class at a time (a running argmax, ~10 bytes a pixel, not 4 per
    class): the labels must be those of the full logits, with and without a detected crop pasted back."""
    images = [*_images(), np.full((33, 45, 3), 128, np.uint8)]  # a flat image: many exact ties
    for detect in (False, True):
        rgb_parser.detector = lambda rgb: ((5, -3, 30), 0.9) if rgb.shape[0] != 64 else None
        try:
            full = rgb_parser(images, detect=detect)
            light = rgb_parser(images, detect=detect, keep_logits=False)
        finally:
            rgb_parser.detector = None
        assert "logits" not in light
        for a, b in zip(full["labels"], light["labels"], strict=True):
            assert a.dtype == b.dtype == np.uint8 and np.array_equal(a, b)
    tied = copy.deepcopy(rgb_parser.model)
    with torch.no_grad():
        tied.conv_out.conv_out.weight.zero_()  # every class scores 0 everywhere: ties go to the lowest id
    labels = FaceParser(tied, rgb_parser.info)(images[0], keep_logits=False)["labels"]
    assert labels.shape == (1, 48, 80) and not labels.any()


def test_batching_and_order_do_not_change_results(rgb_parser):
    images = _images()
    together = rgb_parser(images)
    alone = [rgb_parser(image) for image in images]
    for logits, single in zip(together["logits"], alone, strict=True):
        assert single["logits"].shape == (1, *logits.shape)  # a single image is a batch of one
        torch.testing.assert_close(single["logits"][0], logits, atol=1e-5, rtol=0)
    again = rgb_parser(images)
    for a, b in zip(together["logits"], again["logits"], strict=True):
        assert torch.equal(a, b)  # deterministic
    from PIL import Image

    assert torch.equal(rgb_parser(Image.fromarray(images[0]))["logits"], alone[0]["logits"])


def test_same_size_images_are_stacked_and_match_the_network(rgb_parser):
    from faceparse.data.normalize import rgb_for_parser

    images = [im[:48, :48] for im in _images()]
    out = rgb_parser(images)
    assert out["logits"].shape == (3, SCHEME.num_classes, 48, 48) and out["labels"].shape == (3, 48, 48)
    # reference: resize by hand, normalise, run BiSeNet, resize its first output back
    import cv2

    rgb = np.stack([cv2.resize(im, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for im in images])
    x = rgb_for_parser(torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        expected = rgb_parser.model(x).logits
    expected = torch.nn.functional.interpolate(expected, size=(48, 48), mode="bilinear", align_corners=True)
    torch.testing.assert_close(out["logits"], expected, atol=1e-5, rtol=1e-5)


def test_depth_modality_accepts_nearness_and_stored_uint16(run_dir):
    parser = face_parser(run_dir, "depth")
    rng = np.random.default_rng(3)
    nearness = rng.random((40, 56)).astype(np.float32)
    nearness[:, :10] = 0.0  # background
    stored = np.rint(nearness * 65535).astype(np.uint16)
    a, b = parser(nearness), parser(stored)
    assert a["logits"].shape == (1, SCHEME.num_classes, 40, 56)
    torch.testing.assert_close(a["logits"], b["logits"], atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parser(nearness * 2)
    with pytest.raises(ValueError, match="RGB"):
        face_parser(run_dir, "rgb")(nearness)


def test_safetensors_source_and_modality_mismatch(tmp_path):
    torch.manual_seed(0)
    model = build_model("bisenet", num_classes=19, in_channels=3)
    info = PretrainedInfo("bisenet", 19, 3, "celebamask19_fpt", "imagenet", "test")
    path = save_pretrained(model, info, tmp_path / "fpt.safetensors")
    parser = face_parser(path, size=SIZE)
    assert parser.classes == get_scheme("celebamask19_fpt").classes
    assert parser(np.zeros((30, 30, 3), np.uint8))["labels"].shape == (1, 30, 30)
    assert face_parser(path).input_size == (512, 512)  # face-parsing.PyTorch's evaluation size
    with pytest.raises(DataError, match="3-channel input"):
        face_parser(path, "depth")


def test_fpt_pth_source(tmp_path):
    torch.manual_seed(0)
    model = build_model("bisenet", num_classes=19, in_channels=3)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # a DataParallel checkpoint
    torch.save(state, tmp_path / "79999_iter.pth")
    parser = face_parser(tmp_path / "79999_iter.pth", size=SIZE)
    assert parser.scheme.name == "celebamask19_fpt"
    image = _images()[1]
    model.eval()
    reference = face_parser(
        save_pretrained(model, parser_info_19(), tmp_path / "same.safetensors"), size=SIZE
    )
    torch.testing.assert_close(parser(image)["logits"], reference(image)["logits"])


def parser_info_19() -> PretrainedInfo:
    return PretrainedInfo("bisenet", 19, 3, "celebamask19_fpt", "imagenet", "test")


def test_missing_sources_and_roles_are_named(tmp_path, run_dir):
    with pytest.raises(DataError, match="weights not found"):
        face_parser(tmp_path / "nothing.pth")
    stage = tmp_path / "pretrain-translator" / "checkpoints"
    meta = {"stage": "pretrain-translator", "config": {}, "scheme": SCHEME.to_dict(), "networks": {}}
    ckpt.save_checkpoint(stage, 1, {}, {}, meta)
    with pytest.raises(DataError, match="no parser_rgb network"):
        face_parser(stage.parent)
    # a run folder whose last stage has no RGB parser gives the stage that trained one
    shutil.copytree(
        ckpt.latest_checkpoint(run_dir / "joint"), tmp_path / "pretrain-rgb" / "checkpoints" / "iter-0000003"
    )
    assert "pretrain-rgb" in face_parser(tmp_path).info.source


def test_detection_crops_and_pastes_back(rgb_parser):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)
    box = (60, -10, 50)  # runs past the right and top borders
    calls = []

    def detector(rgb):
        calls.append(rgb.shape)
        return (box, 0.9) if rgb.shape == (80, 100, 3) else None

    rgb_parser.detector = detector
    try:
        out = rgb_parser([image, image[:40]], detect=True)
    finally:
        rgb_parser.detector = None
    assert calls == [(80, 100, 3), (40, 100, 3)]
    assert out["boxes"] == [box, None] and out["scores"] == [0.9, 0.0]
    logits = out["logits"][0]  # (C, 80, 100)
    crop_logits = rgb_parser(crop_square(image, box))["logits"][0]  # (C, 50, 50)
    torch.testing.assert_close(logits[:, 0:40, 60:100], crop_logits[:, 10:50, 0:40])
    assert (out["labels"][0][:, :60] == 0).all() and (out["labels"][0][40:] == 0).all()
    assert (logits[1:, :, :60] == OUTSIDE_LOGIT).all()
    assert np.array_equal(out["labels"][1], rgb_parser(image[:40])["labels"][0])  # no face: whole image


def test_paste_and_crop_are_inverse_inside_the_image():
    image = np.arange(6 * 7, dtype=np.float32).reshape(6, 7)
    crop = crop_square(image, (-2, 3, 4))  # 2 columns left of the image, 1 row below it
    assert crop.shape == (4, 4) and (crop[:, :2] == 0).all() and (crop[3:] == 0).all()
    assert np.array_equal(crop[:3, 2:], image[3:6, 0:2])
    full = paste_logits(torch.from_numpy(crop)[None].repeat(2, 1, 1), (-2, 3, 4), (6, 7))
    assert torch.equal(full[1, 3:6, 0:2], torch.from_numpy(image[3:6, 0:2]))
    assert (full[1, :3] == OUTSIDE_LOGIT).all() and (full[0, :3] == 0).all()


def test_detection_without_mediapipe_names_the_extra(rgb_parser, run_dir, tmp_path, monkeypatch):
    import faceparse.utils.facemesh as facemesh

    def missing():
        raise RuntimeError(f"{facemesh.INSTALL_HINT} (No module named 'mediapipe')")

    monkeypatch.setattr(facemesh, "import_mediapipe", missing)
    with pytest.raises(DetectorUnavailable, match="make depth-extra"):
        rgb_parser(_images()[0], detect=True)
    assert rgb_parser.detector is None
    from faceparse.cli import app

    write_rgb(tmp_path / "a.png", _images()[1])
    args = [
        "predict",
        "-c",
        str(run_dir),
        "-i",
        str(tmp_path / "a.png"),
        "-o",
        str(tmp_path / "p"),
        "--detect",
    ]
    result = CliRunner().invoke(app, args)
    flat = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 2 and "pip install 'faceparse[depth]'" in flat and "make depth-extra" in flat


def _folder(root: Path) -> Path:
    images = root / "images"
    for k, image in enumerate(_images()):
        write_rgb(images / f"img{k}.png", image)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "notes.txt").write_text("not an image")
    return images


def test_predict_files_writes_readable_labels_and_reports_bad_files(rgb_parser, tmp_path):
    images = _folder(tmp_path)
    from faceparse.inference import list_inputs

    inputs = list_inputs(images)
    assert [p.name for p in inputs] == ["broken.jpg", "img0.png", "img1.png", "img2.png"]
    ticks = []
    report = predict_files(rgb_parser, inputs, tmp_path / "out", overlay=True, on_image=ticks.append)
    assert len(ticks) == 4
    assert [p for p, _ in report.failed] == [images / "broken.jpg"]
    assert len(report.written) == 3
    expected = rgb_parser([images / "img2.png"])["labels"][0]
    assert np.array_equal(read_label(tmp_path / "out" / "img2.png"), expected)
    assert (tmp_path / "out" / "overlay" / "img0.png").is_file()
    again = predict_files(rgb_parser, inputs, tmp_path / "out")  # resumes: nothing to redo
    assert not again.written and len(again.skipped) == 3
    into_inputs = predict_files(rgb_parser, [images / "img0.png"], images, overwrite=True)
    assert "would replace an input" in into_inputs.failed[0][1] and not into_inputs.written  # never clobbers


def test_predict_cli_exit_codes_and_outputs(run_dir, tmp_path):
    from faceparse.cli import app

    images = _folder(tmp_path)
    runner = CliRunner()
    args = ["predict", "-c", str(run_dir), "-i", str(images), "-o", str(tmp_path / "pred"), "--batch", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "broken.jpg" in result.output and "1 of 4 images failed" in result.output
    for k in range(3):
        assert read_label(tmp_path / "pred" / f"img{k}.png").max() < SCHEME.num_classes
    (images / "broken.jpg").unlink()
    result = runner.invoke(app, [*args, "--overlay"])
    assert result.exit_code == 0, result.output
    assert "skipped 3" in result.output
    depth_dir = tmp_path / "depth"
    write_depth(depth_dir / "d0.png", np.full((20, 30), 0.5, np.float32))
    result = runner.invoke(
        app,
        [
            "predict",
            "-c",
            str(run_dir),
            "-i",
            str(depth_dir),
            "-o",
            str(tmp_path / "dp"),
            "--modality",
            "depth",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_label(tmp_path / "dp" / "d0.png").shape == (20, 30)
    result = runner.invoke(
        app, ["predict", "-c", str(tmp_path / "none"), "-i", str(images), "-o", str(tmp_path)]
    )
    assert result.exit_code == 2 and "none" in result.output


def _invoke(*args: object):
    from faceparse.cli import app

    result = CliRunner().invoke(app, ["predict", *(str(a) for a in args)])
    return result, "".join(result.output.split())  # rich wraps long lines


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overwrite", [False, True])
def test_predict_never_replaces_an_input(run_dir, tmp_path, overwrite):
    """Issue 11: with -o the input folder, the label map of photo.jpg replaced the user's photo.png."""
    photos = tmp_path / "photos"
    for name, image in zip(("photo.jpg", "photo.png", "other.png"), _images(), strict=True):
        write_rgb(photos / name, image)
    before = _contents(photos)
    flags = ["--overlay", "--overwrite"] if overwrite else ["--overlay"]
    result, flat = _invoke("-c", run_dir, "-i", photos, "-o", photos, *flags)
    assert result.exit_code == 1, result.output
    assert f"{photos / 'photo.jpg'}:itslabelmap{photos / 'photo.png'}wouldreplaceaninputimage" in flat
    assert f"{photos / 'other.png'}:itslabelmap{photos / 'other.png'}wouldreplaceaninputimage" in flat
    assert "3of3imagesfailed" in flat and "skipped" not in flat  # not mistaken for a finished image
    assert _contents(photos) == before  # nothing written, nothing replaced


def test_predict_never_replaces_an_image_it_did_not_write(run_dir, tmp_path):
    photos = tmp_path / "photos"
    write_rgb(photos / "photo.jpg", _images()[1])
    write_rgb(photos / "photo.png", _images()[0])  # the user's photo, not an input this time
    before = _contents(photos)
    result, flat = _invoke("-c", run_dir, "-i", photos / "photo.jpg", "-o", photos, "--overwrite")
    assert result.exit_code == 1, result.output
    assert f"{photos / 'photo.png'}existsandisnotalabelmap" in flat
    assert _contents(photos) == before
    write_label(photos / "photo.png", np.zeros((64, 64), np.uint8))  # a label map: --overwrite redoes it
    result, _ = _invoke("-c", run_dir, "-i", photos / "photo.jpg", "-o", photos, "--overwrite")
    assert result.exit_code == 0, result.output
    assert read_label(photos / "photo.png").shape == (64, 64)


def test_predict_overlays_never_replace_an_input(rgb_parser, tmp_path):
    inputs = tmp_path / "overlay"
    write_rgb(inputs / "a.png", _images()[1])
    before = _contents(inputs)
    report = predict_files(rgb_parser, [inputs / "a.png"], tmp_path, overlay=True, overwrite=True)
    assert report.failed == [
        (
            inputs / "a.png",
            f"its overlay {inputs / 'a.png'} would replace an input image; choose another output folder",
        )
    ]
    assert not report.written and _contents(inputs) == before and not (tmp_path / "a.png").exists()


def test_predict_caps_decoded_pixels_and_can_downscale(run_dir, tmp_path):
    from PIL import Image

    photos, out = tmp_path / "photos", tmp_path / "out"
    write_rgb(photos / "small.png", _images()[1])  # 64×64
    Image.new("RGB", (400, 300), (120, 90, 60)).save(photos / "big_jpeg.jpg", quality=90)  # 120,000 pixels
    Image.new("RGB", (400, 300), (120, 90, 60)).save(photos / "big_png.png")  # a few hundred bytes
    common = ("-c", run_dir, "-i", photos, "-o", out)
    result, flat = _invoke(*common, "--max-megapixels", "0.05")
    assert result.exit_code == 1, result.output
    for name in ("big_jpeg.jpg", "big_png.png"):
        assert f"{photos / name}:400×300pixels(0.12megapixels)exceedsthelimitof0.05megapixels" in flat
    assert "--max-megapixels" in flat and "--max-side" in flat  # how to get past the cap
    assert read_label(out / "small.png").shape == (64, 64)  # the rest completed
    # JPEGs decode reduced (here 1/2: 200×150) and are shrunk to fit; a PNG decodes whole, so stays refused
    result, flat = _invoke(*common, "--max-megapixels", "0.05", "--max-side", "100")
    assert result.exit_code == 1, result.output
    assert read_label(out / "big_jpeg.png").shape == (75, 100)
    assert f"{photos / 'big_jpeg.jpg'}:400×300parsedat100×75" in flat and "1of3imagesfailed" in flat
    result, flat = _invoke(*common, "--max-megapixels", "0.12")
    assert result.exit_code == 0, result.output
    assert read_label(out / "big_png.png").shape == (300, 400)


def test_a_huge_header_does_not_stop_the_batch(run_dir, tmp_path):
    """Issue 11: a 177-byte PNG claiming 100000² aborted the whole batch; the queued images were lost."""
    photos = tmp_path / "photos"
    for k, image in enumerate(_images()):
        write_rgb(photos / f"img{k}.png", image)
    bomb = bomb_png(photos / "img1b.png")  # sorted between img1 and img2, in the middle of a batch of 2
    result, flat = _invoke("-c", run_dir, "-i", photos, "-o", tmp_path / "out", "--batch", "2")
    assert result.exit_code == 1, result.output
    assert f"{bomb}:100000×100000pixels(10000megapixels)exceedsthelimitof64megapixels" in flat
    assert "1of4imagesfailed" in flat
    for k, image in enumerate(_images()):
        assert read_label(tmp_path / "out" / f"img{k}.png").shape == image.shape[:2]


def test_predict_applies_exif_orientation(rgb_parser, tmp_path):
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif)
    assert rgb_parser(tmp_path / "phone.jpg")["labels"].shape == (1, 40, 20)
    report = predict_files(rgb_parser, [tmp_path / "phone.jpg"], tmp_path / "out")
    assert report.written == [tmp_path / "out" / "phone.png"]
    assert read_label(tmp_path / "out" / "phone.png").shape == (40, 20)  # as the photo is displayed


def test_weights_whose_scheme_does_not_fit_their_classes_are_refused(tmp_path, run_dir):
    import json

    torch.manual_seed(0)
    model = build_model("bisenet", num_classes=19, in_channels=3)
    path = save_pretrained(
        model, PretrainedInfo("bisenet", 19, 3, "lapa11", "imagenet", "test"), tmp_path / "w.safetensors"
    )
    problem = r"scheme lapa11 has 11 classes but the network has 19 outputs"
    with pytest.raises(DataError, match=rf"w\.safetensors: .*{problem}"):
        face_parser(path)
    write_rgb(tmp_path / "in" / "a.png", _images()[1])
    result, flat = _invoke("-c", path, "-i", tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 2 and str(path) in flat and "".join(problem.split()) in flat
    assert not (tmp_path / "out").exists()
    unknown = save_pretrained(
        model, PretrainedInfo("bisenet", 19, 3, "nosuch", "imagenet", "test"), tmp_path / "u.safetensors"
    )
    with pytest.raises(DataError, match=r"u\.safetensors: .*nosuch"):
        face_parser(unknown)
    # an engine checkpoint whose meta.json names another scheme than its networks were built for
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    checkpoint = ckpt.latest_checkpoint(copy / "joint")
    meta = json.loads((checkpoint / "meta.json").read_text())
    meta["scheme"] = {"name": "lapa11"}
    (checkpoint / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"meta\.json: .*scheme lapa11 has 11 classes but the network has 13"):
        face_parser(copy)


def test_overlay_and_panels():
    rgb = np.full((4, 5, 3), 100, np.uint8)
    label = np.zeros((4, 5), np.uint8)
    label[1, 2] = SCHEME.index("hair")
    blended = overlay(rgb, label, SCHEME, alpha=0.5)
    hair = np.asarray(SCHEME.colors[SCHEME.index("hair")], np.float32)
    assert np.array_equal(blended[1, 2], np.rint(100 * 0.5 + hair * 0.5).astype(np.uint8))
    assert np.array_equal(blended[0, 0], rgb[0, 0])  # background untouched
    assert np.array_equal(colorize(label, "celebamask13")[1, 2], hair.astype(np.uint8))
    picture = side_by_side(rgb, label, SCHEME, truth=label, with_legend=False)
    assert picture.shape == (4, 20, 3)
    depth = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    assert side_by_side(depth, label, SCHEME).shape[1] == 15  # gray depth panel, legend below


def test_side_by_side_writes_a_png(tmp_path):
    from PIL import Image

    label = np.zeros((32, 32), np.uint8)
    label[8:24, 8:24] = 1
    picture = side_by_side(np.zeros((32, 32, 3), np.uint8), label, SCHEME, path=tmp_path / "p.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), picture)
    assert picture.shape[0] > 32  # legend strip


@pytest.mark.slow
def test_mediapipe_detection_on_a_synthetic_head(rgb_parser):
    pytest.importorskip("mediapipe")
    from faceparse.data.synth import generate_sample
    from faceparse.inference import mediapipe_detector

    rgb = generate_sample(0, 256, 0)["rgb"]  # a head MediaPipe finds (score ≈ 0.8)
    rgb_parser.detector = mediapipe_detector(margin=0.1)  # a tight box, so part of the frame is outside
    try:
        out = rgb_parser(rgb, detect=True)
    finally:
        rgb_parser.detector = None
    (x0, y0, side), score = out["boxes"][0], out["scores"][0]
    assert score > 0.5 and side > 64
    assert out["labels"].shape == (1, 256, 256)
    outside = np.ones((256, 256), bool)
    outside[max(y0, 0) : y0 + side, max(x0, 0) : x0 + side] = False
    assert outside.any()
    assert (out["labels"][0][outside] == 0).all()
