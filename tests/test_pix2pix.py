"""Pix2Pix U-Net generator and discriminators: shapes, size rules, skip connections, init, dropout, ranges."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faceparse.models.pix2pix import (
    PatchDiscriminator,
    PixelDiscriminator,
    UnetGenerator,
    UnetSkipConnectionBlock,
    init_weights,
    num_downs_for,
)


@pytest.mark.parametrize(
    "size, expected",
    [(512, 8), (256, 8), (128, 7), (64, 6), (96, 5), (160, 5), (384, 7), ((64, 96), 5), ((256, 128), 7)],
)
def test_num_downs_for(size, expected):
    assert num_downs_for(size) == expected


@pytest.mark.parametrize("size", [48, 100, (64, 80), 0])
def test_num_downs_for_rejects_sizes_a_unet_cannot_take(size):
    with pytest.raises(ValueError):
        num_downs_for(size)


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (128, 128), (64, 96)])
def test_generator_output_shape_and_tanh_range(size):
    torch.manual_seed(0)
    generator = UnetGenerator(3, 1, num_downs=num_downs_for(size), ngf=8).eval()
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        depth = generator(x)
    assert depth.shape == (2, 1, *size)
    assert depth.min() >= -1 and depth.max() <= 1
    assert depth.std() > 0


def test_generator_rejects_indivisible_size_clearly():
    generator = UnetGenerator(3, 1, num_downs=6, ngf=8)
    with pytest.raises(ValueError, match=r"divisible by 64, got 64x96.*num_downs_for"):
        generator(torch.zeros(1, 3, 64, 96))


def test_generator_rejects_too_few_levels():
    with pytest.raises(ValueError, match="num_downs must be at least 5"):
        UnetGenerator(num_downs=4)


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        PatchDiscriminator(norm="group")


def test_skip_connection_carries_leaky_relu_of_the_input_as_the_reference_does():
    """The reference's in-place LeakyReLU rewrites x before torch.cat: the skip half is LeakyReLU(x)."""
    torch.manual_seed(0)
    inner = UnetSkipConnectionBlock(16, 16, innermost=True)
    block = UnetSkipConnectionBlock(8, 16, submodule=inner).eval()
    x = torch.randn(2, 8, 8, 8)
    x_before = x.clone()
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 16, 8, 8)
    torch.testing.assert_close(out[:, :8], nn.functional.leaky_relu(x_before, 0.2))
    assert torch.equal(x, x_before)  # the caller's tensor is not modified


def test_dropout_in_inner_decoder_levels_only():
    for num_downs in (5, 6, 8):
        generator = UnetGenerator(num_downs=num_downs, ngf=4)
        assert sum(isinstance(m, nn.Dropout) for m in generator.modules()) == num_downs - 5
    assert not any(
        isinstance(m, nn.Dropout) for m in UnetGenerator(num_downs=8, ngf=4, use_dropout=False).modules()
    )


def test_dropout_makes_train_mode_stochastic_and_eval_mode_deterministic():
    torch.manual_seed(0)
    generator = UnetGenerator(num_downs=6, ngf=8)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(generator(x), generator(x))
        generator.eval()
        assert torch.equal(generator(x), generator(x))


def test_init_weights_statistics():
    generator = init_weights(UnetGenerator(num_downs=6, ngf=32), gain=0.02, seed=0)
    convs = [m for m in generator.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.mean().item()) < 1e-3 and abs(weights.std().item() - 0.02) < 1e-3
    bn = torch.cat([m.weight for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 5e-3 and 0.015 < bn.std().item() < 0.025
    biases = [m.bias for m in generator.modules() if getattr(m, "bias", None) is not None]
    assert biases and all(torch.equal(b, torch.zeros_like(b)) for b in biases)


def test_init_weights_seed_is_reproducible_and_leaves_global_rng_alone():
    a, b = PatchDiscriminator(ndf=8), PatchDiscriminator(ndf=8)
    state = torch.random.get_rng_state()
    init_weights(a, seed=7)
    init_weights(b, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    init_weights(b, seed=8)
    assert not torch.equal(a.model[0].weight, b.model[0].weight)


@pytest.mark.parametrize(
    "size, expected", [((64, 64), (6, 6)), ((128, 96), (14, 10)), ((512, 512), (62, 62))]
)
def test_patch_discriminator_output_shape(size, expected):
    discriminator = PatchDiscriminator(in_channels=4, ndf=4)
    logits = discriminator(torch.randn(2, 4, *size))
    assert logits.shape == (2, 1, *expected)


def test_pixel_discriminator_is_per_pixel():
    torch.manual_seed(0)
    discriminator = PixelDiscriminator(in_channels=4, ndf=8).eval()
    x = torch.randn(1, 4, 16, 24)
    with torch.no_grad():
        logits = discriminator(x)
        assert logits.shape == (1, 1, 16, 24)
        # 1x1 convs only: changing one pixel changes exactly that output pixel
        x2 = x.clone()
        x2[..., 5, 7] += 1.0
        changed = (discriminator(x2) != logits).nonzero().tolist()
    assert changed == [[0, 0, 5, 7]]


def test_instance_norm_variant_has_conv_biases():
    generator = UnetGenerator(num_downs=5, ngf=4, norm="instance")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())
    assert all(m.bias is not None for m in generator.modules() if isinstance(m, nn.Conv2d))
    assert generator(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
