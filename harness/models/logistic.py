"""Multinomial logistic regression: one linear map from the flattened input to the class logits."""

from __future__ import annotations

import torch.nn as nn

from harness.models._shapes import flat_size
from harness.models.registry import ActFn, register_model


@register_model("logistic", kinds=("vector", "sequence", "image"))
def build_logistic(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn, bias: bool = True,
) -> nn.Module:
    """Logistic regression: flatten -> Linear(num_classes); softmax lives in the loss.

    MNIST-1D's linear baseline (Greydanus 2020, "Scaling down deep learning": 32 % test
    accuracy); 410 parameters on (40,) with 10 classes.  It has no activation slot, so ``act`` is
    never called and every backward rule trains the same model: use it to calibrate, not to
    compare rules.  Equivalent to ``mlp`` with ``depth=0``, named so that records say what ran.
    """
    del act  # no hidden layer, hence no activation pair
    return nn.Sequential(nn.Flatten(), nn.Linear(flat_size(input_shape), num_classes, bias=bias))
