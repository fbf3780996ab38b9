"""EAGRNet: edge-aware graph reasoning for face parsing.

Te, Liu, Hu, Wang, Bai, "Edge-aware Graph Representation Learning and Reasoning for Face Parsing", ECCV 2020.
The paper we implement uses it as one of its two base parsers (paper §4.2, FACTS §4).

This is a re-implementation of the public reference (tegusi/EAGRNet, ``networks/EAGR.py``) that reproduces
its arithmetic and its ``state_dict`` layout key for key (``shared/reference/eagrnet11_state_dict.tsv``):

* Backbone: ResNet-101 with a deep stem (three 3x3 convs, 3→64→64→128), output stride 8. Layer 2 has
  stride 2; layers 3 and 4 keep stride 1. Upstream dilates layer 4 only (dilation 2, multi-grid (1, 1, 1));
  layer 3 keeps dilation 1. (CE2P, which EAGRNet grew from, dilates layers 3/4 by 2/4; EAGRNet's release
  does not, and we follow the release.)
* Every "ABN" (inplace_abn's ``InPlaceABNSync``) is BatchNorm followed by LeakyReLU(0.01). Upstream applies
  it everywhere, including the bottleneck's last BN (before the residual add) and the downsample branch;
  the stem and the bottleneck's inner convs then also apply a ReLU, which we keep as written.
* PSP module (bins 1, 2, 3, 6) on the 1/8 feature; an edge module on layers 1-3 (one shared 3x3 edge head,
  fused by a 1x1 conv); two EAGR graph-reasoning modules (on the PSP output at 1/8 and on layer 1 at 1/4),
  each gated by the detached edge prediction; a CE2P-style decoder at 1/4 resolution.
* Initialisation is PyTorch's default (upstream defines none; BN weight 1, bias 0 as in inplace_abn).

``forward`` returns :class:`~faceparse.models.output.ParserOutput` ``(logits=parsing, edge=edge)``, both
at 1/4 of the input resolution (exactly ``ceil(H/4) x ceil(W/4)``); ``aux`` is empty. Upstream's evaluation
upsamples the parsing logits to the input size bilinearly with ``align_corners=True``:
:func:`full_resolution_logits` does exactly that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faceparse.models.output import ParserOutput

__all__ = [
    "ABN",
    "AdaptiveAvgPool",
    "MIN_INPUT_SIZE",
    "OUTPUT_STRIDE",
    "EAGRModule",
    "EAGRNet",
    "adaptive_avg_pool_by_slices",
    "eagrnet",
    "full_resolution_logits",
    "output_size",
    "remap_reference_state_dict",
]

LEAKY_SLOPE = 0.01  # inplace_abn's default activation_param
OUTPUT_STRIDE = 4  # parsing and edge logits are at 1/4 of the input resolution
# The EAGR modules pool the 1/8 feature onto a 4x4 grid of graph nodes; below 32 px the 1/8 map has fewer
# pixels than nodes, so nodes would merely copy each other.
MIN_INPUT_SIZE = 32

RESNET101_BLOCKS = (3, 4, 23, 3)
LAYER_STRIDES = (1, 2, 1, 1)
LAYER_DILATIONS = (1, 1, 1, 2)
LAYER4_MULTI_GRID = (1, 1, 1)
PSP_BINS = (1, 2, 3, 6)


class ABN(nn.BatchNorm2d):
    """inplace_abn's ABN: BatchNorm2d followed by LeakyReLU(0.01), with BatchNorm2d's parameter names.

    Subclassing BatchNorm2d (rather than wrapping it) keeps the keys ``weight, bias, running_mean,
    running_var`` at the module's own prefix, as in the reference checkpoints.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(super().forward(x), LEAKY_SLOPE)

    def _load_from_state_dict(
        self,
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list,
        unexpected_keys: list,
        error_msgs: list,
    ) -> None:
        # inplace_abn checkpoints have no num_batches_tracked: keep ours rather than report it missing.
        tracked_key = prefix + "num_batches_tracked"
        if self.num_batches_tracked is not None and tracked_key not in state_dict:
            state_dict[tracked_key] = self.num_batches_tracked.clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def pooling_bins(length: int, bins: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive-pooling bins over ``length`` cells: ``[floor(i*L/n), ceil((i+1)*L/n))``."""
    return [((i * length) // bins, -(-(i + 1) * length // bins)) for i in range(bins)]


def adaptive_avg_pool_by_slices(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.adaptive_avg_pool2d`` written as slices and means over PyTorch's bins.

    Same numbers as the native op; exists because ONNX cannot export adaptive pooling whose output size
    does not divide the input size (the PSP bins 3 and 6 on a 64x64 feature at 512² input).
    """
    row_bins = pooling_bins(int(x.shape[-2]), size[0])
    col_bins = pooling_bins(int(x.shape[-1]), size[1])
    rows = [
        torch.cat(
            [x[..., top:bottom, left:right].mean(dim=(-2, -1), keepdim=True) for left, right in col_bins], -1
        )
        for top, bottom in row_bins
    ]  # each (B, C, 1, out_w)
    return torch.cat(rows, dim=-2)  # (B, C, out_h, out_w)


class AdaptiveAvgPool(nn.AdaptiveAvgPool2d):
    """nn.AdaptiveAvgPool2d that switches to :func:`adaptive_avg_pool_by_slices` while exporting to ONNX."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.onnx.is_in_onnx_export():
            size = self.output_size if isinstance(self.output_size, tuple) else (self.output_size,) * 2
            height, width = size
            if height is None or width is None:  # None keeps the input's size: not a case of this model
                raise ValueError(f"ONNX export needs an explicit output size, got {self.output_size}")
            return adaptive_avg_pool_by_slices(x, (height, width))
        return super().forward(x)


def conv_abn(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    """Conv (no bias) → ABN, the reference's ``nn.Sequential(conv, abn)`` (keys ``0.weight``, ``1.*``)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    return nn.Sequential(conv, ABN(out_channels))


class Bottleneck(nn.Module):
    """ResNet bottleneck (stride on the 3x3 conv), with the reference's activations.

    out = relu(ABN(conv3(...)) + residual): the last ABN applies its LeakyReLU before the residual add.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = ABN(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = ABN(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = ABN(out_channels)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        # ReLU after a leaky ABN equals ReLU of the BN output; written as the reference does.
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


def make_res_layer(
    in_channels: int, planes: int, blocks: int, stride: int, dilation: int, multi_grid: Sequence[int] = (1,)
) -> nn.Sequential:
    """One ResNet stage; block ``i`` uses dilation ``dilation * multi_grid[i % len(multi_grid)]``."""
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            ABN(out_channels),
        )
    layers = []
    for index in range(blocks):
        block_dilation = dilation * multi_grid[index % len(multi_grid)]
        if index == 0:
            layers.append(Bottleneck(in_channels, planes, stride, block_dilation, downsample))
        else:
            layers.append(Bottleneck(out_channels, planes, 1, block_dilation))
    return nn.Sequential(*layers)


class PSPModule(nn.Module):
    """Pyramid pooling: pooled 1x1 conv-ABN branches, upsampled, concatenated with the input, 3x3 conv-ABN."""

    def __init__(self, in_channels: int, out_channels: int = 512, bins: Sequence[int] = PSP_BINS) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                AdaptiveAvgPool(bin_size),
                nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
                ABN(out_channels),
            )
            for bin_size in bins
        )
        self.bottleneck = conv_abn(in_channels + len(bins) * out_channels, out_channels, kernel_size=3)

    def forward(self, features: Tensor) -> Tensor:
        size = features.shape[-2:]
        pyramid = [
            F.interpolate(stage(features), size=size, mode="bilinear", align_corners=True)
            for stage in self.stages
        ]
        return self.bottleneck(torch.cat([*pyramid, features], dim=1))  # (B, out, h, w)


class EdgeModule(nn.Module):
    """Edge logits from layers 1-3: one shared 3x3 head on each level, fused by a 1x1 conv at 1/4 scale."""

    def __init__(self, in_channels: Sequence[int] = (256, 512, 1024), mid_channels: int = 256) -> None:
        super().__init__()
        self.conv1 = conv_abn(in_channels[0], mid_channels)
        self.conv2 = conv_abn(in_channels[1], mid_channels)
        self.conv3 = conv_abn(in_channels[2], mid_channels)
        self.conv4 = nn.Conv2d(mid_channels, 2, kernel_size=3, padding=1, bias=True)  # shared edge head
        self.conv5 = nn.Conv2d(2 * 3, 2, kernel_size=1, bias=True)  # fuses the three levels

    def forward(self, feat1: Tensor, feat2: Tensor, feat3: Tensor) -> Tensor:
        size = feat1.shape[-2:]  # 1/4
        edge1 = self.conv4(self.conv1(feat1))  # (B, 2, H/4, W/4)
        # Levels 2 and 3 are at 1/8: their edge logits (not features) are upsampled.
        edge2 = F.interpolate(self.conv4(self.conv2(feat2)), size=size, mode="bilinear", align_corners=True)
        edge3 = F.interpolate(self.conv4(self.conv3(feat3)), size=size, mode="bilinear", align_corners=True)
        return self.conv5(torch.cat([edge1, edge2, edge3], dim=1))  # (B, 2, H/4, W/4)


class GCN(nn.Module):
    """Graph convolution on node states (B, S, K): node mixing minus identity, then a state projection."""

    def __init__(self, num_state: int, num_node: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(num_node, num_node, kernel_size=1)  # adjacency over the K nodes
        self.conv2 = nn.Conv1d(num_state, num_state, kernel_size=1, bias=False)  # state update

    def forward(self, nodes: Tensor) -> Tensor:
        mixed = self.conv1(nodes.transpose(1, 2)).transpose(1, 2)  # (B, S, K)
        return F.relu(self.conv2(mixed - nodes))  # (A - I) X W


class EAGRModule(nn.Module):
    """Edge-aware graph reasoning (EAGRNet paper §3.2; reference ``EAGRModule``).

    Pixels are projected onto ``grid**2`` graph nodes whose anchors are edge-weighted features pooled on a
    regular grid; a GCN reasons over the nodes; the result is reprojected and added back to the input.
    """

    def __init__(self, in_channels: int, state_channels: int, grid: int = 4) -> None:
        super().__init__()
        self.state_channels = state_channels
        self.num_nodes = grid * grid
        # Pool on a (grid+2)^2 lattice and keep the interior grid^2 cells: anchors stay off the border.
        self.priors = AdaptiveAvgPool(grid + 2)
        self.conv_state = nn.Conv2d(in_channels, state_channels, kernel_size=1)
        self.conv_proj = nn.Conv2d(in_channels, state_channels, kernel_size=1)
        self.gcn = GCN(state_channels, self.num_nodes)
        self.conv_extend = nn.Conv2d(state_channels, in_channels, kernel_size=1, bias=False)
        self.blocker = ABN(in_channels)

    def forward(self, x: Tensor, edge_logits: Tensor) -> Tensor:
        batch, _, height, width = x.shape
        pixels = height * width
        # The reference resizes edge logits with nearest-neighbour sampling before the softmax.
        edge_logits = F.interpolate(edge_logits, size=(height, width), mode="nearest")
        edge_prob = torch.softmax(edge_logits, dim=1)[:, 1:2]  # (B, 1, h, w)

        state = self.conv_state(x).reshape(batch, self.state_channels, pixels)  # (B, S, hw)
        proj = self.conv_proj(x)  # (B, S, h, w)
        anchors = self.priors(proj * edge_prob)[:, :, 1:-1, 1:-1]  # (B, S, grid, grid)
        anchors = anchors.reshape(batch, self.state_channels, self.num_nodes)  # (B, S, K)
        similarity = anchors.transpose(1, 2) @ proj.reshape(batch, self.state_channels, pixels)  # (B, K, hw)
        assignment = torch.softmax(similarity, dim=1)  # each pixel distributes over the K nodes

        nodes = state @ assignment.transpose(1, 2)  # (B, S, K)
        nodes = self.gcn(nodes)  # (B, S, K)
        reprojected = (nodes @ assignment).reshape(batch, self.state_channels, height, width)  # (B, S, h, w)
        return x + self.blocker(self.conv_extend(reprojected))


class Decoder(nn.Module):
    """CE2P decoder: 1/8 context (→256) upsampled onto the 1/4 low-level feature (→48), two 1x1 ABN convs."""

    def __init__(self, context_channels: int, low_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = conv_abn(context_channels, 256)
        self.conv2 = conv_abn(low_channels, 48)
        self.conv3 = nn.Sequential(  # flat, as the reference: keys conv3.{0,1,2,3}
            nn.Conv2d(256 + 48, 256, kernel_size=1, bias=False),
            ABN(256),
            nn.Conv2d(256, 256, kernel_size=1, bias=False),
            ABN(256),
        )
        self.conv4 = nn.Conv2d(256, num_classes, kernel_size=1, bias=True)

    def forward(self, context: Tensor, low: Tensor) -> Tensor:
        size = low.shape[-2:]  # 1/4
        context = F.interpolate(self.conv1(context), size=size, mode="bilinear", align_corners=True)
        fused = self.conv3(torch.cat([context, self.conv2(low)], dim=1))  # (B, 256, H/4, W/4)
        return self.conv4(fused)  # (B, num_classes, H/4, W/4)


class EAGRNet(nn.Module):
    """EAGRNet face parser (reference layout; 66,722,523 parameters for 11 classes and RGB input).

    Args:
        num_classes: parsing classes, background included.
        in_channels: 3 for RGB (ImageNet-normalised), 1 for depth (2n-1); only the first stem conv changes.

    ``forward(x)`` takes (B, in_channels, H, W) with H, W >= :data:`MIN_INPUT_SIZE` (any value; sizes that
    are multiples of 4 give exactly H/4 x W/4) and returns ``ParserOutput(parsing, edge=edge)`` at 1/4
    resolution: parsing logits (B, num_classes, h, w), edge logits (B, 2, h, w), no auxiliary logits.
    """

    def __init__(self, num_classes: int = 11, in_channels: int = 3) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"EAGRNet needs num_classes >= 2, got {num_classes}")
        if in_channels < 1:
            raise ValueError(f"EAGRNet needs in_channels >= 1, got {in_channels}")
        self.num_classes = num_classes
        self.in_channels = in_channels

        # Deep stem: 3x3/2 → 3x3 → 3x3, then max-pool: 1/4 resolution, 128 channels.
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = ABN(64)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)
        self.bn2 = ABN(64)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1, bias=False)
        self.bn3 = ABN(128)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        channels = 128
        stages = []
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), RESNET101_BLOCKS, strict=True)):
            multi_grid = LAYER4_MULTI_GRID if index == 3 else (1,)
            stages.append(
                make_res_layer(
                    channels, planes, blocks, LAYER_STRIDES[index], LAYER_DILATIONS[index], multi_grid
                )
            )
            channels = planes * Bottleneck.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.layer5 = PSPModule(2048, 512)
        self.edge_layer = EdgeModule((256, 512, 1024), 256)
        self.block1 = EAGRModule(512, 128, grid=4)  # on the PSP output, 1/8
        self.block2 = EAGRModule(256, 64, grid=4)  # on layer 1, 1/4
        self.layer6 = Decoder(512, 256, num_classes)

    def forward(self, x: Tensor) -> ParserOutput:
        if not torch.jit.is_tracing():
            self._check_input(x)
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))  # (B, 128, H/2, W/2)
        x = self.maxpool(x)  # (B, 128, H/4, W/4)
        feat1 = self.layer1(x)  # (B, 256, H/4, W/4)
        feat2 = self.layer2(feat1)  # (B, 512, H/8, W/8)
        feat3 = self.layer3(feat2)  # (B, 1024, H/8, W/8)
        feat4 = self.layer4(feat3)  # (B, 2048, H/8, W/8)
        context = self.layer5(feat4)  # (B, 512, H/8, W/8)

        edge = self.edge_layer(feat1, feat2, feat3)  # (B, 2, H/4, W/4)
        # The graph modules see the edge map without back-propagating into it (reference: edge.detach()).
        context = self.block1(context, edge.detach())
        low = self.block2(feat1, edge.detach())
        parsing = self.layer6(context, low)  # (B, num_classes, H/4, W/4)
        return ParserOutput(parsing, edge=edge)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"EAGRNet expects input of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if height < MIN_INPUT_SIZE or width < MIN_INPUT_SIZE:
            raise ValueError(
                f"EAGRNet needs H and W >= {MIN_INPUT_SIZE} (its 1/8 feature must cover the 4x4 nodes), "
                f"got {height}x{width}"
            )


def eagrnet(num_classes: int = 11, in_channels: int = 3, **kw: object) -> EAGRNet:
    """Build an :class:`EAGRNet` (randomly initialised; nothing is downloaded)."""
    return EAGRNet(num_classes=num_classes, in_channels=in_channels, **kw)


def output_size(height: int, width: int) -> tuple[int, int]:
    """Spatial size of both outputs for a (height, width) input: ceil(height / 4), ceil(width / 4)."""
    return math.ceil(height / OUTPUT_STRIDE), math.ceil(width / OUTPUT_STRIDE)


def full_resolution_logits(out: ParserOutput | Tensor, size: Sequence[int]) -> Tensor:
    """Parsing logits upsampled to ``size`` = (H, W), bilinear with align_corners=True (upstream evaluation).

    ``out`` is the model's :class:`ParserOutput` (its ``logits`` are used) or a (B, C, h, w) logits tensor.
    """
    logits = out.logits if isinstance(out, ParserOutput) else out
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)  # (B, C, H, W)


def remap_reference_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Make a tegusi/EAGRNet checkpoint loadable: drop the ``module.`` prefix of (Distributed)DataParallel.

    The reference keys are otherwise ours; inplace_abn's missing ``num_batches_tracked`` is handled by
    :class:`ABN`. Load the result with ``model.load_state_dict(..., strict=True)``.
    """
    prefix = "module."
    return {key.removeprefix(prefix): value for key, value in state_dict.items()}
