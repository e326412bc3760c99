"""Shape arithmetic shared by the model builders and their pre-construction checks."""

from __future__ import annotations

import math


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution / pooling window along one axis (PyTorch floor rule)."""
    return (size + 2 * padding - kernel) // stride + 1


def flat_size(input_shape: tuple[int, ...]) -> int:
    """Number of features after flattening one sample."""
    return math.prod(input_shape)
