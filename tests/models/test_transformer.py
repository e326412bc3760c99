"""Transformer: tokenisation, patch choice, pooling."""

from __future__ import annotations

import pytest
import torch

from harness.models import build_model, count_parameters
from harness.models.transformer import resolve_patch_size


@pytest.mark.parametrize(
    "shape, patch, tokens",
    [((40,), 4, 10), ((64,), 4, 16), ((6,), 2, 3), ((7,), 1, 7), ((12, 3), 1, 12),
     ((1, 28, 28), 7, 16), ((3, 32, 32), 4, 64), ((1, 10, 10), 2, 25)],
)
def test_auto_patch_and_token_count(shape, patch, tokens, simple_act):
    assert resolve_patch_size(shape, None) == patch
    model = build_model("transformer", input_shape=shape, num_classes=5, act=simple_act,
                        dim=16, heads=2)
    assert model.tokenizer.num_tokens == tokens
    assert model.pos_embed.shape == (1, tokens + 1, 16)  # + CLS
    assert model.tokenizer(torch.randn(2, *shape)).shape == (2, tokens, 16)


def test_explicit_patch_and_mean_pool(simple_act):
    model = build_model("transformer", input_shape=(40,), num_classes=5, act=simple_act,
                        patch_size=8, pool="mean")
    assert model.tokenizer.num_tokens == 5 and model.cls_token is None
    assert model.pos_embed.shape == (1, 5, 64)


def test_reference_mnist1d_size(simple_act):
    model = build_model("transformer", input_shape=(40,), num_classes=10, act=simple_act)
    # embed 4*64+64, cls 64, pos 11*64, 2 blocks x (2 LN 256 + attn 12480+4160 + mlp 8320+8256),
    # final LN 128, head 650
    assert count_parameters(model) == 320 + 64 + 704 + 2 * 33472 + 128 + 650 == 68810


def test_mlp_is_the_only_activation(counting_act):
    model = build_model("transformer", input_shape=(40,), num_classes=10, act=counting_act,
                        depth=3)
    assert counting_act.calls == [None, None, None]
    assert all(block.mlp[1] is m for block, m in zip(model.blocks, counting_act.modules))
