"""Every registered model: reference state_dict layouts and counts, and at tiny size shapes, gradients for
every parameter, a state-dict round trip, and channels_last + bf16. Parametrised over the registry: a new
model must add its tiny settings to ``TINY`` (a test fails until it does)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faceparse.models import ParserOutput, build_model, list_models
from faceparse.models.registry import MODELS, PARSERS
from tiny import read_layout

# name → (tiny builder kwargs, input channels, input size) for fast behavioural tests. EAGRNet keeps its
# reference width (66.7M parameters); 32² is its smallest input (models/eagrnet.py MIN_INPUT_SIZE).
TINY = {
    "bisenet": (dict(num_classes=5), 3, (64, 64)),
    "eagrnet": (dict(num_classes=5), 3, (32, 32)),
    "unet_generator": (dict(ngf=8, num_downs=6), 3, (64, 64)),
    "patch_discriminator": (dict(ndf=8), 4, (64, 64)),
    "pixel_discriminator": (dict(ndf=8), 4, (32, 32)),
}
REGISTERED = list_models()


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


def test_every_registered_model_has_tiny_test_settings():
    assert sorted(TINY) == REGISTERED


@pytest.mark.parametrize("name", REGISTERED)
def test_build_model_builds_each_architecture(name):
    kwargs, _, _ = TINY[name]
    model = build_model(name, **kwargs)
    assert isinstance(model, nn.Module)
    expected = {"BiSeNet", "EAGRNet", "UnetGenerator", "PatchDiscriminator", "PixelDiscriminator"}
    assert type(model).__name__ in expected


# --- exact parameter counts and reference layouts ---


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("bisenet", dict(num_classes=19), 13_300_416),
        ("bisenet", dict(num_classes=19, in_channels=1), 13_294_144),
        ("eagrnet", dict(num_classes=11), 66_722_523),
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
        ("eagrnet", dict(num_classes=11), "eagrnet11_state_dict.tsv"),
        ("unet_generator", dict(in_channels=3, out_channels=1), "pix2pix_unet256_3to1_state_dict.tsv"),
        ("patch_discriminator", dict(in_channels=4), "pix2pix_patchgan_4ch_state_dict.tsv"),
        ("pixel_discriminator", dict(in_channels=4), "pix2pix_pixelgan_4ch_state_dict.tsv"),
    ],
)
def test_state_dict_layout_matches_reference_key_for_key(name, kwargs, tsv):
    expected = read_layout(tsv)
    actual = layout_of(meta_model(name, **kwargs))
    if name == "eagrnet":  # the reference uses InPlaceABN, which keeps no num_batches_tracked
        actual = [row for row in actual if not row[0].endswith("num_batches_tracked")]
    assert [r[0] for r in actual] == [r[0] for r in expected]  # keys, in order
    assert actual == expected  # shapes and dtypes too


# --- gradients, shapes, channels_last + bf16 ---


def _outputs(result: ParserOutput | torch.Tensor) -> tuple[torch.Tensor, ...]:
    return result.tensors() if isinstance(result, ParserOutput) else (result,)


@pytest.mark.parametrize("name", REGISTERED)
def test_parsers_return_a_parser_output_and_the_others_a_tensor(name):
    torch.manual_seed(0)
    kwargs, channels, size = TINY[name]
    model = build_model(name, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, *size))
    assert isinstance(out, ParserOutput) == (name in PARSERS)
    if name not in PARSERS:
        assert isinstance(out, torch.Tensor)
        return
    classes, (height, width) = kwargs["num_classes"], size
    if name == "bisenet":  # main logits and the 1/16, 1/32 heads, all upsampled to the input size
        assert out.logits.shape == (2, classes, height, width)
        assert [a.shape for a in out.aux] == [(2, classes, height, width)] * 2
        assert out.edge is None
    else:  # eagrnet: parsing and edge logits at 1/4, no auxiliary logits
        assert out.logits.shape == (2, classes, height // 4, width // 4)
        assert out.aux == ()
        assert out.edge is not None and out.edge.shape == (2, 2, height // 4, width // 4)


@pytest.mark.parametrize("name", REGISTERED)
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


@pytest.mark.parametrize("name", REGISTERED)
def test_state_dict_round_trip_reproduces_the_outputs(name, tmp_path):
    from safetensors.torch import load_file, save_file

    kwargs, channels, size = TINY[name]
    torch.manual_seed(0)
    model = build_model(name, **kwargs).eval()
    x = torch.randn(1, channels, *size)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    torch.manual_seed(1)  # a different initialisation, overwritten by the load
    fresh = build_model(name, **kwargs).eval()
    fresh.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    with torch.no_grad():
        for ours, theirs in zip(_outputs(model(x)), _outputs(fresh(x)), strict=True):
            assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", REGISTERED)
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


@pytest.mark.parametrize("name", REGISTERED)
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
