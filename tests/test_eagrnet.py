"""EAGRNet: reference layout, parameter counts, outputs, gradients, the reference's activation placement."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from faceparse.models.eagrnet import (
    ABN,
    MIN_INPUT_SIZE,
    Bottleneck,
    EAGRNet,
    adaptive_avg_pool_by_slices,
    eagrnet,
    full_resolution_logits,
    output_size,
    remap_reference_state_dict,
)
from faceparse.models.output import ParserOutput
from tiny import read_layout


@pytest.fixture(scope="module")
def model() -> EAGRNet:
    torch.manual_seed(0)
    return eagrnet(num_classes=11)


def reference_layout() -> list[tuple[str, tuple[int, ...]]]:
    layout = []
    for key, shape, dtype in read_layout("eagrnet11_state_dict.tsv"):
        assert dtype == "float32"
        layout.append((key, tuple(int(n) for n in shape.split("x"))))
    return layout


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_11_classes(model: EAGRNet) -> None:
    assert count_parameters(model) == 66_722_523  # FACTS §4


@pytest.mark.parametrize(
    ("num_classes", "in_channels", "expected"),
    [(19, 3, 66_724_579), (11, 1, 66_721_371), (19, 1, 66_723_427)],
)
def test_parameter_count_variants(num_classes: int, in_channels: int, expected: int) -> None:
    with torch.device("meta"):  # counting needs no memory or initialisation
        variant = eagrnet(num_classes=num_classes, in_channels=in_channels)
    assert count_parameters(variant) == expected
    # in_channels only changes the first stem conv
    assert variant.conv1.weight.shape == (64, in_channels, 3, 3)


def test_state_dict_matches_reference_layout(model: EAGRNet) -> None:
    ours = [
        (key, tuple(value.shape))
        for key, value in model.state_dict().items()
        if not key.endswith("num_batches_tracked")
    ]
    assert ours == reference_layout()  # same keys, same shapes, same order


def test_loads_reference_checkpoint_strictly_and_uses_it() -> None:
    layout = reference_layout()
    generator = torch.Generator().manual_seed(1)
    # inplace_abn layout (no num_batches_tracked), as saved from a DataParallel wrapper
    checkpoint = {
        f"module.{key}": (
            torch.rand(shape, generator=generator) + 0.5
            if "running_var" in key
            else torch.randn(shape, generator=generator) * 0.05
        )
        for key, shape in layout
    }
    net = eagrnet(num_classes=11)
    result = net.load_state_dict(remap_reference_state_dict(checkpoint), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(net.layer6.conv4.weight, checkpoint["module.layer6.conv4.weight"])
    torch.testing.assert_close(net.layer3[22].bn3.running_var, checkpoint["module.layer3.22.bn3.running_var"])
    assert int(net.bn1.num_batches_tracked) == 0


def test_abn_is_batchnorm_then_leaky_relu() -> None:
    abn = ABN(2).eval()
    with torch.no_grad():
        abn.running_mean.copy_(torch.tensor([1.0, 0.0]))
        abn.running_var.copy_(torch.tensor([4.0, 1.0]))
        abn.weight.copy_(torch.tensor([2.0, 1.0]))
        abn.bias.copy_(torch.tensor([0.0, -1.0]))
    x = torch.tensor([[-3.0, 5.0], [0.5, 3.0]]).view(1, 2, 1, 2)  # channel 0: -3, 5; channel 1: 0.5, 3
    eps = abn.eps
    normalised = torch.tensor(
        [
            [2 * (-3 - 1) / math.sqrt(4 + eps), 2 * (5 - 1) / math.sqrt(4 + eps)],
            [0.5 / math.sqrt(1 + eps) - 1, 3 / math.sqrt(1 + eps) - 1],
        ]
    ).view(1, 2, 1, 2)
    expected = torch.where(normalised > 0, normalised, 0.01 * normalised)
    torch.testing.assert_close(abn(x), expected)


def test_bottleneck_applies_leaky_relu_before_residual_add() -> None:
    torch.manual_seed(2)
    downsample = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1, bias=False), ABN(16))
    block = Bottleneck(8, 4, stride=1, dilation=2, downsample=downsample).eval()
    with torch.no_grad():
        for bn in (m for m in block.modules() if isinstance(m, ABN)):
            bn.running_mean.uniform_(-1.0, 1.0)
            bn.bias.uniform_(-1.0, 1.0)
    x = torch.randn(1, 8, 9, 9)

    def bn(module: ABN, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            t, module.running_mean, module.running_var, module.weight, module.bias, eps=module.eps
        )

    inner = F.relu(bn(block.bn1, block.conv1(x)))
    inner = F.relu(bn(block.bn2, F.conv2d(inner, block.conv2.weight, padding=2, dilation=2)))
    main = F.leaky_relu(bn(block.bn3, block.conv3(inner)), 0.01)  # activation BEFORE the add
    residual = F.leaky_relu(bn(downsample[1], downsample[0](x)), 0.01)
    expected = F.relu(main + residual)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)
        # and it differs from torchvision's Bottleneck arithmetic (no activation before the add)
        assert not torch.allclose(block(x), F.relu(bn(block.bn3, block.conv3(inner)) + residual))


def test_every_parameter_gets_a_gradient(model: EAGRNet) -> None:
    torch.manual_seed(3)
    model.train()
    model.zero_grad(set_to_none=True)
    rgb = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, 11, (2, 64, 64))
    edges = torch.randint(0, 2, (2, 64, 64))
    out = model(rgb)
    loss = F.cross_entropy(full_resolution_logits(out, (64, 64)), labels) + F.cross_entropy(
        F.interpolate(out.edge, size=(64, 64), mode="bilinear", align_corners=True), edges
    )
    loss.backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad(set_to_none=True)


def test_graph_modules_see_the_edge_map_detached(model: EAGRNet) -> None:
    # Reference: block1/block2 receive edge.detach(), so the parsing loss never reaches the edge module.
    torch.manual_seed(4)
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(torch.randn(2, 3, 32, 32))
    out.logits.square().mean().backward()
    edge_grads = [p.grad for p in model.edge_layer.parameters()]
    assert all(g is None for g in edge_grads)
    assert model.block1.conv_proj.weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_edge_map_gates_the_graph_reasoning(model: EAGRNet) -> None:
    torch.manual_seed(5)
    block = model.block2.eval()
    x = torch.randn(1, 256, 16, 16)
    everywhere_edge = torch.tensor([-5.0, 5.0]).view(1, 2, 1, 1).expand(1, 2, 16, 16)
    left_edge = everywhere_edge.clone()
    left_edge[..., 8:] = -everywhere_edge[..., 8:]
    with torch.no_grad():
        assert not torch.allclose(block(x, everywhere_edge), block(x, left_edge))


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (128, 128), (64, 96), (65, 70)])
def test_output_shapes(model: EAGRNet, size: tuple[int, int]) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert isinstance(out, ParserOutput) and isinstance(out, tuple)
    expected = output_size(*size)
    assert expected == (math.ceil(size[0] / 4), math.ceil(size[1] / 4))
    assert out[0] is out.logits and out.aux == ()
    assert out.logits.shape == (2, 11, *expected)
    assert out.edge is not None and out.edge.shape == (2, 2, *expected)
    parsing, edge = out.tensors()  # no auxiliary logits: just (parsing, edge)
    assert parsing is out.logits and edge is out.edge
    assert torch.isfinite(parsing).all() and torch.isfinite(edge).all()


def test_full_resolution_logits_is_align_corners_bilinear() -> None:
    logits = torch.randn(2, 3, 16, 16)
    out = ParserOutput(logits, edge=torch.randn(2, 2, 16, 16))
    full = full_resolution_logits(out, (64, 64))
    assert full.shape == (2, 3, 64, 64)
    torch.testing.assert_close(full, full_resolution_logits(logits, (64, 64)))
    # align_corners=True maps corner pixels onto corner pixels
    torch.testing.assert_close(full[..., 0, 0], logits[..., 0, 0])
    torch.testing.assert_close(full[..., -1, -1], logits[..., -1, -1])
    torch.testing.assert_close(full[..., 0, 21], logits[..., 0, 5])  # 21 * 15 / 63 = 5 exactly


def test_depth_input_variant_runs() -> None:
    torch.manual_seed(6)
    net = eagrnet(num_classes=13, in_channels=1).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 64, 64) * 2 - 1)
    assert out.logits.shape == (1, 13, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.randn(1, 3, 64, 64))


def test_rejects_bad_inputs(model: EAGRNet) -> None:
    with pytest.raises(ValueError, match=f">= {MIN_INPUT_SIZE}"):
        model(torch.randn(1, 3, 24, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="num_classes"):
        EAGRNet(num_classes=1)


def test_channels_last_bf16_autocast(model: EAGRNet) -> None:
    torch.manual_seed(7)
    model.eval()
    rgb = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(rgb)
        model.to(memory_format=torch.channels_last)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(rgb.contiguous(memory_format=torch.channels_last))
        finally:
            model.to(memory_format=torch.contiguous_format)
    assert out.logits.dtype == torch.bfloat16
    assert out.logits.shape == (2, 11, 16, 16) and out.edge.shape == (2, 2, 16, 16)
    for ours, ref in zip(out.tensors(), reference.tensors(), strict=True):
        assert torch.isfinite(ours).all()
        scale = ref.abs().max()
        assert (ours.float() - ref).abs().max() < 0.05 * scale


def test_same_seed_same_weights_and_outputs() -> None:
    outputs = []
    for _ in range(2):
        torch.manual_seed(8)
        net = eagrnet(num_classes=11).eval()
        with torch.no_grad():
            outputs.append(net(torch.ones(1, 3, 32, 32)))
    assert torch.equal(outputs[0].logits, outputs[1].logits)
    assert torch.equal(outputs[0].edge, outputs[1].edge)


@pytest.mark.slow
def test_full_size_output_matches_reference_shapes(model: EAGRNet) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 512, 512))
    assert out.logits.shape == (1, 11, 128, 128)  # FACTS §4
    assert out.edge.shape == (1, 2, 128, 128)
    assert full_resolution_logits(out, (512, 512)).shape == (1, 11, 512, 512)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(473, 473), (448, 448), (256, 384)])
def test_training_sizes(model: EAGRNet, size: tuple[int, int]) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.logits.shape[-2:] == output_size(*size)


@pytest.mark.parametrize(
    ("in_size", "out_size"), [((64, 64), (6, 6)), ((7, 13), (6, 3)), ((5, 4), (6, 6)), ((9, 9), (1, 2))]
)
def test_slice_pooling_equals_adaptive_avg_pool(in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *in_size)
    torch.testing.assert_close(adaptive_avg_pool_by_slices(x, out_size), F.adaptive_avg_pool2d(x, out_size))


@pytest.mark.slow
def test_onnx_export_matches_torch(model: EAGRNet) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model.eval()
    rgb = torch.randn(1, 3, 64, 64)  # 1/8 map 8x8: PSP bins 3 and 6 do not divide it
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            (rgb,),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["parsing", "edge"],
            opset_version=17,
        )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    parsing, edge = session.run(None, {"x": rgb.numpy()})
    with torch.no_grad():
        expected = model(rgb)
    torch.testing.assert_close(torch.from_numpy(parsing), expected.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(edge), expected.edge, atol=1e-4, rtol=1e-4)
