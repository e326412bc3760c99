"""The hand-written GRU: gate pairs, equivalence with torch.nn.GRU, published size."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from harness.models import build_model, count_parameters
from harness.models.gru import PairGRUCell


@pytest.mark.parametrize("bidirectional, cells", [(False, 1), (True, 2)])
def test_gates_call_act_with_sigmoid_twice_and_tanh_once_per_cell(
    bidirectional, cells, counting_act
):
    build_model("gru", input_shape=(40,), num_classes=10, act=counting_act,
                bidirectional=bidirectional)
    assert counting_act.calls == ["sigmoid", "sigmoid", "tanh"] * cells


def test_cell_matches_torch_gru(simple_act):
    """With the true sigmoid/tanh pairs the cell is torch.nn.GRU, weight for weight."""
    cell = PairGRUCell(3, 5, simple_act)
    ref = nn.GRU(3, 5, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.x2h.weight)
        ref.bias_ih_l0.copy_(cell.x2h.bias)
        ref.weight_hh_l0.copy_(cell.h2h.weight)
        ref.bias_hh_l0.copy_(cell.h2h.bias)
    x = torch.randn(4, 7, 3)
    torch.testing.assert_close(cell(x), ref(x)[0])


def test_bidirectional_matches_torch_and_published_size(simple_act):
    """Defaults equal MNIST-1D's GRUBase: bidirectional nn.GRU(1, 6) + Linear(40*12, 10)."""
    model = build_model("gru", input_shape=(40,), num_classes=10, act=simple_act)
    ref = nn.GRU(1, 6, batch_first=True, bidirectional=True)
    ref_head = nn.Linear(40 * 12, 10)
    assert count_parameters(model) == count_parameters(ref) + count_parameters(ref_head) == 5134
    with torch.no_grad():
        for cell, suffix in ((model.forward_cell, ""), (model.backward_cell, "_reverse")):
            getattr(ref, f"weight_ih_l0{suffix}").copy_(cell.x2h.weight)
            getattr(ref, f"bias_ih_l0{suffix}").copy_(cell.x2h.bias)
            getattr(ref, f"weight_hh_l0{suffix}").copy_(cell.h2h.weight)
            getattr(ref, f"bias_hh_l0{suffix}").copy_(cell.h2h.bias)
        ref_head.load_state_dict(model.head.state_dict())
    x = torch.randn(3, 40)
    expected = ref_head(ref(x.unsqueeze(-1))[0].flatten(1))
    torch.testing.assert_close(model(x), expected)


def test_last_readout_uses_final_states(simple_act):
    model = build_model("gru", input_shape=(12,), num_classes=4, act=simple_act,
                        readout="last", hidden_size=5)
    assert model.head.in_features == 10
    ref = nn.GRU(1, 5, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for cell, suffix in ((model.forward_cell, ""), (model.backward_cell, "_reverse")):
            getattr(ref, f"weight_ih_l0{suffix}").copy_(cell.x2h.weight)
            getattr(ref, f"bias_ih_l0{suffix}").copy_(cell.x2h.bias)
            getattr(ref, f"weight_hh_l0{suffix}").copy_(cell.h2h.weight)
            getattr(ref, f"bias_hh_l0{suffix}").copy_(cell.h2h.bias)
    x = torch.randn(3, 12)
    h_n = ref(x.unsqueeze(-1))[1]  # (2, B, H): forward final, backward final
    torch.testing.assert_close(model(x), model.head(torch.cat([h_n[0], h_n[1]], dim=-1)))


def test_sequence_layouts(simple_act):
    chunked = build_model("gru", input_shape=(40,), num_classes=10, act=simple_act, chunk=4)
    assert (chunked.steps, chunked.features) == (10, 4)
    image = build_model("gru", input_shape=(1, 28, 28), num_classes=10, act=simple_act)
    assert (image.steps, image.features) == (28, 28)
    rgb = build_model("gru", input_shape=(3, 8, 5), num_classes=10, act=simple_act)
    assert (rgb.steps, rgb.features) == (8, 15)
    # Row t of an image is step t, all channels concatenated.
    x = torch.randn(2, 3, 8, 5)
    steps = x.permute(0, 2, 1, 3).reshape(2, 8, 15)
    torch.testing.assert_close(steps[:, 4, 5:10], x[:, 1, 4])
