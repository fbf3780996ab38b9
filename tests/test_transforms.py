"""Paired augmentation: one geometry for RGB, depth and label; flips swap left/right; no depth smearing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceparse.data.transforms import (
    ColorJitter,
    RandomAffineFit,
    RandomHFlip,
    RandomScaleCrop,
    build_transform,
    fit_matrix,
    hflip,
    resize_sample,
    scale_matrix,
    warp_sample,
)
from faceparse.labels import IGNORE_INDEX, get_scheme

C13 = get_scheme("celebamask13")
# Per-class depth and colour; left/right partners share both, so a flipped image still matches its labels.
DEPTH_OF = np.array([0.0, 0.6, 0.65, 0.65, 0.75, 0.75, 0.62, 0.62, 0.9, 0.7, 0.72, 0.74, 0.61], np.float32)
CANON = np.minimum(np.arange(13), C13.flip_permutation())
PALETTE = C13.palette()[CANON]


def _face(h: int = 64, w: int = 64) -> dict:
    """A hand-built head: skin ellipse, eyes, brows, hair; RGB = class colour, depth = per-class constant."""
    label = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    label[((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.3 * w)) ** 2 <= 1] = C13.index("skin")
    label[: h // 5, w // 4 : 3 * w // 4] = C13.index("hair")
    label[h // 3 : h // 3 + 4, w // 2 + 4 : w // 2 + 12] = C13.index("l_brow")  # subject's left = image right
    label[h // 3 : h // 3 + 4, w // 2 - 12 : w // 2 - 4] = C13.index("r_brow")
    label[h // 3 + 7 : h // 3 + 12, w // 2 + 5 : w // 2 + 11] = C13.index("l_eye")
    label[h // 3 + 7 : h // 3 + 12, w // 2 - 11 : w // 2 - 5] = C13.index("r_eye")
    label[2 * h // 3 : 2 * h // 3 + 3, w // 2 - 6 : w // 2 + 6] = C13.index("u_lip")
    rgb = PALETTE[label]
    depth = DEPTH_OF[label]
    return {"rgb": rgb, "depth": depth, "label": label, "has_depth": True, "id": "x"}


def _interior(label: np.ndarray, k: int, radius: int = 1) -> np.ndarray:
    """Pixels of class k whose whole (2r+1)² neighbourhood is class k."""
    mask = (label == k).astype(np.uint8)
    return cv2.erode(mask, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8), borderValue=0).astype(bool)


def _assert_consistent(out: dict, check_rgb: bool = True) -> None:
    """Away from borders, RGB shows the label's colour and depth the label's depth."""
    for k in np.unique(out["label"]):
        inner = _interior(out["label"], int(k))
        if not inner.any():
            continue
        expected = 0.0 if k == IGNORE_INDEX else DEPTH_OF[k]
        np.testing.assert_allclose(
            out["depth"][inner], expected, atol=1e-5, err_msg=f"depth misaligned for class {k}"
        )
        if not check_rgb:
            continue
        colour = np.zeros(3, int) if k == IGNORE_INDEX else PALETTE[k].astype(int)  # padding is black
        assert np.abs(out["rgb"][inner].astype(int) - colour).max() <= 1, f"rgb misaligned for class {k}"


# --- flips ----------------------------------------------------------------------------------------


def test_hflip_subject_side_swaps_and_mirrors() -> None:
    s = _face()
    out = hflip(s, C13)
    # l_eye (subject's left) lies on the image's right; in the mirror image that eye is on the image's
    # left, where a subject's RIGHT eye belongs, so it must be labelled r_eye.
    ys, xs = np.nonzero(s["label"] == C13.index("l_eye"))
    assert (out["label"][ys, 63 - xs] == C13.index("r_eye")).all()
    assert xs.min() > 32  # ... and the subject's left eye is still drawn on the image's right half:
    assert (np.nonzero(out["label"] == C13.index("l_eye"))[1] > 32).all()
    np.testing.assert_array_equal(out["rgb"], s["rgb"][:, ::-1])
    np.testing.assert_array_equal(out["depth"], s["depth"][:, ::-1])
    twice = hflip(out, C13)
    for key in ("rgb", "depth", "label"):
        np.testing.assert_array_equal(twice[key], s[key])


def test_hflip_without_swap_reproduces_the_reference_flip() -> None:
    """flip_swap=False (the left/right diagnostic): the label map is only mirrored, so the subject's left
    eye, now on the image's left, keeps the label l_eye, as face-parsing.PyTorch's flip leaves it."""
    s = _face()
    out = hflip(s, C13, swap=False)
    np.testing.assert_array_equal(out["label"], s["label"][:, ::-1])
    ys, xs = np.nonzero(s["label"] == C13.index("l_eye"))
    assert (out["label"][ys, 63 - xs] == C13.index("l_eye")).all()
    np.testing.assert_array_equal(out["rgb"], hflip(s, C13)["rgb"])
    flips = [build_transform("bisenet", 64, C13, flip_swap=swap).steps[1] for swap in (True, False)]
    assert [f.swap for f in flips] == [True, False]
    # always flipping (p=1): the pipelines differ only on the left/right labels
    rng = np.random.default_rng(0)
    mirrored = RandomHFlip(C13, p=1.0, swap=False)(s, rng)["label"]
    swapped = RandomHFlip(C13, p=1.0)(s, rng)["label"]
    differs = mirrored != swapped
    assert differs.any() and set(np.unique(mirrored[differs])) <= {
        C13.index(n) for n in ("l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear")
    }


def test_hflip_image_side_convention_lapa() -> None:
    lapa = get_scheme("lapa11")
    label = np.zeros((8, 8), np.uint8)
    label[2:4, 0:3] = lapa.index("left_eye")  # LaPa: left = the image's left
    label[5, 1] = IGNORE_INDEX
    s = {"rgb": np.zeros((8, 8, 3), np.uint8), "depth": np.zeros((8, 8), np.float32), "label": label}
    out = hflip(s, "lapa11")
    np.testing.assert_array_equal(out["label"][2:4, 5:8], lapa.index("right_eye"))
    assert out["label"][5, 6] == IGNORE_INDEX
    np.testing.assert_array_equal(hflip(out, lapa)["label"], label)


# --- geometry -------------------------------------------------------------------------------------


def test_integer_upscale_puts_every_edge_at_the_same_place() -> None:
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 1
    s = {
        "rgb": np.where(label[..., None] == 1, 200, 0).astype(np.uint8).repeat(3, 2),
        "depth": np.where(label == 1, 0.5, 0.0).astype(np.float32),
        "label": label,
        "has_depth": True,
    }
    out = warp_sample(s, scale_matrix(2.0), 16)
    np.testing.assert_array_equal(out["label"][:, :8], 0)
    np.testing.assert_array_equal(out["label"][:, 8:], 1)
    np.testing.assert_array_equal(out["depth"][:, 8:], 0.5)
    np.testing.assert_array_equal(out["depth"][:, :8], 0.0)
    row = out["rgb"][5, :, 0].astype(int)
    assert row[6] < 100 < row[9] and row[7] + row[8] == 200  # the RGB ramp is centred on the label edge


def test_rotation_by_90_degrees_is_exact_and_counter_clockwise() -> None:
    s = _face(32, 32)
    out = warp_sample(s, fit_matrix((32, 32), (32, 32), angle=90.0), 32)
    np.testing.assert_array_equal(out["label"], np.rot90(s["label"]))
    np.testing.assert_array_equal(out["rgb"], np.rot90(s["rgb"]))
    np.testing.assert_allclose(out["depth"], np.rot90(s["depth"]), atol=1e-6)


@pytest.mark.parametrize("preset", ["bisenet", "eagrnet"])
def test_presets_keep_rgb_depth_and_label_aligned(preset: str) -> None:
    s = _face()
    transform = build_transform(preset, 48, C13, train=True)
    for i in range(12):
        out = transform(s, np.random.default_rng(i))
        assert out["rgb"].shape == (48, 48, 3) and out["label"].shape == out["depth"].shape == (48, 48)
        _assert_consistent(out, check_rgb=preset != "bisenet")  # bisenet's colour jitter changes the colours
        if preset == "bisenet":  # its geometry, without the jitter, keeps RGB aligned as well
            _assert_consistent(
                RandomScaleCrop((48, 48))(hflip(s, C13) if i % 2 else s, np.random.default_rng(i))
            )
        assert set(np.unique(out["label"])) <= set(np.unique(s["label"])) | {IGNORE_INDEX}


def test_rotated_scaled_warp_is_aligned() -> None:
    s = _face()
    for angle, zoom in ((17.0, 1.3), (-30.0, 0.8), (5.0, 2.0)):
        _assert_consistent(warp_sample(s, fit_matrix((64, 64), (56, 56), zoom=zoom, angle=angle), 56))


def test_depth_is_never_smeared_into_the_background() -> None:
    s = _face()
    surface_min = DEPTH_OF[1:].min()
    naive_smeared = False
    for i in range(10):
        rng = np.random.default_rng(i)
        matrix = fit_matrix((64, 64), (48, 48), zoom=rng.uniform(0.7, 1.6), angle=rng.uniform(-30, 30))
        depth = warp_sample(s, matrix, 48)["depth"]
        surface = depth[depth > 0]
        assert surface.size and surface.min() >= surface_min - 1e-6  # no values between background and face
        naive = cv2.warpAffine(s["depth"], matrix, (48, 48), flags=cv2.INTER_LINEAR)
        naive_smeared |= bool(((naive > 0) & (naive < surface_min - 1e-3)).any())
    assert naive_smeared  # plain bilinear does smear: the check above is not vacuous


def test_padding_values_when_the_scaled_image_is_smaller_than_the_crop() -> None:
    s = _face(32, 32)
    out = RandomScaleCrop((48, 48), scales=(0.75,))(s, np.random.default_rng(0))
    outside = out["label"] == IGNORE_INDEX
    assert outside.sum() == 48 * 48 - 24 * 24
    assert (out["rgb"][outside] == 0).all() and (out["depth"][outside] == 0).all()


def test_eval_resize_is_deterministic_and_nearest_for_labels() -> None:
    s = _face(64, 64)
    t = build_transform("eagrnet", (32, 48), C13, train=False)
    a, b = t(s, np.random.default_rng(0)), t(s, np.random.default_rng(1))
    for key in ("rgb", "depth", "label"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["label"].shape == (32, 48)
    assert set(np.unique(a["label"])) <= set(np.unique(s["label"]))
    np.testing.assert_array_equal(resize_sample(s, 128)["label"], s["label"].repeat(2, 0).repeat(2, 1))
    small = resize_sample(s, 32)["depth"]
    assert small[small > 0].min() >= DEPTH_OF[1:].min() - 1e-6


def test_hidden_depth_stays_zero() -> None:
    s = _face()
    s["has_depth"] = False
    s["depth"] = np.zeros_like(s["depth"])
    out = build_transform("eagrnet", 40, C13)(s, np.random.default_rng(3))
    assert out["depth"].shape == (40, 40) and not out["depth"].any() and out["has_depth"] is False


# --- colour and randomness ------------------------------------------------------------------------


def test_colour_jitter_touches_rgb_only() -> None:
    s = _face()
    out = ColorJitter(0.5, 0.5, 0.5)(s, np.random.default_rng(0))
    assert not np.array_equal(out["rgb"], s["rgb"]) and out["rgb"].dtype == np.uint8
    assert out["depth"] is s["depth"] and out["label"] is s["label"]
    unchanged = ColorJitter(0.0, 0.0, 0.0)(s, np.random.default_rng(0))
    np.testing.assert_array_equal(unchanged["rgb"], s["rgb"])


@pytest.mark.parametrize("preset", ["bisenet", "eagrnet"])
def test_determinism_for_a_fixed_generator(preset: str) -> None:
    s = _face()
    t = build_transform(preset, 48, C13)
    runs = [t(s, np.random.default_rng(7)) for _ in range(2)]
    for key in ("rgb", "depth", "label"):
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    others = [t(s, np.random.default_rng(seed)) for seed in range(8, 14)]
    assert any(not np.array_equal(o["rgb"], runs[0]["rgb"]) for o in others)
    seeded = [build_transform(preset, 48, C13, seed=3)(s) for _ in range(2)]
    np.testing.assert_array_equal(seeded[0]["label"], seeded[1]["label"])


def test_eagrnet_rotation_stays_within_30_degrees() -> None:
    s = {"rgb": np.zeros((9, 9, 3), np.uint8), "depth": np.zeros((9, 9), np.float32),
         "label": np.zeros((9, 9), np.uint8), "has_depth": False}  # fmt: skip
    step = RandomAffineFit((9, 9), rotation_p=1.0)
    rng = np.random.default_rng(0)
    angles = []
    for _ in range(200):
        state = rng.bit_generator.state
        step(s, rng)
        replay = np.random.default_rng()
        replay.bit_generator.state = state
        replay.standard_normal()  # the scale draw
        angles.append(np.clip(replay.standard_normal() * 30.0, -30, 30))
    assert max(abs(a) for a in angles) == 30.0  # clipped, and the clip is reached


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="bisenet, eagrnet"):
        build_transform("fancy", 32, C13)


def test_bisenet_preset_scales_set_the_augmentation_strength():
    """data.scales: only the listed zoom factors are drawn (here 1.0 only: a pure crop of the full image)."""
    import numpy as np

    from faceparse.data.transforms import RandomScaleCrop, build_transform

    transform = build_transform("bisenet", 16, "celebamask13", scales=[1.0])
    crops = [s for s in transform.steps if isinstance(s, RandomScaleCrop)]
    assert crops and crops[0].scales == (1.0,)
    label = np.arange(256, dtype=np.uint8).reshape(16, 16) % 13
    sample = {"rgb": np.zeros((16, 16, 3), np.uint8), "depth": np.zeros((16, 16), np.float32), "label": label}
    out = crops[0](sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["label"], label)  # scale 1, window = image: identity
