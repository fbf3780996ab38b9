"""What every face parser returns: :class:`ParserOutput` (main logits, auxiliary logits, edge logits).

One type for both base parsers, so that losses, the joint step, evaluation and inference read fields
instead of tuple positions: BiSeNet fills ``aux`` with its 1/16 and 1/32 heads, EAGRNet fills ``edge``.
It is a NamedTuple (nested tuples and None are fine), which DDP, Fabric's output conversion and autocast
handle like any tuple of tensors; ``output[0]`` is the main logits, as it was in the plain tuples before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

__all__ = ["ParserOutput"]


class ParserOutput(NamedTuple):
    """A face parser's raw output.

    * ``logits``: the main, last-layer logits (B, C, h, w): the prediction. At the input size for BiSeNet,
      at 1/4 of it for EAGRNet.
    * ``aux``: auxiliary logits the base loss also trains, each (B, C, h', w'): BiSeNet's 1/16 and 1/32
      heads (upsampled to the input size); empty for EAGRNet.
    * ``edge``: EAGRNet's edge logits (B, 2, h, w) ("not edge" / "edge"), at the size of ``logits``; None
      for BiSeNet.
    """

    logits: Tensor
    aux: tuple[Tensor, ...] = ()
    edge: Tensor | None = None

    def tensors(self) -> tuple[Tensor, ...]:
        """Every tensor, flat: ``(logits, *aux, edge)``, the edge only if present."""
        edge = () if self.edge is None else (self.edge,)
        return (self.logits, *self.aux, *edge)

    def map(self, fn: Callable[[Tensor], Tensor]) -> ParserOutput:
        """The same structure with ``fn`` applied to every tensor (e.g. ``out.map(lambda t: t[:4])``)."""
        return ParserOutput(
            fn(self.logits),
            tuple(fn(t) for t in self.aux),
            None if self.edge is None else fn(self.edge),
        )
