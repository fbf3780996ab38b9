"""Label schemes: flip permutations, cross-scheme mappings, palettes (FACTS §2, §5)."""

from __future__ import annotations

import numpy as np
import pytest

from faceparse.labels import (
    CELEBAMASK13_RETAINED,
    CELEBAMASK_PARTS,
    IGNORE_INDEX,
    SCHEMES,
    get_scheme,
    map_label,
    mapping_lut,
)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_flip_permutation_is_an_involution_swapping_only_pairs(name: str) -> None:
    scheme = get_scheme(name)
    perm = scheme.flip_permutation()
    assert sorted(perm.tolist()) == list(range(scheme.num_classes))
    np.testing.assert_array_equal(perm[perm], np.arange(scheme.num_classes))
    moved = {scheme.classes[i] for i in np.flatnonzero(perm != np.arange(scheme.num_classes))}
    assert moved == {c for pair in scheme.flip_pairs for c in pair}


def test_celebamask13_flip_pairs() -> None:
    s = get_scheme("celebamask13")
    perm = s.flip_permutation()
    for a, b in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
        assert perm[s.index(a)] == s.index(b) and perm[s.index(b)] == s.index(a)
    for c in ("background", "skin", "nose", "mouth", "u_lip", "l_lip", "hair"):
        assert perm[s.index(c)] == s.index(c)


def test_celebamask13_class_order_matches_the_paper() -> None:
    s = get_scheme("celebamask13")
    assert s.classes == ("background", *CELEBAMASK13_RETAINED)
    assert s.num_classes == 13 and len(s.foreground) == 12
    assert get_scheme("celebamask19").classes[1:] == CELEBAMASK_PARTS


def test_flip_label_subject_side_convention() -> None:
    """celebamask13: l_eye (subject's left) on the image's right half becomes r_eye on the left half."""
    s = get_scheme("celebamask13")
    label = np.zeros((4, 8), np.uint8)
    label[1:3, 5:7] = s.index("l_eye")
    label[0, 0] = IGNORE_INDEX
    flipped = s.flip_label(label)
    expected = np.zeros((4, 8), np.uint8)
    expected[1:3, 1:3] = s.index("r_eye")
    expected[0, 7] = IGNORE_INDEX
    np.testing.assert_array_equal(flipped, expected)
    np.testing.assert_array_equal(s.flip_label(flipped), label)


def test_flip_label_image_side_convention() -> None:
    """lapa11: left_eye (image's left) becomes right_eye on the image's right."""
    s = get_scheme("lapa11")
    label = np.zeros((3, 6), np.uint8)
    label[:, 0:2] = s.index("left_eye")
    label[:, 2] = s.index("left_eyebrow")
    label[:, 4] = s.index("nose")
    flipped = s.flip_label(label)
    np.testing.assert_array_equal(flipped[:, 4:6], s.index("right_eye"))
    np.testing.assert_array_equal(flipped[:, 3], s.index("right_eyebrow"))
    np.testing.assert_array_equal(flipped[:, 1], s.index("nose"))
    assert flipped.dtype == np.uint8 and flipped.flags.c_contiguous


def test_mapping_fpt_and_official_round_trip() -> None:
    to_official = mapping_lut("celebamask19_fpt", "celebamask19")
    back = mapping_lut("celebamask19", "celebamask19_fpt")
    ids = np.arange(19)
    np.testing.assert_array_equal(back[to_official[ids]], ids)
    fpt, official = get_scheme("celebamask19_fpt"), get_scheme("celebamask19")
    for i, name in enumerate(fpt.classes):
        assert official.classes[to_official[i]] == name
    assert to_official[fpt.index("hair")] == official.index("hair") == 13
    assert to_official[IGNORE_INDEX] == IGNORE_INDEX


def test_celebamask13_to_lapa11_matches_subject_side() -> None:
    lut = mapping_lut("celebamask13", "lapa11")
    c13, lapa = get_scheme("celebamask13"), get_scheme("lapa11")
    assert lut[c13.index("l_eye")] == lapa.index("right_eye")
    assert lut[c13.index("r_eye")] == lapa.index("left_eye")
    assert lut[c13.index("l_brow")] == lapa.index("right_eyebrow")
    assert lut[c13.index("mouth")] == lapa.index("inner_mouth")
    assert lut[c13.index("l_ear")] == 0  # LaPa has no ears: unmapped → background
    assert lut[IGNORE_INDEX] == IGNORE_INDEX and lut[200] == IGNORE_INDEX


def test_mapping_commutes_with_flip() -> None:
    """Mapping then flipping equals flipping then mapping, across the two left/right conventions."""
    src, dst = get_scheme("celebamask13"), get_scheme("lapa11")
    label = np.random.default_rng(0).integers(0, src.num_classes, (16, 16)).astype(np.uint8)
    a = dst.flip_label(map_label(label, src, dst))
    b = map_label(src.flip_label(label), src, dst)
    np.testing.assert_array_equal(a, b)


def test_palette_and_colorize() -> None:
    s = get_scheme("celebamask13")
    pal = s.palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert tuple(pal[IGNORE_INDEX]) == (255, 255, 255)
    label = np.array([[0, 1], [12, IGNORE_INDEX]], np.uint8)
    rgb = s.colorize(label)
    assert rgb.shape == (2, 2, 3)
    assert tuple(rgb[1, 0]) == s.colors[12]


def test_helen_groups_and_unknown_names() -> None:
    helen = get_scheme("helen11")
    assert helen.group_ids("mouth") == [7, 8, 9]
    assert sorted(helen.group_ids("overall")) == [2, 3, 4, 5, 6, 7, 8, 9]
    with pytest.raises(KeyError, match="celebamask13"):
        get_scheme("celeba")
    with pytest.raises(KeyError, match="no class 'eye'"):
        helen.index("eye")
