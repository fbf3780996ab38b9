"""ParserOutput (models/output.py): the flat tensor view, mapping over every tensor, the defaults, and that it
survives Fabric's output conversion. That both parsers return it, with their shapes, is in test_models.py."""

from __future__ import annotations

import pytest
import torch

from faceparse.models import ParserOutput


def _bisenet_like() -> ParserOutput:
    return ParserOutput(
        torch.full((4, 3, 2, 2), 1.0), (torch.full((4, 3, 2, 2), 2.0), torch.full((4, 3, 2, 2), 3.0))
    )


def _eagrnet_like() -> ParserOutput:
    return ParserOutput(torch.full((4, 3, 2, 2), 1.0), edge=torch.full((4, 2, 2, 2), 4.0))


def test_defaults_are_no_aux_and_no_edge():
    logits = torch.randn(1, 3, 2, 2)
    out = ParserOutput(logits)
    assert out.logits is logits and out.aux == () and out.edge is None
    assert isinstance(out, tuple) and out[0] is logits  # main logits first, as plain tuples had them


def test_tensors_is_logits_then_aux_then_edge_if_present():
    bisenet = _bisenet_like()
    assert [t[0, 0, 0, 0].item() for t in bisenet.tensors()] == [1.0, 2.0, 3.0]  # no edge: no None
    assert bisenet.tensors()[0] is bisenet.logits
    eagrnet = _eagrnet_like()
    flat = eagrnet.tensors()
    assert len(flat) == 2 and flat[0] is eagrnet.logits and flat[1] is eagrnet.edge
    assert ParserOutput(eagrnet.logits).tensors() == (eagrnet.logits,)


@pytest.mark.parametrize("make", [_bisenet_like, _eagrnet_like])
def test_map_applies_fn_to_every_tensor_and_keeps_the_structure(make):
    out = make()
    for i, t in enumerate(out.tensors()):
        t.mul_(torch.arange(4.0).view(4, 1, 1, 1) + 10 * i)  # row r of tensor i holds value(i) * (r + 10 i)
    calls = []

    def rows_1_to_3(t: torch.Tensor) -> torch.Tensor:
        calls.append(t)
        return t[1:3]

    mapped = out.map(rows_1_to_3)
    assert isinstance(mapped, ParserOutput)
    assert len(calls) == len(out.tensors())  # fn sees every tensor once, and nothing else (never None)
    assert len(mapped.aux) == len(out.aux) and (mapped.edge is None) == (out.edge is None)
    for before, after in zip(out.tensors(), mapped.tensors(), strict=True):
        assert after.shape == (2, *before.shape[1:])
        assert torch.equal(after, before[1:3])


def test_survives_fabric_output_conversion():
    """Fabric's precision plugins convert a module's outputs with apply_to_collection: the NamedTuple, its
    nested aux tuple and a None edge come back in the same structure."""
    from lightning_utilities.core.apply_func import apply_to_collection

    def to_double(t: torch.Tensor) -> torch.Tensor:
        return t.double()

    for out in (_bisenet_like(), _eagrnet_like()):
        converted = apply_to_collection(out, function=to_double, dtype=torch.Tensor)
        assert isinstance(converted, ParserOutput)
        assert len(converted.aux) == len(out.aux) and (converted.edge is None) == (out.edge is None)
        assert all(t.dtype == torch.float64 for t in converted.tensors())
