"""The model registry, reference state_dict layouts, gradients, and channels_last + bf16 for every model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from faceparse.models import build_model, list_models
from faceparse.models.registry import MODELS

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"

# name → (tiny builder kwargs, input channels, input size) for fast behavioural tests
TINY = {
    "bisenet": (dict(num_classes=5), 3, (64, 64)),
    "unet_generator": (dict(ngf=8, num_downs=6), 3, (64, 64)),
    "patch_discriminator": (dict(ndf=8), 4, (64, 64)),
    "pixel_discriminator": (dict(ndf=8), 4, (32, 32)),
}


def read_layout(name: str) -> list[tuple[str, str, str]]:
    """(key, shape, dtype) rows of a reference TSV; skips the test if shared/ is absent."""
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"{path} not available")
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            rows.append((key, shape, dtype))
    return rows


def layout_of(model: nn.Module) -> list[tuple[str, str, str]]:
    rows = []
    for key, tensor in model.state_dict().items():
        shape = "scalar" if tensor.dim() == 0 else "x".join(str(s) for s in tensor.shape)
        rows.append((key, shape, str(tensor.dtype).removeprefix("torch.")))
    return rows


def meta_model(name: str, **kwargs) -> nn.Module:
    """Full-size model with shapes only (no memory, no init cost): enough for layouts and counts."""
    with torch.device("meta"):
        return build_model(name, **kwargs)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- registry ---


def test_list_models_names_every_entry():
    assert list_models() == sorted(
        ["bisenet", "eagrnet", "unet_generator", "patch_discriminator", "pixel_discriminator"]
    )
    assert set(list_models()) == set(MODELS)


def test_unknown_model_error_lists_the_names():
    with pytest.raises(ValueError, match="unknown model 'bisenet2'.*bisenet, eagrnet"):
        build_model("bisenet2")


@pytest.mark.parametrize("name", sorted(TINY))
def test_build_model_builds_each_architecture(name):
    kwargs, _, _ = TINY[name]
    model = build_model(name, **kwargs)
    assert isinstance(model, nn.Module)
    assert type(model).__name__ in {"BiSeNet", "UnetGenerator", "PatchDiscriminator", "PixelDiscriminator"}


def test_build_model_eagrnet():
    pytest.importorskip("faceparse.models.eagrnet")
    model = meta_model("eagrnet", num_classes=11)
    assert num_params(model) == 66_722_523


# --- exact parameter counts and reference layouts ---


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("bisenet", dict(num_classes=19), 13_300_416),
        ("bisenet", dict(num_classes=19, in_channels=1), 13_294_144),
        ("unet_generator", dict(in_channels=3, out_channels=1, num_downs=8, ngf=64), 54_409_857),
        ("patch_discriminator", dict(in_channels=4), 2_766_657),
        ("pixel_discriminator", dict(in_channels=4), 8_896),
    ],
)
def test_parameter_counts_match_the_references(name, kwargs, expected):
    assert num_params(meta_model(name, **kwargs)) == expected


@pytest.mark.parametrize(
    "name, kwargs, tsv",
    [
        ("bisenet", dict(num_classes=19), "bisenet19_state_dict.tsv"),
        ("unet_generator", dict(in_channels=3, out_channels=1), "pix2pix_unet256_3to1_state_dict.tsv"),
        ("patch_discriminator", dict(in_channels=4), "pix2pix_patchgan_4ch_state_dict.tsv"),
        ("pixel_discriminator", dict(in_channels=4), "pix2pix_pixelgan_4ch_state_dict.tsv"),
    ],
)
def test_state_dict_layout_matches_reference_key_for_key(name, kwargs, tsv):
    expected = read_layout(tsv)
    actual = layout_of(meta_model(name, **kwargs))
    assert [r[0] for r in actual] == [r[0] for r in expected]  # keys, in order
    assert actual == expected  # shapes and dtypes too


# --- gradients, shapes, channels_last + bf16 ---


def _outputs(result) -> tuple[torch.Tensor, ...]:
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_parameter_receives_a_nonzero_gradient(name):
    torch.manual_seed(0)
    kwargs, channels, size = TINY[name]
    model = build_model(name, **kwargs).train()
    x = torch.randn(2, channels, *size)
    outputs = _outputs(model(x))
    # A random projection of every output, so no gradient can cancel by symmetry.
    loss = sum((out * torch.randn_like(out)).sum() for out in outputs)
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters with no gradient: {dead}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_channels_last_bf16_autocast_matches_fp32(name):
    torch.manual_seed(0)
    kwargs, channels, size = TINY[name]
    model = build_model(name, **kwargs).eval()
    x = torch.randn(1, channels, *size)
    with torch.no_grad():
        reference = _outputs(model(x))
        model_cl = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = _outputs(model_cl(x.contiguous(memory_format=torch.channels_last)))
    assert len(fast) == len(reference)
    for out_fast, out_ref in zip(fast, reference, strict=True):
        assert out_fast.shape == out_ref.shape
        # BiSeNet keeps its class logits in float32 (see BiSeNetOutput); the others return bf16
        assert out_fast.dtype == (torch.float32 if name == "bisenet" else torch.bfloat16)
        assert torch.isfinite(out_fast).all()
        # bf16 keeps ~3 significant digits: compare relative to the output's scale
        error = (out_fast.float() - out_ref).abs().max() / out_ref.abs().max()
        assert error < 0.08, f"{name}: relative error {error:.3f}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_channels_last_bf16_training_step(name):
    torch.manual_seed(0)
    kwargs, channels, size = TINY[name]
    model = build_model(name, **kwargs).train().to(memory_format=torch.channels_last)
    x = torch.randn(2, channels, *size).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sum(out.float().square().mean() for out in _outputs(model(x)))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.dtype == torch.float32 for g in grads)
