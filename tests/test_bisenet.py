"""BiSeNet: numerical behaviour of face-parsing.PyTorch's network and loading its checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from faceparse.models import ParserOutput
from faceparse.models.bisenet import BiSeNet, param_groups
from faceparse.models.pretrained import (
    PretrainedInfo,
    adapt_stem,
    convert_face_parsing_pytorch,
    load_face_parsing_pytorch,
    load_imagenet_backbone,
    load_pretrained,
    sidecar_path,
)
from faceparse.models.resnet import ResNet18Trunk
from faceparse.utils.io import DataError, read_json
from tiny import read_layout


def small_bisenet(seed: int = 0, **kwargs) -> BiSeNet:
    torch.manual_seed(seed)
    model = BiSeNet(**{"num_classes": 5, **kwargs})
    randomize_bn_statistics(model, seed)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> BiSeNet:
    """One small eval-mode BiSeNet shared by the read-only tests (building one costs ~13M random draws)."""
    return small_bisenet()


@pytest.fixture(scope="module")
def fpt_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A synthetic checkpoint in the 79999_iter.pth layout, written once per module."""
    path = tmp_path_factory.mktemp("fpt") / "79999_iter.pth"
    return path, synthetic_fpt_checkpoint(path)


def randomize_bn_statistics(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN affine + running stats, so eval-mode checks exercise them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


# --- an independent, functional transcription of face-parsing.PyTorch's forward (model.py + resnet.py) ---


def _bn(x, sd, prefix):
    return F.batch_norm(
        x,
        sd[f"{prefix}.running_mean"],
        sd[f"{prefix}.running_var"],
        sd[f"{prefix}.weight"],
        sd[f"{prefix}.bias"],
    )


def _cbr(x, sd, prefix, padding):
    return F.relu(_bn(F.conv2d(x, sd[f"{prefix}.conv.weight"], padding=padding), sd, f"{prefix}.bn"))


def _block(x, sd, prefix, stride):
    r = F.relu(_bn(F.conv2d(x, sd[f"{prefix}.conv1.weight"], stride=stride, padding=1), sd, f"{prefix}.bn1"))
    r = _bn(F.conv2d(r, sd[f"{prefix}.conv2.weight"], padding=1), sd, f"{prefix}.bn2")
    if f"{prefix}.downsample.0.weight" in sd:
        x = _bn(F.conv2d(x, sd[f"{prefix}.downsample.0.weight"], stride=stride), sd, f"{prefix}.downsample.1")
    return F.relu(x + r)


def _arm(x, sd, prefix):
    feat = _cbr(x, sd, f"{prefix}.conv", 1)
    att = torch.sigmoid(
        _bn(
            F.conv2d(feat.mean((2, 3), keepdim=True), sd[f"{prefix}.conv_atten.weight"]),
            sd,
            f"{prefix}.bn_atten",
        )
    )
    return feat * att


def _head(x, sd, prefix):
    return F.conv2d(_cbr(x, sd, f"{prefix}.conv", 1), sd[f"{prefix}.conv_out.weight"])


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    r = "cp.resnet"
    x0 = F.max_pool2d(
        F.relu(_bn(F.conv2d(x, sd[f"{r}.conv1.weight"], stride=2, padding=3), sd, f"{r}.bn1")), 3, 2, 1
    )
    feats = []
    h = _block(_block(x0, sd, f"{r}.layer1.0", 1), sd, f"{r}.layer1.1", 1)
    for layer in (2, 3, 4):
        h = _block(_block(h, sd, f"{r}.layer{layer}.0", 2), sd, f"{r}.layer{layer}.1", 1)
        feats.append(h)
    feat8, feat16, feat32 = feats
    avg = _cbr(feat32.mean((2, 3), keepdim=True), sd, "cp.conv_avg", 0)
    feat32_sum = _arm(feat32, sd, "cp.arm32") + F.interpolate(avg, feat32.shape[2:], mode="nearest")
    cp16 = _cbr(F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest"), sd, "cp.conv_head32", 1)
    feat16_sum = _arm(feat16, sd, "cp.arm16") + cp16
    cp8 = _cbr(F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest"), sd, "cp.conv_head16", 1)
    fuse = _cbr(torch.cat([feat8, cp8], 1), sd, "ffm.convblk", 0)
    att = torch.sigmoid(
        F.conv2d(
            F.relu(F.conv2d(fuse.mean((2, 3), keepdim=True), sd["ffm.conv1.weight"])), sd["ffm.conv2.weight"]
        )
    )
    fuse = fuse * att + fuse
    logits = [_head(fuse, sd, "conv_out"), _head(cp8, sd, "conv_out16"), _head(cp16, sd, "conv_out32")]
    return [F.interpolate(lg, x.shape[2:], mode="bilinear", align_corners=True) for lg in logits]


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (128, 128), (64, 96), (72, 88)])
def test_forward_matches_functional_transcription_of_reference(model, size):
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        outputs = model(x)
        expected = reference_forward(model.state_dict(), x)
    assert isinstance(outputs, ParserOutput) and outputs.edge is None and len(outputs.aux) == 2
    for out, ref in zip(outputs.tensors(), expected, strict=True):  # (out, out16, out32)
        assert out.shape == (1, 5, *size)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_outputs_are_upsampled_bilinearly_with_align_corners(model):
    captured = {}
    hook = model.conv_out.register_forward_hook(lambda m, i, o: captured.setdefault("low", o))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x).logits
    hook.remove()
    low = captured["low"]  # (1, 5, 8, 12): logits at 1/8
    assert low.shape == (1, 5, 8, 12)
    torch.testing.assert_close(out, F.interpolate(low, (64, 96), mode="bilinear", align_corners=True))
    assert not torch.allclose(
        out, F.interpolate(low, (64, 96), mode="bilinear", align_corners=False), atol=1e-3
    )
    # align_corners=True maps corner pixels exactly onto corner pixels
    for i, j in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        torch.testing.assert_close(out[..., i, j], low[..., i, j])


def test_eval_mode_is_deterministic_and_seeded_init_reproducible():
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model = small_bisenet(seed=3)
        first, second = model(x), model(x)
        third = small_bisenet(seed=3)(x)
    for a, b, c in zip(first.tensors(), second.tensors(), third.tensors(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_logits_stay_float32_under_bf16_autocast(model):
    captured = {}
    hook = model.conv_out.conv.register_forward_hook(lambda m, i, o: captured.setdefault("feat", o))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(torch.randn(1, 3, 64, 64))
    hook.remove()
    assert captured["feat"].dtype == torch.bfloat16  # the body runs in bf16 ...
    assert all(
        out.dtype == torch.float32 for out in outputs.tensors()
    )  # ... the classifier and upsampling in fp32


def test_batch_elements_are_independent_in_eval_mode(model):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both = model(x).logits
        single = model(x[1:]).logits
    torch.testing.assert_close(both[1:], single, rtol=1e-5, atol=1e-5)


def test_one_channel_model_differs_only_in_the_stem():
    rgb, depth = BiSeNet(19, 3).state_dict(), BiSeNet(19, 1).state_dict()
    assert list(rgb) == list(depth)
    different = [k for k in rgb if rgb[k].shape != depth[k].shape]
    assert different == ["cp.resnet.conv1.weight"]
    assert depth["cp.resnet.conv1.weight"].shape == (64, 1, 7, 7)
    out = small_bisenet(in_channels=1)(torch.randn(1, 1, 64, 64))
    assert [o.shape for o in out.tensors()] == [(1, 5, 64, 64)] * 3


def test_head_convs_use_kaiming_init_and_backbone_keeps_default():
    torch.manual_seed(0)
    model = BiSeNet(19)
    w = model.conv_out.conv.conv.weight  # 256 x 256 x 3 x 3, fan_in 2304, kaiming a=1 → std = 1/sqrt(fan_in)
    assert abs(w.std().item() - 2304**-0.5) < 0.05 * 2304**-0.5
    stem = model.cp.resnet.conv1.weight  # PyTorch default: uniform(±1/sqrt(fan_in)), fan_in 147
    assert stem.abs().max().item() <= 147**-0.5 + 1e-6


def test_param_groups_partition_all_parameters():
    model = BiSeNet(5)
    groups = param_groups(model)
    ids = [id(p) for group in groups.values() for p in group]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert any(p is model.conv_out.conv_out.weight for p in groups["head_wd"])
    assert any(p is model.ffm.convblk.bn.weight for p in groups["head_no_wd"])
    assert any(p is model.cp.resnet.conv1.weight for p in groups["wd"])
    assert all(p.dim() == 1 for p in groups["no_wd"] + groups["head_no_wd"])


# --- ImageNet backbone loader ---


def torchvision_resnet18_file(
    path: Path, seed: int = 0, with_counters: bool = True
) -> dict[str, torch.Tensor]:
    """A hand-made torchvision-format resnet18 state_dict (with its fc head) saved to ``path``.

    ``with_counters=False`` drops the BN ``num_batches_tracked`` entries, as in pre-0.4.1 torchvision files.
    """
    g = torch.Generator().manual_seed(seed)
    state = {
        k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in ResNet18Trunk().state_dict().items()
    }
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512, generator=g), torch.randn(1000, generator=g)
    if not with_counters:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    return state


@pytest.mark.parametrize("with_counters", [True, False])
def test_imagenet_loader_maps_keys_onto_backbone_only(tmp_path, with_counters):
    source = torchvision_resnet18_file(tmp_path / "resnet18-f37072fd.pth", with_counters=with_counters)
    model = BiSeNet(19)
    head_before = model.conv_out.conv_out.weight.clone()
    load_imagenet_backbone(model, tmp_path / "resnet18-f37072fd.pth")
    loaded = model.state_dict()
    for key, value in source.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[f"cp.resnet.{key}"], value), key
    assert torch.equal(model.conv_out.conv_out.weight, head_before)


def test_imagenet_loader_sums_rgb_kernels_for_one_channel(tmp_path):
    source = torchvision_resnet18_file(tmp_path / "r18.pth")
    model = load_imagenet_backbone(BiSeNet(19, in_channels=1), tmp_path / "r18.pth")
    stem = model.cp.resnet.conv1.weight
    torch.testing.assert_close(stem, source["conv1.weight"].sum(dim=1, keepdim=True))
    # a gray image through the 1-channel stem = the same image replicated to RGB through the RGB stem
    gray = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(
        F.conv2d(gray, stem, stride=2, padding=3),
        F.conv2d(gray.expand(1, 3, 16, 16), source["conv1.weight"], stride=2, padding=3),
        rtol=1e-4,
        atol=1e-4,
    )


def test_adapt_stem_other_channel_counts_keep_the_response_scale():
    weight = torch.randn(8, 3, 7, 7)
    assert adapt_stem(weight, 3) is weight
    four = adapt_stem(weight, 4)
    assert four.shape == (8, 4, 7, 7)
    torch.testing.assert_close(four[:, :3], weight * 0.75)


def test_imagenet_loader_errors_name_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(
        FileNotFoundError, match=r"nowhere/resnet18.pth.*never downloads.*resnet18-f37072fd.pth"
    ):
        load_imagenet_backbone(BiSeNet(19), missing)
    partial = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, partial)
    with pytest.raises(DataError, match=r"partial.pth.*missing"):
        load_imagenet_backbone(BiSeNet(19), partial)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="garbage.pth"):
        load_imagenet_backbone(BiSeNet(19), garbage)


# --- face-parsing.PyTorch checkpoints ---


def synthetic_fpt_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Random tensors in the exact layout of the released 79999_iter.pth (read from the reference TSV)."""
    g = torch.Generator().manual_seed(1)
    state = {}
    for key, shape, dtype in read_layout("bisenet19_state_dict.tsv"):
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        if dtype == "int64":
            state[key] = torch.tensor(80000, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(dims, generator=g) + 0.5
        else:
            state[key] = torch.randn(dims, generator=g) * 0.1
    torch.save(state, path)
    return state


@pytest.mark.parametrize("prefix", ["", "module."])
def test_load_face_parsing_pytorch_checkpoint(tmp_path, fpt_file, prefix):
    path, state = fpt_file
    if prefix:  # as saved from a DataParallel-wrapped model
        path = tmp_path / "79999_iter.pth"
        torch.save({prefix + k: v for k, v in state.items()}, path)
    model, info = load_face_parsing_pytorch(path)
    assert not model.training
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert info.label_scheme == "celebamask19_fpt" and info.normalization == "imagenet"
    assert (info.arch, info.num_classes, info.in_channels) == ("bisenet", 19, 3)


def test_load_face_parsing_pytorch_as_depth_parser(fpt_file):
    path, state = fpt_file
    model, info = load_face_parsing_pytorch(path, in_channels=1)
    assert info.in_channels == 1
    torch.testing.assert_close(
        model.cp.resnet.conv1.weight, state["cp.resnet.conv1.weight"].sum(1, keepdim=True)
    )


def test_load_face_parsing_pytorch_errors(tmp_path, fpt_file):
    with pytest.raises(FileNotFoundError, match=r"absent.pth.*79999_iter.pth"):
        load_face_parsing_pytorch(tmp_path / "absent.pth")
    state = dict(fpt_file[1])
    del state["ffm.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(
        DataError, match=r"broken.pth.*1 missing keys \(e.g. ffm.conv1.weight\).*extra.weight"
    ):
        load_face_parsing_pytorch(tmp_path / "broken.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(DataError, match=r"other.pth.*not a face-parsing.PyTorch"):
        load_face_parsing_pytorch(tmp_path / "other.pth")


def test_convert_to_safetensors_round_trip(tmp_path, fpt_file):
    info = convert_face_parsing_pytorch(fpt_file[0], tmp_path / "bisenet.safetensors")
    reloaded, reloaded_info = load_pretrained(tmp_path / "bisenet.safetensors")
    original, _ = load_face_parsing_pytorch(fpt_file[0])
    assert reloaded_info == info
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(reloaded(x)[0], original(x)[0])
    sidecar = read_json(sidecar_path(tmp_path / "bisenet.safetensors"))
    assert sidecar["label_scheme"] == "celebamask19_fpt" and sidecar["normalization"] == "imagenet"
    assert sidecar["weights"] == "bisenet.safetensors"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_load_pretrained_rejects_files_without_metadata(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(DataError, match=r"plain.safetensors.*no faceparse metadata"):
        load_pretrained(tmp_path / "plain.safetensors")
    assert PretrainedInfo.from_metadata(
        {"faceparse.arch": "bisenet", "faceparse.num_classes": "5", "faceparse.in_channels": "1",
         "faceparse.label_scheme": "x", "faceparse.normalization": "depth", "faceparse.source": "s"}, "p"
    ).num_classes == 5  # fmt: skip


def test_convert_fpt_command(tmp_path, fpt_file):
    from faceparse.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["convert-fpt", str(fpt_file[0]), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.safetensors").is_file() and (tmp_path / "out.json").is_file()
    before = (tmp_path / "out.safetensors").stat().st_mtime_ns
    again = [str(fpt_file[0]), str(tmp_path / "out.safetensors"), "--in-channels", "1"]
    result = runner.invoke(app, ["convert-fpt", *again])  # an existing destination is kept...
    assert result.exit_code == 2
    assert "out.safetensors: already exists; pass --overwrite" in " ".join(result.output.split())
    assert (tmp_path / "out.safetensors").stat().st_mtime_ns == before
    result = runner.invoke(app, ["convert-fpt", *again, "--overwrite"])  # ...unless asked to replace it
    assert result.exit_code == 0, result.output
    assert read_json(tmp_path / "out.json")["in_channels"] == 1
    result = runner.invoke(
        app, ["convert-fpt", str(tmp_path / "missing.pth"), str(tmp_path / "o.safetensors")]
    )
    assert result.exit_code == 2
    assert "missing.pth" in result.output and "never downloads" in result.output
