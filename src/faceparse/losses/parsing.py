"""Face-parser losses: each base parser's own training loss (paper §4.2: L_CLS^RGB, L_CLS^Depth, FPLoss).

* BiSeNet (face-parsing.PyTorch): online-hard-example-mining cross-entropy (OHEM) on each of its three
  outputs, summed.
* EAGRNet (tegusi/EAGRNet): parsing CE + class-balanced edge CE + edge-attention CE, weights 1, 1, 4
  (FACTS §4; upstream's loop computes every term twice, an accident we do not copy).

Every loss here takes the parser's raw output and an int64 label map (B, H, W) where ``IGNORE_INDEX`` (255)
marks pixels excluded from the loss. The output is what our models return, a
:class:`~faceparse.models.output.ParserOutput`; a foreign model's bare logits tensor or plain sequence of
tensors (main logits first) is accepted too. Nothing here imports the model classes, only that type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceparse.labels import IGNORE_INDEX
from faceparse.models.output import ParserOutput

AnyParserOutput = ParserOutput | torch.Tensor | Sequence[torch.Tensor]
"""What the losses accept: our models' :class:`ParserOutput`, or a foreign model's bare logits tensor or
plain sequence of tensors (main logits first)."""

OHEM_SCORE_THRESH = 0.7
"""BiSeNet's OHEM keeps pixels whose true-class probability is below this (loss above −log 0.7)."""

EAGRNET_LOSS_WEIGHTS = (1.0, 1.0, 4.0)
"""EAGRNet's intended (parsing, edge, edge-attention) weights; upstream effectively uses 2, 2, 8."""


def _as_outputs(output: AnyParserOutput) -> tuple[torch.Tensor, ...]:
    """The class logits the base loss trains, main logits first: a :class:`ParserOutput`'s ``(logits, *aux)``
    (its edge logits are not class logits), a bare tensor as a 1-tuple, a plain sequence as it is."""
    if isinstance(output, ParserOutput):
        return (output.logits, *output.aux)
    if isinstance(output, torch.Tensor):
        return (output,)
    outputs = tuple(output)
    if not outputs or not all(isinstance(t, torch.Tensor) for t in outputs):
        raise TypeError(
            f"expected a ParserOutput, a tensor or a sequence of tensors as parser output, "
            f"got {type(output)!r}"
        )
    return outputs


def upsample_logits(logits: torch.Tensor, size: Sequence[int], align_corners: bool = True) -> torch.Tensor:
    """Bilinearly resize (B, C, h, w) logits to ``size`` = (H, W); a no-op when already that size."""
    size = (int(size[0]), int(size[1]))
    if tuple(logits.shape[-2:]) == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)


def main_logits(output: AnyParserOutput, size: Sequence[int] | None = None) -> torch.Tensor:
    """The parser's last-layer logits (``output.logits``; a foreign model's tensor or its first tensor),
    bilinearly resized to ``size`` if given.

    align_corners=True, as BiSeNet upsamples its heads and EAGRNet's evaluation upsamples its prediction.
    """
    logits = _as_outputs(output)[0]
    if logits.dim() != 4:
        raise ValueError(f"main logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    return logits if size is None else upsample_logits(logits, size, align_corners=True)


def _check_label(logits: torch.Tensor, label: torch.Tensor) -> None:
    if label.dim() != 3 or label.shape[0] != logits.shape[0]:
        raise ValueError(
            f"label must be (B, H, W) with B = {logits.shape[0]}, got shape {tuple(label.shape)}"
        )
    if label.dtype != torch.int64:
        raise TypeError(f"label must be int64 (torch.long), got {label.dtype}")


# --------------------------------------------------------------------------------------------------
# BiSeNet: OHEM cross-entropy
# --------------------------------------------------------------------------------------------------


def ohem_cross_entropy(
    logits: torch.Tensor,
    label: torch.Tensor,
    score_thresh: float = OHEM_SCORE_THRESH,
    n_min: int | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """BiSeNet's OHEM cross-entropy (face-parsing.PyTorch ``OhemCELoss``), mean over the kept pixels.

    logits (B, C, H, W), label (B, H, W). With ``thresh = −log(score_thresh)`` and the per-pixel CE
    losses sorted in descending order, upstream keeps ``loss[loss > thresh]`` if ``sorted[n_min] > thresh``
    (i.e. MORE than ``n_min`` pixels are hard), otherwise the ``n_min`` largest losses. We apply that exact
    rule, written without the full sort: count the hard pixels, compare the count with ``n_min``.

    ``n_min`` defaults to B·H·W // 16 (upstream: batch × crop area // 16). Unlike upstream, ignored pixels
    are dropped before the selection instead of entering it as zero losses, so they can never fill the
    top-``n_min`` set; ``n_min`` is capped at the number of valid pixels. All pixels ignored → 0 (with a
    graph, so ``backward`` still works).
    """
    _check_label(logits, label)
    logits = upsample_logits(logits, label.shape[-2:], align_corners=True)
    if n_min is None:
        n_min = label.numel() // 16
    loss_thresh = -math.log(score_thresh)

    pixel_loss = F.cross_entropy(logits, label, ignore_index=ignore_index, reduction="none")  # (B, H, W)
    valid = label != ignore_index
    n_valid = int(valid.sum())
    if n_valid == 0:
        return logits.sum() * 0.0

    # Masks and sums rather than boolean indexing: the same selection, no gather/scatter of kept losses.
    hard = (pixel_loss > loss_thresh) & valid
    n_hard = int(hard.sum())
    if n_hard > n_min:
        return (pixel_loss * hard).sum() / n_hard
    k = max(1, min(n_min, n_valid))
    # Valid losses are >= 0, so the -1 fill never reaches the top k <= n_valid.
    candidates = pixel_loss.masked_fill(~valid, -1.0).flatten()  # (B·H·W,)
    return torch.topk(candidates, k, sorted=False).values.mean()


class OhemCrossEntropy(nn.Module):
    """Module form of :func:`ohem_cross_entropy` for one logits tensor."""

    def __init__(
        self,
        score_thresh: float = OHEM_SCORE_THRESH,
        n_min: int | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.score_thresh = score_thresh
        self.n_min = n_min
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return ohem_cross_entropy(logits, label, self.score_thresh, self.n_min, self.ignore_index)


class BiSeNetLoss(nn.Module):
    """BiSeNet's training loss: OHEM CE on each output (out, out16, out32), summed with weight 1 each.

    ``output`` is a :class:`ParserOutput` (its ``logits`` and ``aux``: BiSeNet's out and (out16, out32)) or
    a foreign model's tensor or sequence of tensors (every one is trained). Outputs not at the label's size
    are bilinearly resized (align_corners=True) first; BiSeNet's own outputs already are at the input size.
    """

    def __init__(
        self,
        score_thresh: float = OHEM_SCORE_THRESH,
        n_min: int | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.ohem = OhemCrossEntropy(score_thresh, n_min, ignore_index)

    def forward(self, output: AnyParserOutput, label: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.ohem(logits, label) for logits in _as_outputs(output)]).sum()


# --------------------------------------------------------------------------------------------------
# EAGRNet: parsing + class-balanced edge + edge-attention
# --------------------------------------------------------------------------------------------------


def masked_cross_entropy(
    logits: torch.Tensor, label: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Plain CE, mean over non-ignored pixels (= ``F.cross_entropy``); 0, not NaN, if none are left."""
    pixel_loss = F.cross_entropy(logits, label, ignore_index=ignore_index, reduction="none")  # (B, H, W)
    return _mean_over_valid(pixel_loss, label, ignore_index)


def _mean_over_valid(pixel_loss: torch.Tensor, label: torch.Tensor, ignore_index: int) -> torch.Tensor:
    return pixel_loss.sum() / (label != ignore_index).sum().clamp_min(1)


def _cross_max_pool(x: torch.Tensor) -> torch.Tensor:
    """Max over each pixel and its 4-neighbours (B, 1, H, W); pixels outside the image are skipped."""
    rows = F.max_pool2d(x, kernel_size=(3, 1), stride=1, padding=(1, 0))
    cols = F.max_pool2d(x, kernel_size=(1, 3), stride=1, padding=(0, 1))
    return torch.maximum(rows, cols)


def _differs_from_a_4_neighbour(label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: a valid 4-neighbour inside the image holds a class other than this valid pixel's."""
    edge = torch.zeros_like(valid)
    # vertical pairs (row i, row i+1), then horizontal pairs (column j, column j+1)
    differs = (label[:, 1:, :] != label[:, :-1, :]) & valid[:, 1:, :] & valid[:, :-1, :]  # (B, H-1, W)
    edge[:, 1:, :] |= differs
    edge[:, :-1, :] |= differs
    differs = (label[:, :, 1:] != label[:, :, :-1]) & valid[:, :, 1:] & valid[:, :, :-1]  # (B, H, W-1)
    edge[:, :, 1:] |= differs
    edge[:, :, :-1] |= differs
    return edge


def edge_from_label(label: torch.Tensor, radius: int = 1, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Semantic-edge ground truth from a label map (B, H, W) int64 → (B, H, W) int64 in {0, 1, ignore}.

    ``radius=1`` is EAGRNet's ``generate_edge.py`` rule: a pixel is an edge (1) if one of its 4-neighbours
    inside the image carries a different class. Upstream writes edge files once per dataset; we derive them
    on the fly with tensor ops (shifted comparisons), so this runs on the GPU inside the loss.

    ``radius=r > 1`` widens that band by r − 1 pixels (Manhattan distance, by the max-pool trick: r − 1
    passes of a 4-neighbour max-pool). Without ignore pixels this is exactly "some pixel within Manhattan
    distance r carries a different class".

    Ignore pixels: they are ``ignore_index`` in the edge map too (excluded from the edge losses), and an
    ignore neighbour does not make a pixel an edge (a boundary to unlabelled area is no semantic edge).
    """
    if label.dim() != 3:
        raise ValueError(f"label must be (B, H, W), got shape {tuple(label.shape)}")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    valid = label != ignore_index
    is_edge = _differs_from_a_4_neighbour(label, valid)  # (B, H, W) bool
    if radius > 1:
        band = is_edge.unsqueeze(1).float()  # (B, 1, H, W)
        for _ in range(radius - 1):
            band = _cross_max_pool(band)
        is_edge = band.squeeze(1) > 0  # (B, H, W)
    edge = is_edge.long()
    return torch.where(valid, edge, torch.full_like(edge, ignore_index))


def edge_class_weights(edge: torch.Tensor) -> torch.Tensor:
    """EAGRNet's class-balanced weights (w_non_edge, w_edge) from the whole batch's edge map.

    w_edge = n_non_edge / n, w_non_edge = n_edge / n over the batch's valid (0 or 1) pixels: the rarer
    class gets the larger weight. No valid pixels → (0, 0).
    """
    n_edge = (edge == 1).sum().float()
    n_non_edge = (edge == 0).sum().float()
    n_total = (n_edge + n_non_edge).clamp_min(1.0)
    return torch.stack([n_edge / n_total, n_non_edge / n_total])


def balanced_edge_loss(
    edge_logits: torch.Tensor, edge: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Class-balanced edge CE: Σ w[y]·CE / Σ w[y] over valid pixels (``F.cross_entropy``'s weighted mean).

    edge_logits (B, 2, H, W), edge (B, H, W) in {0, 1, ignore}. Upstream's weighted mean divides by Σ w[y],
    which is 0/0 = NaN for a batch with no edge pixels (w_non_edge = 0 then). Here that batch gives 0: under
    class balancing it carries no edge signal. Σ w[y] = 2·n_edge·n_non_edge / n ≥ 1 whenever both classes
    occur, so the clamp below never changes a non-degenerate value.
    """
    weights = edge_class_weights(edge).to(edge_logits.dtype)
    pixel_loss = F.cross_entropy(edge_logits, edge, ignore_index=ignore_index, reduction="none")  # (B, H, W)
    valid = edge != ignore_index
    pixel_weight = torch.where(valid, weights[edge.clamp(0, 1)], torch.zeros_like(pixel_loss))
    return (pixel_weight * pixel_loss).sum() / pixel_weight.sum().clamp_min(1e-12)


def edge_attention_loss(
    parsing_logits: torch.Tensor, label: torch.Tensor, edge: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Parsing CE restricted to edge pixels: per image, mean CE over its edge pixels; then mean over B.

    As upstream, an image's term is divided by its own edge-pixel count and the batch mean divides by B.
    An image with no edge pixels contributes 0 (upstream divides by zero there).
    """
    pixel_loss = F.cross_entropy(parsing_logits, label, ignore_index=ignore_index, reduction="none")
    return _edge_attention(pixel_loss, edge)


def _edge_attention(pixel_loss: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
    """Per-pixel parsing CE (B, H, W) → the edge-attention term of :func:`edge_attention_loss`."""
    on_edge = (edge == 1).to(pixel_loss.dtype)
    per_image_sum = (pixel_loss * on_edge).flatten(1).sum(dim=1)  # (B,)
    per_image_count = on_edge.flatten(1).sum(dim=1)  # (B,)
    per_image = per_image_sum / per_image_count.clamp_min(1.0)
    return per_image.mean()


class EAGRNetLoss(nn.Module):
    """EAGRNet's training loss: w0·parsing CE + w1·balanced edge CE + w2·edge-attention CE.

    ``output`` is EAGRNet's :class:`ParserOutput`: ``logits`` (B, C, h, w) and ``edge`` (B, 2, h, w) at 1/4
    resolution (a foreign model may pass a plain ``(parsing_logits, edge_logits, ...)`` sequence); both
    are bilinearly upsampled to the label size, as upstream does inside its loss.
    Upstream's loss calls ``F.upsample`` without ``align_corners``, i.e. False on PyTorch >= 0.4 (it ran on
    1.4), so that is the default here; ``align_corners`` is configurable.

    ``weights`` defaults to the intended (1, 1, 4). Upstream's loss loops over ``len(preds)`` = 2 outputs
    but recomputes the same three terms each time, so its effective weights are (2, 2, 8): pass
    ``weights=(2, 2, 8)`` to reproduce that scale exactly.

    The edge ground truth is derived from ``label`` on the fly (:func:`edge_from_label`) unless given.
    """

    def __init__(
        self,
        weights: Sequence[float] = EAGRNET_LOSS_WEIGHTS,
        ignore_index: int = IGNORE_INDEX,
        edge_radius: int = 1,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if len(weights) != 3:
            raise ValueError(f"weights must be (parsing, edge, attention), got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.ignore_index = ignore_index
        self.edge_radius = edge_radius
        self.align_corners = align_corners

    def terms(
        self, output: AnyParserOutput, label: torch.Tensor, edge: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The three unweighted terms: ``parsing``, ``edge``, ``attention``."""
        parsing_logits, edge_logits = _parsing_and_edge(output)
        _check_label(parsing_logits, label)
        if edge_logits.shape[1] != 2:
            raise ValueError(f"edge logits must have 2 channels, got shape {tuple(edge_logits.shape)}")
        if edge is None:
            edge = edge_from_label(label, self.edge_radius, self.ignore_index)
        size = label.shape[-2:]
        parsing_logits = upsample_logits(parsing_logits, size, self.align_corners)  # (B, C, H, W)
        edge_logits = upsample_logits(edge_logits, size, self.align_corners)  # (B, 2, H, W)
        # one per-pixel parsing CE serves both the parsing term and the edge-attention term
        pixel_loss = F.cross_entropy(
            parsing_logits, label, ignore_index=self.ignore_index, reduction="none"
        )  # (B, H, W)
        return {
            "parsing": _mean_over_valid(pixel_loss, label, self.ignore_index),
            "edge": balanced_edge_loss(edge_logits, edge, self.ignore_index),
            "attention": _edge_attention(pixel_loss, edge),
        }

    def forward(
        self, output: AnyParserOutput, label: torch.Tensor, edge: torch.Tensor | None = None
    ) -> torch.Tensor:
        terms = self.terms(output, label, edge)
        w_parsing, w_edge, w_attention = self.weights
        return w_parsing * terms["parsing"] + w_edge * terms["edge"] + w_attention * terms["attention"]


def _parsing_and_edge(output: AnyParserOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """(parsing logits, edge logits) of an EAGRNet-style output."""
    if isinstance(output, ParserOutput):
        if output.edge is None:
            raise ValueError(
                "EAGRNetLoss needs edge logits, but the parser output has edge=None (BiSeNet has no edge "
                "head; its loss is BiSeNetLoss, parser_loss('bisenet'))"
            )
        return output.logits, output.edge
    outputs = _as_outputs(output)
    if len(outputs) < 2:
        raise ValueError(
            "EAGRNetLoss needs a ParserOutput with edge logits or a (parsing_logits, edge_logits, ...) "
            "sequence, got a single tensor"
        )
    return outputs[0], outputs[1]


_PARSER_LOSSES: dict[str, type[nn.Module]] = {"bisenet": BiSeNetLoss, "eagrnet": EAGRNetLoss}


def parser_loss(arch: str, **kwargs: object) -> nn.Module:
    """The base parser's own loss, ``loss(output, label) -> Tensor`` (paper §4.2: used for L_CLS^RGB,
    L_CLS^Depth and FPLoss in L_E2E). ``arch``: "bisenet" or "eagrnet"; kwargs go to the loss class."""
    try:
        loss_class = _PARSER_LOSSES[arch.lower()]
    except KeyError:
        raise ValueError(
            f"unknown parser architecture {arch!r}; choose one of {sorted(_PARSER_LOSSES)}"
        ) from None
    return loss_class(**kwargs)
