"""Losses of the paper (Eq. 1-4) against hand-computed values on tiny hand-built inputs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faceparse.labels import IGNORE_INDEX
from faceparse.losses import (
    BiSeNetLoss,
    EAGRNetLoss,
    GANLoss,
    JointTerms,
    JointWeights,
    balanced_edge_loss,
    discriminator_loss,
    e2e_loss,
    edge_attention_loss,
    edge_class_weights,
    edge_from_label,
    generator_loss,
    joint_objective,
    main_logits,
    mutual_learning_loss,
    ohem_cross_entropy,
    parser_loss,
)
from faceparse.models import ParserOutput

OHEM_LOSS_THRESH = -math.log(0.7)


def two_class_logits(p_true: list[float], label: list[int]) -> torch.Tensor:
    """(1, 2, 1, N) logits whose softmax gives probability ``p_true[i]`` to class ``label[i]``."""
    logits = torch.zeros(1, 2, 1, len(p_true), dtype=torch.float64)
    for i, (p, y) in enumerate(zip(p_true, label, strict=True)):
        logits[0, y % 2, 0, i] = math.log(p / (1.0 - p))  # other class logit stays 0: sigmoid(z) = p
    return logits


def as_label(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64).view(1, 1, -1)


# -------------------------------------------------------------------------------------------------
# OHEM (BiSeNet)
# -------------------------------------------------------------------------------------------------

# 16 pixels. Hard (p < 0.7): 0.1, 0.2, 0.5. Easy: 0.75 .. 0.99. Two ignore pixels with p = 0.01.
P_TRUE = [0.1, 0.2, 0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 0.9, 0.9, 0.01, 0.01]
LABEL = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, IGNORE_INDEX, IGNORE_INDEX]


def _ohem_case() -> tuple[torch.Tensor, torch.Tensor]:
    label_for_logits = [y if y != IGNORE_INDEX else 0 for y in LABEL]
    return two_class_logits(P_TRUE, label_for_logits), as_label(LABEL)


def test_ohem_keeps_all_hard_pixels_when_more_than_n_min() -> None:
    logits, label = _ohem_case()
    # default n_min = 1·1·16 // 16 = 1 and 3 pixels exceed −log 0.7 → mean of exactly those 3
    expected = (-math.log(0.1) - math.log(0.2) - math.log(0.5)) / 3
    assert ohem_cross_entropy(logits, label).item() == pytest.approx(expected, rel=1e-9)
    assert ohem_cross_entropy(logits, label, n_min=2).item() == pytest.approx(expected, rel=1e-9)


def test_ohem_keeps_top_n_min_when_too_few_hard_pixels() -> None:
    logits, label = _ohem_case()
    # 3 hard pixels, not more than n_min = 3 → the 3 largest (same set); n_min = 5 → add p = 0.75, 0.8
    hard = [-math.log(p) for p in (0.1, 0.2, 0.5)]
    assert ohem_cross_entropy(logits, label, n_min=3).item() == pytest.approx(sum(hard) / 3, rel=1e-9)
    top5 = hard + [-math.log(0.75), -math.log(0.8)]
    assert ohem_cross_entropy(logits, label, n_min=5).item() == pytest.approx(sum(top5) / 5, rel=1e-9)


def test_ohem_excludes_ignore_pixels_even_when_n_min_exceeds_valid_count() -> None:
    logits, label = _ohem_case()
    # n_min > 14 valid pixels: the mean over the 14 valid losses, never diluted by the 2 ignored ones
    valid = [-math.log(p) for p, y in zip(P_TRUE, LABEL, strict=True) if y != IGNORE_INDEX]
    assert ohem_cross_entropy(logits, label, n_min=100).item() == pytest.approx(sum(valid) / 14, rel=1e-9)


def test_ohem_gradient_only_on_kept_pixels_and_all_ignored_is_zero() -> None:
    logits, label = _ohem_case()
    logits.requires_grad_(True)
    ohem_cross_entropy(logits, label).backward()
    pixels_with_grad = logits.grad.abs().sum(dim=1).flatten().nonzero().flatten().tolist()
    assert pixels_with_grad == [0, 1, 2]

    all_ignored = torch.full_like(label, IGNORE_INDEX)
    loss = ohem_cross_entropy(logits, all_ignored)
    assert loss.item() == 0.0
    loss.backward()  # still differentiable


def test_ohem_threshold_is_on_probability() -> None:
    # p = 0.69 (loss just above −log 0.7) is hard, p = 0.71 is not
    logits = two_class_logits([0.69, 0.71] * 8, [0] * 16)
    label = as_label([0] * 16)
    assert -math.log(0.69) > OHEM_LOSS_THRESH > -math.log(0.71)
    # 8 hard pixels > n_min = 1 → mean over those 8 only
    assert ohem_cross_entropy(logits, label).item() == pytest.approx(-math.log(0.69), rel=1e-9)


def test_bisenet_loss_sums_ohem_over_three_outputs_and_upsamples() -> None:
    torch.manual_seed(0)
    label = torch.randint(0, 5, (2, 16, 16))
    label[:, :2] = IGNORE_INDEX
    out = torch.randn(2, 5, 16, 16)
    out16 = torch.randn(2, 5, 16, 16)
    out32_low = torch.randn(2, 5, 8, 8)  # not at label size → bilinear, align_corners=True
    out32 = F.interpolate(out32_low, size=(16, 16), mode="bilinear", align_corners=True)
    expected = sum(ohem_cross_entropy(t, label) for t in (out, out16, out32))
    output = ParserOutput(out, (out16, out32_low))  # what BiSeNet returns
    assert BiSeNetLoss()(output, label).item() == pytest.approx(expected.item(), rel=1e-6)
    # a foreign model's plain sequence: every tensor is trained, the same sum
    assert BiSeNetLoss()((out, out16, out32_low), label).item() == BiSeNetLoss()(output, label).item()
    # a bare tensor is one output
    assert BiSeNetLoss()(out, label).item() == pytest.approx(ohem_cross_entropy(out, label).item())
    # edge logits are no class logits: the loss trains logits and aux only
    with_edge = ParserOutput(out, edge=torch.randn(2, 2, 16, 16))
    assert BiSeNetLoss()(with_edge, label).item() == BiSeNetLoss()(out, label).item()


def test_a_foreign_model_returning_a_bare_tensor_trains_and_predicts() -> None:
    torch.manual_seed(1)
    model = nn.Conv2d(3, 5, kernel_size=3, padding=1)  # returns (B, 5, H, W) logits, no ParserOutput
    label = torch.randint(0, 5, (2, 8, 8))
    logits = model(torch.randn(2, 3, 8, 8))
    assert main_logits(logits) is logits
    assert main_logits(logits, (16, 16)).shape == (2, 5, 16, 16)
    loss = BiSeNetLoss()(logits, label)
    assert loss.item() == pytest.approx(ohem_cross_entropy(logits, label).item())
    loss.backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


# -------------------------------------------------------------------------------------------------
# Edges and EAGRNet
# -------------------------------------------------------------------------------------------------


def test_edge_from_label_known_boundary_with_ignore() -> None:
    label = torch.tensor(
        [
            [0, 0, 0, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, IGNORE_INDEX],
        ]
    ).unsqueeze(0)
    expected = torch.tensor(
        [
            [0, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 0, 0, IGNORE_INDEX],  # an ignore neighbour makes no edge
        ]
    ).unsqueeze(0)
    edge = edge_from_label(label)
    assert edge.dtype == torch.int64
    assert torch.equal(edge, expected)


def _brute_force_edge(label: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """A pixel is an edge if a pixel inside the image within Manhattan distance ``radius`` differs.

    radius 1 is EAGRNet's generate_edge.py loop (the 4-neighbours).
    """
    height, width = label.shape
    edge = torch.zeros_like(label)
    for i in range(height):
        for j in range(width):
            for di in range(-radius, radius + 1):
                for dj in range(-radius + abs(di), radius - abs(di) + 1):
                    y, x = i + di, j + dj
                    if 0 <= y < height and 0 <= x < width and label[i, j] != label[y, x]:
                        edge[i, j] = 1
    return edge


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_edge_from_label_matches_brute_force_on_random_map(radius: int) -> None:
    torch.manual_seed(1)
    label = torch.randint(0, 3, (2, 9, 11))
    label[:, 3:6, 3:8] = 1  # a block so wide bands do not cover everything
    edge = edge_from_label(label, radius=radius)
    for b in range(2):
        assert torch.equal(edge[b], _brute_force_edge(label[b], radius))


def test_edge_from_label_radius_two_is_thicker() -> None:
    label = torch.ones(1, 3, 8, dtype=torch.int64)
    label[..., 4:] = 2
    expected_cols = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0])
    assert torch.equal(edge_from_label(label, radius=2)[0, 0], expected_cols)
    assert torch.equal(edge_from_label(label, radius=1)[0, 0], torch.tensor([0, 0, 0, 1, 1, 0, 0, 0]))


def test_class_balanced_edge_weights_and_loss() -> None:
    edge = torch.zeros(1, 4, 4, dtype=torch.int64)
    edge[0, 1, :] = 1  # 4 edge pixels
    edge[0, 3, 3] = IGNORE_INDEX  # 11 non-edge pixels
    weights = edge_class_weights(edge)
    assert weights.tolist() == pytest.approx([4 / 15, 11 / 15])  # (non-edge, edge): the rarer weighs more

    edge_logits = torch.zeros(1, 2, 4, 4)
    edge_logits[:, 1] = 1.0  # every pixel predicts "edge" with logit margin 1
    loss_on_edge = math.log(1 + math.exp(-1))  # CE where the target is 1
    loss_off_edge = math.log(1 + math.exp(1))  # CE where the target is 0
    numerator = 4 * (11 / 15) * loss_on_edge + 11 * (4 / 15) * loss_off_edge
    denominator = 4 * (11 / 15) + 11 * (4 / 15)
    assert balanced_edge_loss(edge_logits, edge).item() == pytest.approx(numerator / denominator, rel=1e-6)
    reference = F.cross_entropy(edge_logits, edge, weight=weights, ignore_index=IGNORE_INDEX)
    assert balanced_edge_loss(edge_logits, edge).item() == pytest.approx(reference.item(), rel=1e-6)


def test_no_edge_batch_is_finite_with_zero_edge_terms() -> None:
    label = torch.full((2, 16, 16), 3, dtype=torch.int64)  # one class everywhere → no edge pixel
    parsing_logits = torch.randn(2, 5, 4, 4, requires_grad=True)
    edge_logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    loss_fn = EAGRNetLoss()
    terms = loss_fn.terms((parsing_logits, edge_logits), label)
    assert terms["edge"].item() == 0.0
    assert terms["attention"].item() == 0.0
    total = loss_fn((parsing_logits, edge_logits), label)
    assert torch.isfinite(total)
    assert total.item() == pytest.approx(terms["parsing"].item())
    total.backward()
    assert torch.isfinite(parsing_logits.grad).all() and torch.isfinite(edge_logits.grad).all()


def _eagrnet_case() -> tuple[ParserOutput, torch.Tensor]:
    torch.manual_seed(2)
    label = torch.zeros(2, 16, 16, dtype=torch.int64)
    label[:, 4:12, 4:12] = 1
    label[0, 6:9, 6:9] = 2
    label[1, 0:2, :] = IGNORE_INDEX
    parsing_logits = torch.randn(2, 3, 4, 4)  # 1/4 resolution, as EAGRNet
    edge_logits = torch.randn(2, 2, 4, 4)
    return ParserOutput(parsing_logits, edge=edge_logits), label  # what EAGRNet returns


def _manual_eagrnet_terms(output: ParserOutput, label: torch.Tensor) -> list[float]:
    assert output.edge is not None
    parsing = F.interpolate(output.logits, size=(16, 16), mode="bilinear", align_corners=False)
    edge_logits = F.interpolate(output.edge, size=(16, 16), mode="bilinear", align_corners=False)
    edge = edge_from_label(label)
    ce = F.cross_entropy(parsing, label, ignore_index=IGNORE_INDEX).item()
    n_edge, n_non_edge = (edge == 1).sum().item(), (edge == 0).sum().item()
    n = n_edge + n_non_edge
    weights = torch.tensor([n_edge / n, n_non_edge / n])
    edge_ce = F.cross_entropy(edge_logits, edge, weight=weights, ignore_index=IGNORE_INDEX).item()
    per_pixel = F.cross_entropy(parsing, label, ignore_index=IGNORE_INDEX, reduction="none")
    per_image = [per_pixel[b][edge[b] == 1].mean().item() for b in range(label.shape[0])]
    return [ce, edge_ce, sum(per_image) / len(per_image)]


def test_eagrnet_loss_default_weights_1_1_4_and_configurable() -> None:
    output, label = _eagrnet_case()
    ce, edge_ce, attention = _manual_eagrnet_terms(output, label)
    assert EAGRNetLoss()(output, label).item() == pytest.approx(ce + edge_ce + 4 * attention, rel=1e-5)
    # upstream's accidental doubling, reproducible on request
    doubled = EAGRNetLoss(weights=(2, 2, 8))(output, label).item()
    assert doubled == pytest.approx(2 * (ce + edge_ce + 4 * attention), rel=1e-5)
    assert EAGRNetLoss(weights=(0, 0, 1))(output, label).item() == pytest.approx(attention, rel=1e-5)
    # a foreign model's plain (parsing, edge) sequence gives the same value
    assert EAGRNetLoss()((output.logits, output.edge), label).item() == EAGRNetLoss()(output, label).item()
    with pytest.raises(ValueError, match="weights"):
        EAGRNetLoss(weights=(1, 1))


def test_edge_attention_averages_per_image_and_skips_edgeless_images() -> None:
    label = torch.zeros(2, 4, 4, dtype=torch.int64)
    label[0, :, 2:] = 1  # image 0: edge at columns 1 and 2; image 1: no edge
    edge = edge_from_label(label)
    logits = torch.zeros(2, 2, 4, 4)
    logits[0, 0, :, 1] = 2.0  # correct, confident on column 1
    # column 2 (label 1) has logits (0, 0) → CE log 2; column 1 → CE log(1 + e^-2)
    expected_image0 = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    loss = edge_attention_loss(logits, label, edge)
    assert loss.item() == pytest.approx(expected_image0 / 2, rel=1e-6)  # image 1 contributes 0, mean over B


def test_eagrnet_loss_rejects_a_bare_tensor_and_an_output_without_edge() -> None:
    label = torch.zeros(1, 16, 16, dtype=torch.int64)
    with pytest.raises(ValueError, match="edge_logits"):
        EAGRNetLoss()(torch.randn(1, 3, 4, 4), label)
    bisenet_like = ParserOutput(torch.randn(1, 3, 16, 16), (torch.randn(1, 3, 16, 16),))
    with pytest.raises(ValueError, match="edge=None.*BiSeNetLoss"):
        EAGRNetLoss()(bisenet_like, label)


def test_parser_loss_factory() -> None:
    assert isinstance(parser_loss("bisenet"), BiSeNetLoss)
    assert isinstance(parser_loss("EAGRNet"), EAGRNetLoss)
    assert parser_loss("eagrnet", weights=(1, 2, 3)).weights == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="'unet'"):
        parser_loss("unet")


def test_main_logits() -> None:
    logits = torch.randn(2, 3, 4, 4)
    assert main_logits(ParserOutput(logits, (torch.randn(2, 3, 4, 4),))) is logits
    assert main_logits(ParserOutput(logits, edge=torch.randn(2, 2, 4, 4))) is logits
    assert main_logits((logits, torch.randn(2, 2, 4, 4))) is logits
    assert main_logits(logits, (4, 4)) is logits
    up = main_logits([logits], (8, 8))
    assert torch.equal(up, F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=True))


def test_label_must_be_int64() -> None:
    with pytest.raises(TypeError, match="int64"):
        ohem_cross_entropy(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int32))


# -------------------------------------------------------------------------------------------------
# L_ML and L_E2E (Eq. 4)
# -------------------------------------------------------------------------------------------------


def test_mutual_learning_value_and_gradients_reach_both_parsers() -> None:
    torch.manual_seed(3)
    parser_rgb = nn.Conv2d(3, 4, 3, padding=1)
    parser_depth = nn.Conv2d(1, 4, 3, padding=1)
    rgb, depth = torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8)
    logits_rgb, logits_depth = parser_rgb(rgb), parser_depth(depth)
    loss_ml = mutual_learning_loss((logits_rgb, logits_rgb), logits_depth)
    manual = ((logits_rgb - logits_depth) ** 2).sum() / logits_rgb.numel()
    assert loss_ml.item() == pytest.approx(manual.item(), rel=1e-6)
    loss_ml.backward()
    for parser in (parser_rgb, parser_depth):
        for param in parser.parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0


def test_mutual_learning_gradient_is_symmetric() -> None:
    a = torch.randn(1, 2, 3, 3, requires_grad=True)
    b = torch.randn(1, 2, 3, 3, requires_grad=True)
    mutual_learning_loss(a, b).backward()
    expected = 2 * (a - b).detach() / a.numel()
    assert torch.allclose(a.grad, expected) and torch.allclose(b.grad, -expected)


def test_mutual_learning_resizes_to_the_larger_map() -> None:
    small, large = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 8, 8)
    small_up = F.interpolate(small, size=(8, 8), mode="bilinear", align_corners=True)
    assert mutual_learning_loss(small, large).item() == pytest.approx(F.mse_loss(small_up, large).item())
    with pytest.raises(ValueError, match="number of classes"):
        mutual_learning_loss(torch.randn(1, 2, 4, 4), torch.randn(1, 3, 4, 4))


def test_ml_readings_known_values() -> None:
    """mse_probs and kl against hand computations on one pixel; the default stays F.mse_loss."""
    from faceparse.losses import MutualLearning

    a = torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1)
    b = torch.tensor([0.0, 0.5, 0.0]).view(1, 3, 1, 1)
    assert mutual_learning_loss(a, b, MutualLearning()).item() == pytest.approx(F.mse_loss(a, b).item())
    pa, pb = a.softmax(1), b.softmax(1)
    probs = mutual_learning_loss(a, b, MutualLearning("mse_probs")).item()
    assert probs == pytest.approx(((pa - pb) ** 2).mean().item(), rel=1e-6)
    t = 2.0
    la, lb = F.log_softmax(a / t, 1), F.log_softmax(b / t, 1)
    kl_ab = (la.exp() * (la - lb)).sum() * t * t  # KL(p_a ‖ p_b): b learns from a
    kl_ba = (lb.exp() * (lb - la)).sum() * t * t
    kl = mutual_learning_loss(a, b, MutualLearning("kl", temperature=t)).item()
    assert kl == pytest.approx((kl_ab + kl_ba).item(), rel=1e-5)
    with pytest.raises(ValueError, match="joint.ml_loss"):
        MutualLearning("l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="joint.ml_direction"):
        MutualLearning(direction="one-way")  # type: ignore[arg-type]


def test_ml_gated_only_the_wrong_parser_learns_from_the_right_one() -> None:
    """Pixel 0: RGB right, depth wrong → only depth gets a gradient there; pixel 1: depth right, RGB wrong →
    only RGB; pixel 2: both right → nothing; pixel 3: ignored label → nothing."""
    from faceparse.labels import IGNORE_INDEX
    from faceparse.losses import MutualLearning

    rgb = torch.tensor([[5.0, 0.0, 5.0, 5.0], [0.0, 5.0, 0.0, 0.0]]).view(1, 2, 1, 4).requires_grad_()
    depth = torch.tensor([[0.0, 5.0, 5.0, 0.0], [5.0, 0.0, 0.0, 5.0]]).view(1, 2, 1, 4).requires_grad_()
    label = torch.tensor([[[0, 0, 0, IGNORE_INDEX]]])
    loss = mutual_learning_loss(rgb, depth, MutualLearning(direction="gated"), label)
    loss.backward()
    rgb_pixels = rgb.grad.abs().sum(1)[0, 0]  # type: ignore[union-attr]
    depth_pixels = depth.grad.abs().sum(1)[0, 0]  # type: ignore[union-attr]
    assert (rgb_pixels > 0).tolist() == [False, True, False, False]
    assert (depth_pixels > 0).tolist() == [True, False, False, False]
    # the value: pixels 0 and 1, each a mean over the 2 classes of 5² = 25, averaged over all 4 pixels
    assert loss.item() == pytest.approx((25.0 + 25.0) / 4)
    with pytest.raises(ValueError, match="paired labels"):
        mutual_learning_loss(rgb, depth, MutualLearning(direction="gated"))


def test_ml_confident_the_less_confident_parser_learns() -> None:
    from faceparse.losses import MutualLearning

    rgb = torch.tensor([[4.0, 0.1], [0.0, 0.0]]).view(1, 2, 1, 2).requires_grad_()  # sure at px 0 only
    depth = torch.tensor([[0.1, 4.0], [0.0, 0.0]]).view(1, 2, 1, 2).requires_grad_()  # sure at px 1 only
    mutual_learning_loss(rgb, depth, MutualLearning("mse_probs", "confident")).backward()
    assert (rgb.grad.abs().sum(1)[0, 0] > 0).tolist() == [False, True]  # type: ignore[union-attr]
    assert (depth.grad.abs().sum(1)[0, 0] > 0).tolist() == [True, False]  # type: ignore[union-attr]


def test_e2e_gradients_reach_generator_and_depth_parser() -> None:
    torch.manual_seed(4)
    generator = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.Tanh())
    parser_depth = nn.Conv2d(1, 3, 3, padding=1)
    rgb = torch.randn(2, 3, 8, 8)
    label_rgb = torch.randint(0, 3, (2, 8, 8))
    loss_fn = parser_loss("bisenet")
    depth_fake = generator(rgb)  # not detached: L_E2E must train G too (§3.2)
    loss_e2e = e2e_loss(parser_depth(depth_fake), label_rgb, loss_fn)
    assert loss_e2e.item() == pytest.approx(loss_fn(parser_depth(depth_fake), label_rgb).item())
    loss_e2e.backward()
    for module in (generator, parser_depth):
        for param in module.parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0


def test_joint_weights_defaults_follow_paper() -> None:
    from faceparse.runs.config import Config, joint_weights

    weights = joint_weights(Config())  # the config is the λ's one home
    assert weights.lambdas == (1.0, 1.0, 0.5, 0.5, 1.0)  # §4.2
    assert weights.lambda_l1 == 100.0  # Eq. 1, as in pix2pix
    assert dataclasses.replace(weights, lambda1=0.0).lambda1 == 0.0  # ablation
    with pytest.raises(ValueError, match="lambda2"):
        dataclasses.replace(weights, lambda2=-1.0)


def test_joint_objective_weighs_each_term_with_its_own_lambda() -> None:
    """Eq. 4 with five distinct λ and five distinct terms: any swapped pair changes the sum."""
    terms = JointTerms(*(torch.tensor(v) for v in (1.0, 10.0, 100.0, 1000.0, 10000.0)))
    weights = JointWeights(lambda1=0.1, lambda2=0.2, lambda3=0.3, lambda4=0.4, lambda5=0.5, lambda_l1=7.0)
    expected = 0.1 * 1 + 0.2 * 10 + 0.3 * 100 + 0.4 * 1000 + 0.5 * 10000  # 5432.1
    assert joint_objective(terms, weights).item() == pytest.approx(expected)
    assert terms._fields == ("loss_ml", "loss_e2e", "loss_cls_rgb", "loss_cls_depth", "loss_dt")
    requires = JointTerms(*(torch.ones((), requires_grad=True) for _ in range(5)))
    joint_objective(requires, weights).backward()  # d L / d term = its λ
    assert [t.grad.item() for t in requires] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


# -------------------------------------------------------------------------------------------------
# L_DT (Eq. 1-3)
# -------------------------------------------------------------------------------------------------


def test_gan_loss_values_vanilla_and_lsgan() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    vanilla, lsgan = GANLoss("vanilla"), GANLoss("lsgan")
    real = sum(math.log(1 + math.exp(-x)) for x in (0.0, 2.0, -1.0)) / 3
    fake = sum(math.log(1 + math.exp(x)) for x in (0.0, 2.0, -1.0)) / 3
    assert vanilla(logits, True).item() == pytest.approx(real, rel=1e-6)
    assert vanilla(logits, False).item() == pytest.approx(fake, rel=1e-6)
    assert lsgan(logits, True).item() == pytest.approx((1 + 1 + 4) / 3, rel=1e-6)
    assert lsgan(logits, False).item() == pytest.approx((0 + 4 + 1) / 3, rel=1e-6)
    with pytest.raises(ValueError, match="wgan"):
        GANLoss("wgan")  # type: ignore[arg-type]


class MeanDiscriminator(nn.Module):
    """A 4-channel 'discriminator' with one learnable scale: logits = s · mean over channels."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        assert pair.shape[1] == 4
        return self.scale * pair.mean(dim=1, keepdim=True)  # (B, 1, H, W)


def test_discriminator_loss_value_and_no_generator_gradient() -> None:
    torch.manual_seed(5)
    generator = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.Tanh())
    discriminator = MeanDiscriminator()
    rgb = torch.rand(1, 3, 6, 6) * 2 - 1
    depth_real = torch.rand(1, 1, 6, 6) * 2 - 1
    depth_fake = generator(rgb)
    loss_d = discriminator_loss(discriminator, rgb, depth_real, depth_fake)

    with torch.no_grad():
        pred_real = 1.5 * torch.cat([rgb, depth_real], 1).mean(1)
        pred_fake = 1.5 * torch.cat([rgb, depth_fake], 1).mean(1)
        manual = 0.5 * (F.softplus(-pred_real).mean() + F.softplus(pred_fake).mean())
    assert loss_d.item() == pytest.approx(manual.item(), rel=1e-6)

    loss_d.backward()
    assert discriminator.scale.grad is not None and discriminator.scale.grad != 0
    assert all(param.grad is None for param in generator.parameters())


def test_generator_loss_is_gan_plus_100_l1_and_trains_generator() -> None:
    torch.manual_seed(6)
    generator = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.Tanh())
    discriminator = MeanDiscriminator()
    rgb = torch.rand(2, 3, 6, 6) * 2 - 1
    depth_real = torch.rand(2, 1, 6, 6) * 2 - 1
    depth_fake = generator(rgb)
    loss_dt, terms = generator_loss(discriminator, rgb, depth_real, depth_fake, 100.0)

    with torch.no_grad():
        pred_fake = 1.5 * torch.cat([rgb, depth_fake], 1).mean(1)
        gan = F.softplus(-pred_fake).mean()
        l1 = (depth_fake - depth_real).abs().mean()
    assert terms["gan"].item() == pytest.approx(gan.item(), rel=1e-6)
    assert terms["l1"].item() == pytest.approx(l1.item(), rel=1e-6)
    assert loss_dt.item() == pytest.approx(gan.item() + 100 * l1.item(), rel=1e-6)

    lsgan_total, lsgan_terms = generator_loss(discriminator, rgb, depth_real, depth_fake, 10.0, "lsgan")
    assert lsgan_terms["gan"].item() == pytest.approx(((pred_fake - 1) ** 2).mean().item(), rel=1e-6)
    assert lsgan_total.item() == pytest.approx(lsgan_terms["gan"].item() + 10 * l1.item(), rel=1e-6)

    loss_dt.backward()
    for param in generator.parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_discriminator_input_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="share batch and size"):
        discriminator_loss(
            MeanDiscriminator(), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
        )


# -------------------------------------------------------------------------------------------------
# The real parsers (faceparse.models) through their losses and L_ML
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["bisenet", pytest.param("eagrnet", marks=pytest.mark.slow)])
def test_real_parsers_every_parameter_gets_a_gradient(arch: str) -> None:
    from faceparse.models.registry import build_model

    torch.manual_seed(7)
    parser_rgb = build_model(arch, num_classes=5, in_channels=3)
    parser_depth = build_model(arch, num_classes=5, in_channels=1)
    label = torch.randint(0, 5, (2, 64, 64))
    label[:, :4] = IGNORE_INDEX
    output_rgb = parser_rgb(torch.randn(2, 3, 64, 64))
    output_depth = parser_depth(torch.randn(2, 1, 64, 64))
    loss_fn = parser_loss(arch)
    loss = (
        loss_fn(output_rgb, label)
        + loss_fn(output_depth, label)
        + mutual_learning_loss(output_rgb, output_depth)
    )
    assert torch.isfinite(loss)
    loss.backward()
    for parser in (parser_rgb, parser_depth):
        for name, param in parser.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name
