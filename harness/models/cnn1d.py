"""The MNIST-1D convolutional baseline (three strided 1-D convolutions + linear classifier)."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models._shapes import conv_out
from harness.models.registry import ActFn, ModelDataMismatch, register_model

# (kernel, stride, padding) of conv1..conv3, exactly as the published ConvBase.
_LAYERS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))


def _out_length(length: int) -> int:
    for kernel, stride, padding in _LAYERS:
        length = conv_out(length, kernel, stride, padding)
    return length


def _check(input_shape: tuple[int, ...], **_: object) -> None:
    length = input_shape[0]
    if _out_length(length) < 1:
        raise ModelDataMismatch.for_model(
            "cnn1d", "a sequence (L,) or (L, C) with L >= 3", input_shape,
            hint="three stride-2 convolutions need at least 3 samples",
        )


class CNN1D(nn.Module):
    """[conv(k5,s2,p1), conv(k3,s2,p1), conv(k3,s2,p1)], act after each, flatten, linear."""

    def __init__(
        self, length: int, in_channels: int, num_classes: int, act: ActFn, channels: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for kernel, stride, padding in _LAYERS:
            layers += [nn.Conv1d(c_in, channels, kernel, stride=stride, padding=padding), act()]
            c_in = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * _out_length(length), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, L) is one channel; (B, L, C) puts features on the channel axis Conv1d expects.
        x = x.unsqueeze(1) if x.dim() == 2 else x.transpose(1, 2)
        return self.head(self.features(x).flatten(1))


@register_model("cnn1d", kinds=("sequence",), check=_check)
def build_cnn1d(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn, channels: int = 25
) -> nn.Module:
    """MNIST-1D CNN (Greydanus 2020, "Scaling down deep learning", ``ConvBase`` in
    github.com/greydanus/mnist1d notebooks/models.py).

    Input (L,) is one channel (an (L, C) sequence gives C channels).  Conv1d(1, 25, 5, stride 2,
    padding 1), then two Conv1d(25, 25, 3, stride 2, padding 1), act after each, flatten, linear.
    For L = 40 the lengths are 19 -> 10 -> 5, so the classifier sees 125 features and the model
    has 5,210 parameters, matching the published one.
    """
    if channels < 1:
        raise ValueError(f"cnn1d needs channels >= 1, got {channels}")
    in_channels = 1 if len(input_shape) == 1 else input_shape[1]
    return CNN1D(input_shape[0], in_channels, num_classes, act, channels)
