"""Inference: ``face_parser(source)`` for RGB or depth images (with optional face detection), pictures of
predictions, and ONNX export.

>>> from faceparse.inference import face_parser          # doctest: +SKIP
>>> parser = face_parser("79999_iter.pth")                # face-parsing.PyTorch's released weights
>>> out = parser("face.jpg")                             # dict: logits, labels, classes, scheme, sizes
>>> predict_video(parser, "clip.mp4", "out/")            # label maps, overlay video, per-frame JSON

``export_onnx`` lives in :mod:`faceparse.inference.export` (it imports onnx only when called).
"""

from faceparse.inference.detect import DetectorUnavailable, mediapipe_detector
from faceparse.inference.metric_depth import MetricDepth, metric_depth_to_nearness
from faceparse.inference.predictor import (
    FaceParser,
    LoadedNetwork,
    NetworkInfo,
    PredictReport,
    face_parser,
    list_inputs,
    load_network,
    predict_files,
)
from faceparse.inference.video import predict_video
from faceparse.inference.visualize import colorize, depth_to_rgb, overlay, side_by_side


def export_onnx(*args, **kwargs):  # noqa: ANN002, ANN003 - forwards to faceparse.inference.export.export_onnx
    """See :func:`faceparse.inference.export.export_onnx`."""
    from faceparse.inference.export import export_onnx as _export_onnx

    return _export_onnx(*args, **kwargs)


__all__ = [
    "DetectorUnavailable",
    "FaceParser",
    "LoadedNetwork",
    "MetricDepth",
    "NetworkInfo",
    "PredictReport",
    "colorize",
    "depth_to_rgb",
    "export_onnx",
    "face_parser",
    "list_inputs",
    "load_network",
    "mediapipe_detector",
    "metric_depth_to_nearness",
    "overlay",
    "predict_files",
    "predict_video",
    "side_by_side",
]
