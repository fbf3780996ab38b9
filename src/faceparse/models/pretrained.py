"""Pretrained weights from LOCAL files: ImageNet ResNet-18 for BiSeNet's backbone, face-parsing.PyTorch's
released BiSeNet, and our own safetensors format that carries its metadata. Nothing here downloads.

* ``load_imagenet_backbone(model, path)``: torchvision's ``resnet18-*.pth`` onto ``cp.resnet.*``
  (face-parsing.PyTorch starts from these weights); ``fc.*`` is ignored; a 1-channel stem gets the RGB kernels
  summed over the input channels.
* ``load_face_parsing_pytorch(path)``: the released ``79999_iter.pth`` (or any checkpoint in its layout),
  with or without a DataParallel ``module.`` prefix → ``(BiSeNet, PretrainedInfo)``. It predicts the 19
  classes of the ``celebamask19_fpt`` scheme from ImageNet-normalised RGB.
* ``convert_face_parsing_pytorch(src, dst)`` / ``faceparse convert-fpt``: the same weights as safetensors with
  the metadata inside the file and in a JSON sidecar; ``load_pretrained(dst)`` rebuilds the model from it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from faceparse.labels import get_scheme
from faceparse.models.bisenet import BiSeNet
from faceparse.models.registry import build_model
from faceparse.utils.io import DataError, atomic_path, atomic_write_json

FPT_CHECKPOINT = "79999_iter.pth"
IMAGENET_RESNET18 = "resnet18-f37072fd.pth"
_DP_PREFIX = "module."


@dataclass(frozen=True)
class PretrainedInfo:
    """What using a set of weights needs: architecture, classes, input normalisation, provenance."""

    arch: str
    num_classes: int
    in_channels: int
    label_scheme: str
    normalization: str  # a key of faceparse.data.normalize.NORMALIZATIONS
    source: str
    license: str = ""

    def to_metadata(self) -> dict[str, str]:
        """Flat str → str mapping (the form safetensors metadata takes)."""
        return {f"faceparse.{k}": str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], path: str | os.PathLike) -> PretrainedInfo:
        values = {k.removeprefix("faceparse."): v for k, v in metadata.items() if k.startswith("faceparse.")}
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and f.name != "license"]
        if missing:
            raise DataError(
                path, f"no faceparse metadata for {', '.join(missing)}; was it written by convert-fpt?"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict = {k: v for k, v in values.items() if k in known}
        try:
            kwargs["num_classes"] = int(kwargs["num_classes"])
            kwargs["in_channels"] = int(kwargs["in_channels"])
        except ValueError as e:
            raise DataError(path, f"malformed faceparse metadata ({e})") from None
        return cls(**kwargs)


def check_scheme_fits(scheme: str, num_classes: int, path: str | os.PathLike) -> None:
    """Refuse weights whose label scheme has another number of classes than their network has outputs:
    their labels would be read under the wrong names (and ids past the scheme's written)."""
    try:
        expected = get_scheme(scheme).num_classes
    except KeyError as e:
        raise DataError(path, str(e.args[0])) from None
    if expected != num_classes:
        raise DataError(
            path,
            f"its metadata does not fit the network: scheme {scheme} has {expected} classes but the "
            f"network has {num_classes} outputs",
        )


def face_parsing_pytorch_info(num_classes: int = 19, in_channels: int = 3) -> PretrainedInfo:
    """Metadata of face-parsing.PyTorch's BiSeNet (FACTS §2: its 19 classes are in its own order)."""
    return PretrainedInfo(
        arch="bisenet",
        num_classes=num_classes,
        in_channels=in_channels,
        label_scheme="celebamask19_fpt",
        normalization="imagenet",
        source=f"zllrunning/face-parsing.PyTorch {FPT_CHECKPOINT}",
        license="MIT",
    )


def _require_file(path: str | os.PathLike, what: str, expected_name: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: {what} not found. faceparse never downloads weights: obtain {expected_name} yourself "
            f"and put it at this path (or pass the path where it is)."
        )
    return path


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a plain state_dict (or a dict holding one under "state_dict")."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types; all mean "not a usable checkpoint"
        raise DataError(path, f"cannot be read as a PyTorch weights file ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(path, "is not a state_dict (a mapping of parameter names to tensors)")
    return {k.removeprefix(_DP_PREFIX): v for k, v in obj.items()}


def adapt_stem(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt RGB first-layer kernels (out, 3, k, k) to ``in_channels`` inputs.

    1 channel: sum over RGB, so a gray image x gives the response the RGB net gave to (x, x, x).
    Otherwise: repeat the RGB kernels cyclically and rescale by 3 / in_channels to keep the response scale.
    """
    if weight.shape[1] == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def load_imagenet_backbone(model: BiSeNet, path: str | os.PathLike) -> BiSeNet:
    """Initialise BiSeNet's ResNet-18 from a local torchvision ``resnet18-*.pth``; returns ``model``.

    Every backbone weight and BN statistic must be in the file (``fc.*`` is ignored; the BN
    ``num_batches_tracked`` counters may be absent, as in older torchvision files). The stem is adapted to the
    model's ``in_channels`` with ``adapt_stem``. Nothing outside ``cp.resnet`` is touched.
    """
    path = _require_file(path, "ImageNet ResNet-18 weights", f"torchvision's {IMAGENET_RESNET18}")
    source = {k: v for k, v in _load_state_dict(path).items() if not k.startswith("fc.")}
    backbone = model.cp.resnet
    target = backbone.state_dict()
    for key in target:  # files saved before PyTorch 0.4.1 have no BN step counters; keep ours
        if key.endswith("num_batches_tracked"):
            source.setdefault(key, target[key])
    missing = sorted(set(target) - set(source))
    if missing:
        raise DataError(path, f"not a torchvision ResNet-18 state_dict: missing {', '.join(missing[:5])}")
    source["conv1.weight"] = adapt_stem(source["conv1.weight"], model.in_channels)
    for key, value in target.items():
        if source[key].shape != value.shape:
            raise DataError(
                path, f"{key} has shape {tuple(source[key].shape)}, expected {tuple(value.shape)}"
            )
    backbone.load_state_dict({k: source[k] for k in target}, strict=True)
    return model


def load_face_parsing_pytorch(
    path: str | os.PathLike, in_channels: int = 3
) -> tuple[BiSeNet, PretrainedInfo]:
    """Load a face-parsing.PyTorch BiSeNet checkpoint (e.g. the released ``79999_iter.pth``).

    ``in_channels=1`` sums the stem's RGB kernels (a depth parser initialised from the RGB one). The number of
    classes is read from the checkpoint. Returns the model in eval mode and its ``PretrainedInfo``.
    """
    path = _require_file(path, "face-parsing.PyTorch checkpoint", FPT_CHECKPOINT)
    state = _load_state_dict(path)
    head = state.get("conv_out.conv_out.weight")
    if head is None or head.dim() != 4:
        raise DataError(path, "not a face-parsing.PyTorch BiSeNet checkpoint (no conv_out.conv_out.weight)")
    stem = state.get("cp.resnet.conv1.weight")
    if stem is not None and stem.dim() == 4:
        state["cp.resnet.conv1.weight"] = adapt_stem(stem, in_channels)
    model = BiSeNet(num_classes=head.shape[0], in_channels=in_channels)
    _strict_load(model, state, path)
    return model.eval(), face_parsing_pytorch_info(head.shape[0], in_channels)


def _strict_load(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} wrong shapes (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise DataError(path, "does not match the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON metadata file written next to a safetensors file: ``x.safetensors`` → ``x.json``."""
    return Path(path).with_suffix(".json")


def save_pretrained(model: nn.Module, info: PretrainedInfo, dst: str | os.PathLike) -> Path:
    """Write ``model``'s state_dict as safetensors (metadata inside) plus a JSON sidecar, atomically."""
    from safetensors.torch import save_file

    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"{dst}: the destination must end in .safetensors")
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(dst) as tmp:
        save_file(tensors, str(tmp), metadata=info.to_metadata())
    atomic_write_json(sidecar_path(dst), {"weights": dst.name, **dataclasses.asdict(info)})
    return dst


def load_pretrained(path: str | os.PathLike) -> tuple[nn.Module, PretrainedInfo]:
    """Rebuild a model from a faceparse safetensors file (as written by ``save_pretrained``); eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = _require_file(path, "faceparse safetensors weights", "the file written by `faceparse convert-fpt`")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise DataError(path, f"cannot be read as safetensors ({type(e).__name__}: {e})") from None
    info = PretrainedInfo.from_metadata(metadata, path)
    check_scheme_fits(info.label_scheme, info.num_classes, path)
    model = build_model(info.arch, num_classes=info.num_classes, in_channels=info.in_channels)
    _strict_load(model, state, path)  # the weights have num_classes outputs, or this refuses them
    return model.eval(), info


def convert_face_parsing_pytorch(
    src: str | os.PathLike, dst: str | os.PathLike, in_channels: int = 3
) -> PretrainedInfo:
    """Convert a face-parsing.PyTorch checkpoint to faceparse safetensors (+ ``.json`` sidecar)."""
    model, info = load_face_parsing_pytorch(src, in_channels=in_channels)
    save_pretrained(model, info, dst)
    return info
