"""How large faces are in the frame: inter-ocular distance over image width, from MediaPipe's face mesh.

The measure of FACTS §5b: the distance between the centres of the two eyes (the mean of face-mesh
landmarks 33/133 and of 362/263, i.e. each eye's outer and inner corner) divided by the image width.
CelebA-HQ photos at 512² measure 0.239 and 0.241; ``faceparse synth`` frames its heads to match
(:data:`faceparse.data.synth.FOV_DEG`). ``faceparse stats --framing`` prints it for any dataset, so a user
can compare their own data with CelebAMask-HQ's framing before training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

# MediaPipe face-mesh landmark ids of each eye's two corners (subject's right eye, then left eye)
EYE_CORNERS = ((33, 133), (362, 263))
CELEBA_HQ_IOD = (0.239, 0.241)  # FACTS §5b: two CelebA-HQ test photos at 512²


@dataclass
class FramingReport:
    """Per-image inter-ocular distance / width; images where no face mesh was found are counted."""

    iod: list[float]
    missed: list[str]

    @property
    def median(self) -> float:
        return float(np.median(self.iod)) if self.iod else float("nan")

    def quantiles(self, qs: Iterable[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> dict[float, float]:
        if not self.iod:
            return {q: float("nan") for q in qs}
        return {q: float(np.quantile(self.iod, q)) for q in qs}


def interocular_ratio(points: np.ndarray, width: int) -> float:
    """Eye-centre distance / image width from (478, ≥2) face-mesh points in pixels."""
    centres = [points[list(ids), :2].mean(axis=0) for ids in EYE_CORNERS]
    return float(np.linalg.norm(centres[0] - centres[1]) / width)


def measure_framing(
    images: Iterable[tuple[str, np.ndarray]],
    on_image: Callable[[], None] | None = None,
) -> FramingReport:
    """Measure (name, RGB uint8 (H, W, 3)) images with the offline face mesh (needs ``faceparse[depth]``)."""
    from faceparse.utils.facemesh import FaceMeshEstimator

    iod: list[float] = []
    missed: list[str] = []
    with FaceMeshEstimator() as estimator:
        for name, rgb in images:
            found = estimator.landmarks(rgb)
            if found is None:
                missed.append(name)
            else:
                iod.append(interocular_ratio(found.points, rgb.shape[1]))
            if on_image is not None:
                on_image()
    return FramingReport(iod, missed)


def dataset_images(
    root: str | os.PathLike, split: str, limit: int | None = None
) -> tuple[int, Iterable[tuple[str, np.ndarray]]]:
    """(count, lazy (id, RGB) pairs) of the first ``limit`` samples of a split."""
    from faceparse.data.format import open_layout, read_rgb
    from faceparse.utils.io import DataError

    layout = open_layout(root)
    ids = layout.split_ids(split)
    if limit is not None:
        ids = ids[:limit]

    def load() -> Iterable[tuple[str, np.ndarray]]:
        for sid in ids:
            path = layout.rgb_path(sid)
            if path is None:
                raise DataError(layout.root, f"sample {sid!r} of split {split!r} has no RGB image")
            yield sid, read_rgb(path)

    return len(ids), load()
