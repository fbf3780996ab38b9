"""ONNX export of a face parser or the Pix2Pix generator, verified against PyTorch with onnxruntime.

The graph has ONE input, ``input``: the normalised (B, C, H, W) float32 tensor at the recorded input size,
and ONE output: a parser's main logits at the input size (``logits``, BiSeNet's first output; EAGRNet's
1/4-size parsing logits upsampled inside the graph) or the generator's depth in [-1, 1] (``depth``).
Everything a non-Python consumer needs to feed the graph and read its output is stored in the model's
``metadata_props`` (keys ``faceparse.*``): class names, label scheme, normalisation with explicit
mean/std, input size and value range, output description.

The file is written only after onnxruntime reproduced PyTorch on a random input within the tolerance,
and atomically, so a failed or interrupted export never leaves a file behind.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceparse.inference.predictor import FaceParser, LoadedNetwork, NetworkInfo

DEFAULT_TOLERANCE = 1e-4
# What "(x - mean) / std" each normalisation amounts to, for consumers outside Python (data/normalize.py).
_MEAN_STD = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "symmetric": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # 2x - 1
    "depth": ((0.5,), (0.5,)),  # 2n - 1, n = nearness
}


class ExportError(RuntimeError):
    """The exported graph does not reproduce PyTorch (or could not be built)."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    max_abs_diff: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    metadata: dict[str, str]


class MainOutput(nn.Module):
    """A network whose graph returns one tensor: main logits at input size, or the generator's output."""

    def __init__(self, model: nn.Module, is_parser: bool):
        super().__init__()
        self.model, self.is_parser = model, is_parser

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from faceparse.losses import main_logits

        out = self.model(x)
        if not self.is_parser:
            return out  # (B, 1, H, W) depth in [-1, 1]
        logits = main_logits(out)  # ParserOutput.logits (B, C, h, w); h = H/4 for EAGRNet
        if logits.shape[-2:] != x.shape[-2:]:
            logits = nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return logits  # (B, C, H, W)


def onnx_metadata(info: NetworkInfo, size: tuple[int, int]) -> dict[str, str]:
    """The ``metadata_props`` stored in the exported model (all values are strings, lists as JSON)."""
    mean, std = _MEAN_STD[info.normalization]
    is_parser = info.scheme is not None
    meta = {
        "faceparse.role": info.role,
        "faceparse.arch": info.arch,
        "faceparse.input_name": "input",
        "faceparse.input_channels": str(info.in_channels),
        "faceparse.input_size": json.dumps(list(size)),  # [H, W]
        "faceparse.input_range": "rgb/255 in [0, 1]"
        if info.modality == "rgb"
        else "depth nearness in [0, 1]",
        "faceparse.normalization": info.normalization,
        "faceparse.input_mean": json.dumps(list(mean)),
        "faceparse.input_std": json.dumps(list(std)),
        "faceparse.output_name": "logits" if is_parser else "depth",
        "faceparse.output": (
            "class logits (B, C, H, W) at input size; argmax over C gives class ids"
            if is_parser
            else "depth (B, 1, H, W) in [-1, 1]; nearness = (depth + 1) / 2, 0 = background"
        ),
        "faceparse.source": info.source,
    }
    if info.scheme is not None:
        meta["faceparse.scheme"] = info.scheme.name
        meta["faceparse.classes"] = json.dumps(list(info.scheme.classes))
    return meta


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``faceparse.*`` metadata of an exported model."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props if p.key.startswith("faceparse.")}


def export_onnx(
    network: FaceParser | LoadedNetwork,
    path: str | os.PathLike,
    size: int | tuple[int, int] | None = None,
    opset: int = 17,
    dynamic_batch: bool = True,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> ExportReport:
    """Export ``network`` (a :class:`FaceParser` or a loaded generator) to ONNX at ``path``.

    ``size`` (H, W) defaults to the network's recorded input size. With ``dynamic_batch`` the batch axis
    is symbolic and the check runs on a batch of 2 (a different batch from the one traced). Raises
    :class:`ExportError` when onnxruntime differs from PyTorch by more than ``tolerance`` relative to the
    output's scale: max |difference| > tolerance × max(1, max |PyTorch output|). Logits of a trained
    parser reach hundreds, where fp32 kernels differ by ~1e-6 of the value, not by a fixed 1e-4.
    """
    import onnx

    from faceparse.utils.io import atomic_write_bytes

    model, info = network.model, network.info
    if size is None:
        hw = info.input_size
    elif isinstance(size, int):
        hw = (size, size)
    else:
        height, width = size  # a list [H, W] works as well
        hw = (height, width)
    # a CPU copy: the caller's model keeps its device and mode (see _trace on modes)
    wrapper = MainOutput(copy.deepcopy(model), is_parser=info.scheme is not None).cpu().eval()
    example = _random_input(info, hw, batch=1, seed=seed)
    graph = onnx.load_from_string(_trace(wrapper, example, opset, dynamic_batch, info))
    for key, value in onnx_metadata(info, hw).items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph)
    data = graph.SerializeToString()
    check = _random_input(info, hw, batch=2 if dynamic_batch else 1, seed=seed + 1)
    expected, got = _compare(wrapper, data, check)
    diff = float(np.abs(expected - got).max())
    scale = max(1.0, float(np.abs(expected).max()))
    if not diff <= tolerance * scale:
        raise ExportError(
            f"{path}: onnxruntime differs from PyTorch by {diff:.3g} (max abs), more than the relative "
            f"tolerance {tolerance:g} × the output scale max(1, max |output|) = {scale:.3g}, i.e. "
            f"{tolerance * scale:.3g}; nothing was written"
        )
    atomic_write_bytes(path, data)
    return ExportReport(Path(path), diff, tuple(check.shape), tuple(expected.shape), onnx_metadata(info, hw))


def _random_input(info: NetworkInfo, size: tuple[int, int], batch: int, seed: int) -> torch.Tensor:
    """A normalised random image: uniform pixels in [0, 1] through the network's own normalisation."""
    from faceparse.data.normalize import NORMALIZATIONS

    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand((batch, info.in_channels, *size), generator=generator)
    return NORMALIZATIONS[info.normalization](pixels)


def _trace(
    wrapper: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool, info: NetworkInfo
) -> bytes:
    output_name = "logits" if info.scheme is not None else "depth"
    axes: dict[str, Any] | None = (
        {"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript
        # (not a dependency); its deprecation notices are expected here
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            # training=EVAL restores the wrapper's mode afterwards, recursively: the wrapper must
            # already be in eval mode or the model comes back in train mode
            torch.onnx.export(
                wrapper,
                (example,),
                # typed as a path only, but the TorchScript exporter (dynamo=False) writes to a BytesIO too
                buffer,  # type: ignore[arg-type]
                input_names=["input"],
                output_names=[output_name],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as e:  # unsupported operators and the like
            raise ExportError(f"{info.arch}: ONNX export failed ({type(e).__name__}: {e})") from e
    return buffer.getvalue()


def _compare(wrapper: nn.Module, data: bytes, inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": inputs.numpy()})[0]
    with torch.inference_mode():
        expected = wrapper(inputs).numpy()
    if expected.shape != got.shape:
        raise ExportError(f"onnxruntime output shape {got.shape} differs from PyTorch {expected.shape}")
    return expected, got
