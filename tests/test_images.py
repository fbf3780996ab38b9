"""Decoding images, on every path that reads one (dataset, check-data, prepare, depth import, predict):
a cap on the decoded pixels checked from the header, headers claiming huge sizes named like any other
unreadable file, and EXIF orientation applied. Predict's own behaviour is in test_inference.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.data.dataset import FaceParsingDataset
from faceparse.data.format import (
    ImageTooLarge,
    decoded_size,
    image_size,
    read_depth,
    read_label,
    read_rgb,
)
from faceparse.depth.released import decode_depth_png
from faceparse.utils.io import DataError
from tiny import bomb_png, noise_dataset

ORIENTATION = 0x0112  # the EXIF tag


def rotated_jpeg(path: Path, orientation: int = 6) -> Path:
    """A 40×20 JPEG (stored) whose left half is white, tagged with an EXIF orientation.

    Orientation 6 means "rotate 90° clockwise to display": shown 20 wide and 40 tall, white on top."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    return path


@pytest.mark.parametrize("reader", [read_rgb, read_label, read_depth, decoded_size, image_size])
def test_a_header_claiming_a_huge_image_is_named_not_decoded(tmp_path, reader):
    path = bomb_png(tmp_path / "huge.png")
    with pytest.raises(ImageTooLarge, match=r"huge\.png: 100000×100000 pixels \(10000 megapixels\)") as e:
        reader(path)
    assert isinstance(e.value, DataError) and e.value.path == path  # what every caller already catches


def test_the_pixel_cap_is_checked_from_the_header_and_can_be_raised(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (10, 20, 30)).save(path)  # 60,000 pixels
    with pytest.raises(ImageTooLarge, match="300×200 pixels .* exceeds the limit of 0.05 megapixels"):
        read_rgb(path, max_pixels=50_000)
    assert read_rgb(path, max_pixels=60_000).shape == (200, 300, 3)
    assert read_rgb(path, max_pixels=None).shape == (200, 300, 3)


def test_a_cap_above_pillows_own_limit_is_honoured(tmp_path, monkeypatch):
    """Pillow refuses images over 2 × Image.MAX_IMAGE_PIXELS itself (and warns over 1 ×): our cap decides."""
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # 10,000 pixels is now a "bomb" to Pillow
    assert read_rgb(path, max_pixels=10_000).shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # put back for everyone else
    with pytest.raises(ImageTooLarge):
        read_rgb(path, max_pixels=9_999)


def test_max_side_decodes_a_jpeg_reduced(tmp_path):
    path = tmp_path / "wide.jpg"
    Image.new("RGB", (400, 300), (200, 100, 50)).save(path, quality=95)  # 120,000 pixels
    # JPEG decodes at 1/2 scale (200×150 = 30,000 pixels, under the cap), then shrinks to fit 100
    rgb = read_rgb(path, max_pixels=50_000, max_side=100)
    assert rgb.shape == (75, 100, 3)
    assert np.abs(rgb.astype(int) - (200, 100, 50)).max() <= 3
    png = tmp_path / "wide.png"
    Image.new("RGB", (400, 300)).save(png)
    with pytest.raises(ImageTooLarge, match="wide.png"):  # a PNG decodes whole: the cap still applies
        read_rgb(png, max_pixels=50_000, max_side=100)
    assert read_rgb(png, max_side=100).shape == (75, 100, 3)
    assert read_rgb(png, max_side=1000).shape == (300, 400, 3)  # never enlarged


def test_exif_orientation_is_applied(tmp_path):
    path = rotated_jpeg(tmp_path / "phone.jpg")
    rgb = read_rgb(path)
    assert rgb.shape == (40, 20, 3)  # displayed: 20 wide, 40 tall
    assert rgb[:18].min() > 200 and rgb[22:].max() < 50  # the stored left half is the displayed top
    assert decoded_size(path) == image_size(path) == (20, 40)
    assert read_rgb(rotated_jpeg(tmp_path / "upright.jpg", orientation=1)).shape == (20, 40, 3)
    assert read_rgb(path, max_side=10).shape == (10, 5, 3)


def test_the_dataset_reader_and_check_data_name_a_bomb(tmp_path):
    ids = noise_dataset(tmp_path, n=3, shape=(8, 8))
    bomb = bomb_png(tmp_path / "rgb" / f"{ids[1]}.png")
    dataset = FaceParsingDataset(tmp_path, "train")
    assert dataset.load(0)["rgb"].shape == (8, 8, 3)
    with pytest.raises(DataError, match=f"{ids[1]}.png: 100000×100000 pixels"):
        dataset.load(1)
    result = CliRunner().invoke(app, ["check-data", str(tmp_path)])
    assert result.exit_code == 1, result.output
    flat = "".join(result.output.split())  # rich wraps long lines
    assert "".join(f"{bomb}: 100000×100000 pixels".split()) in flat


def test_a_rotated_photo_in_a_dataset_is_read_as_displayed(tmp_path):
    ids = noise_dataset(tmp_path, n=2, shape=(40, 20))  # (height, width): the displayed shape
    (tmp_path / "rgb" / f"{ids[0]}.png").unlink()
    rotated_jpeg(tmp_path / "rgb" / f"{ids[0]}.jpg")  # stored 40 wide, 20 tall, displayed 20×40
    assert FaceParsingDataset(tmp_path, "train").load(0)["rgb"].shape == (40, 20, 3)


def test_released_depth_with_a_huge_header_is_named(tmp_path):
    data = bomb_png(tmp_path / "d.png", 12_000, 12_000).read_bytes()  # 144 MP: Pillow would only warn
    with pytest.raises(DataError, match="zip!d.png: 12000×12000 pixels"):
        decode_depth_png(data, "zip!d.png")


def test_prepare_skips_a_bomb_and_stops_on_it_with_strict(tmp_path):
    from fixtures_raw import make_lapa

    make_lapa(tmp_path / "raw")
    bomb = bomb_png(tmp_path / "raw" / "train" / "images" / "train_001.jpg")  # a PNG under a .jpg name
    rotated_jpeg(tmp_path / "raw" / "val" / "images" / "val_000.jpg")  # displayed 20×40, label 36×36
    args = ["prepare", "lapa", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    flat = "".join(result.output.split())
    assert "".join(f"{bomb}: 100000×100000 pixels".split()) in flat
    assert (tmp_path / "out" / "label" / "train_000.png").is_file()  # the rest was converted
    assert not (tmp_path / "out" / "label" / "train_001.png").exists()
    assert "labelis36×36,imageis20×40" in flat  # compared with the image as displayed
    strict = CliRunner().invoke(app, [*args, "--workers", "1", "--strict", "--overwrite"])
    assert strict.exit_code == 2 and "train_001.jpg" in "".join(strict.output.split())  # rich wraps paths
