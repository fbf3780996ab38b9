"""The offline MediaPipe face detector and face mesh (the optional ``faceparse[depth]`` extra).

One wrapper shared by the layers that need faces: the offline depth backend (``faceparse.depth.estimate``),
the framing check of synthetic data (``faceparse.data.framing``) and the inference face detector
(``faceparse.inference.detect``). mediapipe 0.10.14 is imported on first use, with the install hint in
the error when it is missing; both models ship in its wheel, so nothing is downloaded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

INSTALL_HINT = (
    "the offline depth backend needs mediapipe 0.10.14: "
    "`pip install 'faceparse[depth]'` (from a checkout: `pip install '.[depth]'`), or the lean route that "
    "keeps your protobuf and OpenCV, `make depth-extra`"
)


def import_mediapipe():
    """Import mediapipe, with a shim for protobuf >= 5 (mediapipe 0.10.14 calls a removed API).

    MediaPipe 0.10.14 pins protobuf < 5 but our onnx/tensorboard need protobuf >= 6.31; its only
    casualty here is ``SymbolDatabase.GetPrototype``, which we map to ``message_factory.GetMessageClass``.
    """
    try:
        from google.protobuf import message_factory, symbol_database

        if not hasattr(symbol_database.SymbolDatabase, "GetPrototype"):
            symbol_database.SymbolDatabase.GetPrototype = lambda self, d: message_factory.GetMessageClass(d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mediapipe as mp
    except ImportError as e:
        raise RuntimeError(f"{INSTALL_HINT} ({e})") from None
    return mp


@lru_cache(maxsize=1)
def facemesh_triangles() -> np.ndarray:
    """(852, 3) triangles of MediaPipe's 468-point face mesh, rebuilt from its tessellation edges.

    The edge list gives 854 3-cliques; two are not faces but 'separating' triangles beside the nose
    (each of their edges is already shared by two real faces), and are dropped.
    """
    mp = import_mediapipe()
    edges = {tuple(sorted(e)) for e in mp.solutions.face_mesh.FACEMESH_TESSELATION}
    nbrs: dict[int, set[int]] = {}
    for a, b in edges:
        nbrs.setdefault(a, set()).add(b)
        nbrs.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in nbrs[a] & nbrs[b]}
    count: dict[tuple[int, int], int] = {}
    for t in tris:
        for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])):
            count[e] = count.get(e, 0) + 1
    faces = [
        t for t in sorted(tris) if not all(count[e] >= 3 for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])))
    ]
    return np.asarray(faces, dtype=np.int64)


@dataclass
class Detection:
    """One face found by MediaPipe's detector, in image pixels."""

    box: tuple[float, float, float, float]  # (x0, y0, x1, y1)
    score: float
    # (6, 2): the subject's right eye, left eye, nose tip, mouth centre, right and left ear tragion
    keypoints: np.ndarray


@dataclass
class FaceLandmarks:
    """478 landmarks in ORIGINAL image pixels: (u, v, z) with z in pixels, smaller = closer."""

    points: np.ndarray  # (478, 3)
    det_score: float
    box: Box | None  # crop (x0, y0, side) used for the mesh, None = whole image


class FaceMeshEstimator:
    """MediaPipe face detector + face mesh, both offline (models ship in the wheel)."""

    def __init__(self, margin: float = 0.5, min_side: int = 256):
        mp = import_mediapipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=0.5
            )
            # The FaceMesh wrapper sets calculator options through a protobuf API gone in protobuf 7;
            # the graph's defaults are the wrapper's (thresholds 0.5), so we build the solution directly.
            from mediapipe.python.solution_base import SolutionBase
            from mediapipe.python.solutions import face_mesh

            self._mesh = SolutionBase(
                binary_graph_path=face_mesh._BINARYPB_FILE_PATH,
                side_inputs={"num_faces": 1, "with_attention": True, "use_prev_landmarks": False},
                outputs=["multi_face_landmarks"],
            )
        self.margin, self.min_side = margin, min_side

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()

    def __enter__(self) -> FaceMeshEstimator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _process(self, solution, image: np.ndarray):
        with warnings.catch_warnings():  # protobuf deprecation warnings from inside mediapipe
            warnings.simplefilter("ignore")
            if solution is self._mesh:
                return solution.process({"image": image})
            return solution.process(image)

    def detect(self, rgb: np.ndarray) -> tuple[Box, float] | None:
        """Largest face → (square crop (x0, y0, side) with margin, detector score)."""
        res = self._process(self._detector, np.ascontiguousarray(rgb))
        if not res.detections:
            return None
        H, W = rgb.shape[:2]

        def area(d):
            b = d.location_data.relative_bounding_box
            return b.width * b.height

        det = max(res.detections, key=area)
        b = det.location_data.relative_bounding_box
        box = (b.xmin * W, b.ymin * H, (b.xmin + b.width) * W, (b.ymin + b.height) * H)
        return square_box(box, self.margin), float(det.score[0])

    def detect_all(self, rgb: np.ndarray) -> list[Detection]:
        """Every face the detector finds, largest first: box, score and its six keypoints, in pixels."""
        res = self._process(self._detector, np.ascontiguousarray(rgb))
        H, W = rgb.shape[:2]
        found = []
        for det in res.detections or ():
            b = det.location_data.relative_bounding_box
            box = (b.xmin * W, b.ymin * H, (b.xmin + b.width) * W, (b.ymin + b.height) * H)
            kps = np.array([[k.x * W, k.y * H] for k in det.location_data.relative_keypoints], np.float64)
            found.append(Detection(box, float(det.score[0]), kps))
        return sorted(found, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))

    def mesh_in(self, rgb: np.ndarray, box: Box | None) -> np.ndarray | None:
        """(478, 3) mesh points in image pixels of the face in the square crop ``box`` (None: the whole
        image; a crop smaller than ``min_side`` is upscaled first, the mesh misses small faces); None
        when the mesh finds no face."""
        import cv2

        crop, scale, x0, y0 = rgb, 1.0, 0, 0
        if box is not None:
            x0, y0, side = box
            crop = crop_square(rgb, box)
            if side < self.min_side:
                crop = cv2.resize(crop, (self.min_side, self.min_side), interpolation=cv2.INTER_LINEAR)
            scale = side / crop.shape[1]  # crop pixels → original pixels
        res = self._process(self._mesh, np.ascontiguousarray(crop))
        if not res.multi_face_landmarks:
            return None
        lm = res.multi_face_landmarks[0].landmark
        rel = np.array([[p.x, p.y, p.z] for p in lm], dtype=np.float64)  # (478, 3), relative to the crop
        ch, cw = crop.shape[:2]
        return np.stack(
            [rel[:, 0] * cw * scale + x0, rel[:, 1] * ch * scale + y0, rel[:, 2] * cw * scale], axis=1
        )

    def landmarks(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """Detect, crop, run the mesh (on the whole image when the crop gives none); None when no face
        mesh is found."""
        found = self.detect(rgb)
        box, score = found if found else (None, 0.0)
        pts = self.mesh_in(rgb, box)
        if pts is None and box is not None:  # fall back to the whole image
            box, pts = None, self.mesh_in(rgb, None)
        if pts is None:
            return None
        return FaceLandmarks(points=pts, det_score=score if box is not None else 0.5, box=box)


Box = tuple[int, int, int]  # square crop (x0, y0, side) in image pixels; may extend past the borders


def square_box(box: tuple[float, float, float, float], margin: float) -> Box:
    """A detector box (x0, y0, x1, y1) grown by ``margin`` times its size on every side and made square
    about its centre: the crop (x0, y0, side) of face detection, at least 8 pixels."""
    x0, y0, x1, y1 = box
    side = int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), max(side, 8)


def crop_square(image: np.ndarray, box: Box) -> np.ndarray:
    """The (side, side) crop at ``box`` of an (H, W, ...) image; parts outside the image are 0."""
    x0, y0, side = box
    height, width = image.shape[:2]
    out = np.zeros((side, side, *image.shape[2:]), dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out
