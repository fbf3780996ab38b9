"""Predictor batching and onnxruntime vs PyTorch, in the same process (docs/results.md).

Run: python -W ignore benchmarks/inference.py
"""

import time

import numpy as np
import onnxruntime as ort
import torch

from faceparse.inference import export_onnx, face_parser
from faceparse.models import build_model
from faceparse.models.pretrained import face_parsing_pytorch_info, save_pretrained

torch.manual_seed(0)
save_pretrained(
    build_model("bisenet", num_classes=19).eval(),
    face_parsing_pytorch_info(),
    "/tmp/faceparse-bench/b19.safetensors",
)
parser = face_parser("/tmp/faceparse-bench/b19.safetensors", batch_size=8)  # 512x512 input, CPU
rng = np.random.default_rng(0)
images = [rng.integers(0, 256, (720, 640, 3), dtype=np.uint8) for _ in range(8)]


def best(fn, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


parser(images[:1])  # warm-up
one = best(lambda: [parser(im) for im in images[:4]], 2) / 4
eight = best(lambda: parser(images), 2) / 8
report = export_onnx(parser, "/tmp/faceparse-bench/b19.onnx", tolerance=1e-3)
session = ort.InferenceSession("/tmp/faceparse-bench/b19.onnx", providers=["CPUExecutionProvider"])
x = parser.prepare(images[:1])
torch_fwd = best(lambda: parser.forward(x))
ort_fwd = best(lambda: session.run(None, {"input": x.numpy()}))
print(f"predictor s/image, 720x640 RGB -> 512^2 BiSeNet(19): batch 1 {one:.3f}, batch 8 {eight:.3f}")
print(f"ONNX export max|diff| at 512^2 = {report.max_abs_diff:.2e}")
print(
    f"forward 1x3x512^2: torch {torch_fwd:.3f} s, onnxruntime {ort_fwd:.3f} s, "
    f"ratio ort/torch {ort_fwd / torch_fwd:.2f}"
)
