"""Replace the activation modules inside any nn.Module (torchvision models included)."""
from __future__ import annotations

from typing import Callable, Iterable

from torch import nn

# Activation module classes replaced by default.
DEFAULT_KINDS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Softplus, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish,
)


def swap_activations(
    model: nn.Module,
    pair_or_factory: nn.Module | Callable[[], nn.Module],
    kinds: Iterable[type[nn.Module]] = (nn.ReLU,),
) -> int:
    """Replace every submodule of `model` that is an instance of one of `kinds`; return how many.

    `pair_or_factory` is either a module (shared by every slot; pairs hold no per-slot state) or a
    zero-argument callable returning a fresh module per slot. A module object that appears in
    several places (torchvision's BasicBlock reuses `self.relu`) is replaced at every place.
    """
    kinds = tuple(kinds)
    if not kinds or not all(isinstance(k, type) and issubclass(k, nn.Module) for k in kinds):
        raise TypeError(f"kinds must be nn.Module classes, got {kinds!r}")
    make = (lambda: pair_or_factory) if isinstance(pair_or_factory, nn.Module) else pair_or_factory
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kinds):
                setattr(parent, name, make())
                replaced += 1
    return replaced
