"""Label schemes: the single source of truth for class names, ids, colours, flip pairs and merges.

Every other module asks this one. Facts are from FACTS.md §2 (checked against the raw datasets):

* ``celebamask19``      official CelebAMask-HQ merge order (ids 1..18 = the official part order).
* ``celebamask19_fpt``  face-parsing.PyTorch's order; its released ``79999_iter.pth`` predicts in it.
* ``celebamask13``      the paper's CelebAMask-HQ-D classes (paper §3.1).
* ``lapa11``            LaPa ids.
* ``helen11``           Helen (SmithCVPR2013) ids: the same 11 ids as LaPa.

Left/right conventions differ by dataset. In CelebAMask-HQ ``l_`` is the *subject's* left (it lies on
the image's right half); in LaPa "left" is the *image's* left. A horizontal flip swaps the left/right
classes whatever the convention; the convention matters when mapping between schemes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

IGNORE_INDEX = 255
"""Label value excluded from losses and metrics (BiSeNet's OHEM ignore index)."""


class Side(StrEnum):
    """Whose left a scheme's ``left`` classes refer to."""

    SUBJECT = "subject"  # CelebAMask-HQ: l_eye is the person's left eye, on the image's right
    IMAGE = "image"  # LaPa: left eye is the eye on the image's left


@dataclass(frozen=True)
class LabelScheme:
    """A label scheme: names in id order, colours, flip pairs and evaluation groups.

    ``groups`` are merged classes for evaluation (Helen's eyes / brows / mouth / overall, FACTS §1).
    ``report_order`` is the column order of the paper's tables (background excluded).
    """

    name: str
    classes: tuple[str, ...]
    side: Side
    flip_pairs: tuple[tuple[str, str], ...]
    colors: tuple[tuple[int, int, int], ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    report_order: tuple[str, ...] = ()
    display: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.colors) != len(self.classes):
            raise ValueError(
                f"scheme {self.name}: {len(self.colors)} colours for {len(self.classes)} classes"
            )
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"scheme {self.name}: duplicate class names")
        for a, b in self.flip_pairs:
            self.index(a), self.index(b)
        for members in self.groups.values():
            for m in members:
                self.index(m)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def foreground(self) -> tuple[str, ...]:
        """All classes but background: mean F1 is averaged over these (FACTS §1)."""
        return self.classes[1:]

    def index(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            raise KeyError(
                f"scheme {self.name!r} has no class {name!r}; classes: {', '.join(self.classes)}"
            ) from None

    def ids(self, names: tuple[str, ...] | list[str]) -> list[int]:
        return [self.index(n) for n in names]

    def pretty(self, name: str) -> str:
        """The paper's column heading for a class (``L-Eye`` for ``l_eye``)."""
        return self.display.get(name, name)

    def flip_permutation(self) -> np.ndarray:
        """``perm[id]`` = the id a pixel of class ``id`` takes after a horizontal flip."""
        perm = np.arange(self.num_classes, dtype=np.int64)
        for a, b in self.flip_pairs:
            ia, ib = self.index(a), self.index(b)
            perm[ia], perm[ib] = ib, ia
        return perm

    def flip_label(self, label: np.ndarray) -> np.ndarray:
        """Mirror a label map left-right AND swap left/right classes (FACTS §5: the reference does not).

        Values outside the scheme (e.g. :data:`IGNORE_INDEX`) are kept as they are.
        """
        lut = np.arange(256, dtype=np.int64)
        lut[: self.num_classes] = self.flip_permutation()
        if label.dtype == np.uint8:  # the common case: a uint8 lookup, no widening of the whole map
            return np.take(lut.astype(np.uint8), label[..., ::-1])
        flipped = label[..., ::-1].astype(np.intp)
        return np.ascontiguousarray(lut[flipped].astype(label.dtype))

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 palette: class colours, then black (IGNORE_INDEX shows white)."""
        pal = np.zeros((256, 3), dtype=np.uint8)
        pal[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        pal[IGNORE_INDEX] = 255
        return pal

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """(H, W) ids → (H, W, 3) uint8 colour image."""
        return self.palette()[np.clip(label, 0, 255).astype(np.uint8)]

    def group_ids(self, group: str) -> list[int]:
        if group not in self.groups:
            raise KeyError(
                f"scheme {self.name!r} has no evaluation group {group!r}; groups: {list(self.groups)}"
            )
        return self.ids(self.groups[group])

    def to_dict(self) -> dict:
        """JSON-ready description (stored in dataset.json and checkpoints)."""
        return {"name": self.name, "classes": list(self.classes), "side": str(self.side)}


# Colours: face-parsing.PyTorch-like hues, fixed per semantic part so every scheme draws a part alike.
_PART_COLORS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 0),
    "skin": (204, 0, 0),
    "nose": (76, 153, 0),
    "eye_g": (204, 204, 0),
    "l_eye": (51, 51, 255),
    "r_eye": (204, 0, 204),
    "l_brow": (0, 255, 255),
    "r_brow": (255, 204, 204),
    "l_ear": (102, 51, 0),
    "r_ear": (255, 0, 0),
    "mouth": (102, 204, 0),
    "u_lip": (255, 255, 0),
    "l_lip": (0, 0, 153),
    "hair": (0, 0, 204),
    "hat": (255, 51, 153),
    "ear_r": (0, 204, 204),
    "neck_l": (0, 51, 0),
    "neck": (255, 153, 51),
    "cloth": (0, 204, 0),
}
_DISPLAY = {
    "skin": "Skin", "nose": "Nose", "eye_g": "Glasses", "l_eye": "L-Eye", "r_eye": "R-Eye",
    "l_brow": "L-Brow", "r_brow": "R-Brow", "l_ear": "L-Ear", "r_ear": "R-Ear", "mouth": "Mouth",
    "u_lip": "U-Lip", "l_lip": "L-Lip", "hair": "Hair", "hat": "Hat", "ear_r": "Earring",
    "neck_l": "Necklace", "neck": "Neck", "cloth": "Cloth",
}  # fmt: skip

CELEBAMASK_PARTS: tuple[str, ...] = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip
"""The 18 CelebAMask-HQ parts in the official merge order: later parts overwrite earlier ones."""

CELEBAMASK13_RETAINED: tuple[str, ...] = (
    "skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose", "mouth", "u_lip", "l_lip", "hair",
)  # fmt: skip
"""Parts the 3D head model renders (paper §3.1); eye_g, hat, ear_r, neck_l, neck, cloth are dropped."""

_CELEBA_FLIPS = (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"))
_PAPER_ORDER = (
    "skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth", "u_lip", "l_lip", "hair",
)  # fmt: skip


def _celeba_scheme(
    name: str, classes: tuple[str, ...], description: str, order: tuple[str, ...]
) -> LabelScheme:
    return LabelScheme(
        name=name,
        classes=classes,
        side=Side.SUBJECT,
        flip_pairs=_CELEBA_FLIPS,
        colors=tuple(_PART_COLORS[c] for c in classes),
        report_order=order,
        display={c: _DISPLAY.get(c, c) for c in classes},
        description=description,
    )


_LAPA_CLASSES = (
    "background", "skin", "left_eyebrow", "right_eyebrow", "left_eye", "right_eye",
    "nose", "upper_lip", "inner_mouth", "lower_lip", "hair",
)  # fmt: skip
_LAPA_DISPLAY = {
    "skin": "Skin", "left_eyebrow": "L-Brow", "right_eyebrow": "R-Brow", "left_eye": "L-Eye",
    "right_eye": "R-Eye", "nose": "Nose", "upper_lip": "U-Lip", "inner_mouth": "I-Mouth",
    "lower_lip": "L-Lip", "hair": "Hair",
}  # fmt: skip
_LAPA_COLORS = tuple(
    _PART_COLORS[c]
    for c in (
        "background", "skin", "r_brow", "l_brow", "r_eye", "l_eye", "nose", "u_lip", "mouth", "l_lip", "hair",
    )
)  # fmt: skip
_LAPA_FLIPS = (("left_eyebrow", "right_eyebrow"), ("left_eye", "right_eye"))
_HELEN_GROUPS = {
    "eyes": ("left_eye", "right_eye"),
    "brows": ("left_eyebrow", "right_eyebrow"),
    "mouth": ("upper_lip", "inner_mouth", "lower_lip"),
    # Helen's "overall" F1: one merged foreground of brows + eyes + nose + mouth; skin and hair excluded.
    "overall": (
        "left_eyebrow", "right_eyebrow", "left_eye", "right_eye", "nose",
        "upper_lip", "inner_mouth", "lower_lip",
    ),
}  # fmt: skip
_HELEN_ORDER = (
    "skin", "nose", "upper_lip", "inner_mouth", "lower_lip",
    "left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "hair",
)  # fmt: skip

SCHEMES: dict[str, LabelScheme] = {
    "celebamask19": _celeba_scheme(
        "celebamask19", ("background", *CELEBAMASK_PARTS),
        "CelebAMask-HQ, official order (ids 1..18 = merge order)",
        ("skin", "nose", "eye_g", *_PAPER_ORDER[2:], "hat", "ear_r", "neck_l", "neck", "cloth"),
    ),
    "celebamask19_fpt": _celeba_scheme(
        "celebamask19_fpt",
        ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
         "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"),
        "CelebAMask-HQ in face-parsing.PyTorch's order (its released 79999_iter.pth predicts this)",
        ("skin", "nose", "eye_g", *_PAPER_ORDER[2:], "hat", "ear_r", "neck_l", "neck", "cloth"),
    ),
    "celebamask13": _celeba_scheme(
        "celebamask13", ("background", *CELEBAMASK13_RETAINED),
        "CelebAMask-HQ-D: the paper's 13 classes (§3.1)", _PAPER_ORDER,
    ),
    "lapa11": LabelScheme(
        name="lapa11", classes=_LAPA_CLASSES, side=Side.IMAGE, flip_pairs=_LAPA_FLIPS, colors=_LAPA_COLORS,
        # LaPa paper / our Table 5 column order
        report_order=("skin", "hair", "left_eye", "right_eye", "upper_lip", "inner_mouth", "lower_lip",
                      "nose", "left_eyebrow", "right_eyebrow"),
        display=_LAPA_DISPLAY, groups=dict(_HELEN_GROUPS), description="LaPa (left = the image's left)",
    ),
    # Helen shares LaPa's ids; its left/right convention is taken to be LaPa's [unverified, docs/datasets.md].
    "helen11": LabelScheme(
        name="helen11", classes=_LAPA_CLASSES, side=Side.IMAGE, flip_pairs=_LAPA_FLIPS, colors=_LAPA_COLORS,
        report_order=_HELEN_ORDER, display=_LAPA_DISPLAY, groups=dict(_HELEN_GROUPS),
        description="Helen, SmithCVPR2013 face-parsing version (same ids as LaPa)",
    ),
}  # fmt: skip


def get_scheme(name: str | LabelScheme) -> LabelScheme:
    """Look a scheme up by name (a :class:`LabelScheme` passes through)."""
    if isinstance(name, LabelScheme):
        return name
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown label scheme {name!r}; known: {', '.join(SCHEMES)}") from None


# --- mappings between schemes -----------------------------------------------------------------------

# Semantic part each class stands for, in a common subject-side vocabulary (for cross-dataset mapping).
_LAPA_TO_PART_IMAGE_SIDE = {
    "background": "background", "skin": "skin", "nose": "nose", "upper_lip": "u_lip",
    "inner_mouth": "mouth", "lower_lip": "l_lip", "hair": "hair",
    # image-left is the subject's right
    "left_eyebrow": "r_brow", "right_eyebrow": "l_brow", "left_eye": "r_eye", "right_eye": "l_eye",
}  # fmt: skip


def _part_of(scheme: LabelScheme, cls: str) -> str:
    if scheme.name.startswith("celebamask"):
        return cls
    part = _LAPA_TO_PART_IMAGE_SIDE[cls]
    if scheme.side is Side.SUBJECT:  # pragma: no cover - no such LaPa-id scheme today
        raise NotImplementedError
    return part


def mapping_lut(src: str | LabelScheme, dst: str | LabelScheme, *, unmapped: int = 0) -> np.ndarray:
    """A 256-entry lookup table mapping ``src`` ids to ``dst`` ids.

    Classes with no counterpart in ``dst`` (e.g. CelebAMask-HQ's ears or neck in LaPa, or the parts
    CelebAMask-HQ-D drops) go to ``unmapped`` (background by default); left/right are matched by the
    SUBJECT's side, so CelebAMask-HQ ``l_eye`` becomes LaPa ``right_eye`` (the eye on the image's right).
    :data:`IGNORE_INDEX` maps to itself; other ids outside ``src`` map to ``IGNORE_INDEX``.
    """
    s, d = get_scheme(src), get_scheme(dst)
    d_parts = {_part_of(d, c): i for i, c in enumerate(d.classes)}
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for i, c in enumerate(s.classes):
        lut[i] = d_parts.get(_part_of(s, c), unmapped)
    return lut


def map_label(
    label: np.ndarray, src: str | LabelScheme, dst: str | LabelScheme, *, unmapped: int = 0
) -> np.ndarray:
    """Map a label map between schemes with :func:`mapping_lut`."""
    return mapping_lut(src, dst, unmapped=unmapped)[label.astype(np.uint8)]
