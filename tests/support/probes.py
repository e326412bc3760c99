"""Probe points and independent references shared by the activation tests."""
import torch
import torch.nn.functional as F

# Points where some built-in forward or rule has a kink or jump.
KINKS = (0.0, -1.0, 1.0, -3.0, 3.0, 6.0, -0.5, 0.5, -5.0, 5.0)


def smooth_points(n: int = 64, dtype=torch.float64, seed: int = 0, lo: float = -4.0, hi: float = 7.0) -> torch.Tensor:
    """`n` points in [lo, hi] at least 0.05 away from every kink."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(8 * n, generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(dtype)
    far = torch.stack([(x.double() - k).abs() > 0.05 for k in KINKS]).all(0)
    return x[far][:n]


# torch's own implementations, independent of our registry, used as autograd references.
NATIVE_FORWARDS = {
    "identity": lambda x: x * 1.0,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "elu": F.elu,
    "selu": F.selu,
    "celu": F.celu,
    "gelu": F.gelu,
    "silu": F.silu,
    "mish": F.mish,
    "softplus": F.softplus,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "hardtanh": F.hardtanh,
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
    "step": lambda x: (x > 0).to(x.dtype) + 0 * x,
    "sign": lambda x: torch.sign(x) + 0 * x,
}
