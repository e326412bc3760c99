"""The activation factory a model receives: one configured pair, fresh modules on demand."""
from __future__ import annotations

from typing import Any

from .pair import ActivationPair, make_pair
from .saved_state import RandomSource


class ActFactory:
    """`act()` -> a module for the configured pair; `act("sigmoid")` -> the same backward rule on
    another forward (GRU gates). All modules share one seeded RandomSource.

    Building the factory validates the configuration, so bad names or parameters fail before a
    model is constructed.
    """

    def __init__(
        self,
        forward: str = "relu",
        backward: str = "exact",
        *,
        forward_params: dict[str, Any] | None = None,
        backward_params: dict[str, Any] | None = None,
        seed: int = 0,
    ):
        self.forward = forward
        self.backward = backward
        self.forward_params = dict(forward_params or {})
        self.backward_params = dict(backward_params or {})
        self.rng = RandomSource(seed)
        self.spec = make_pair(forward, backward, forward_params=self.forward_params, backward_params=self.backward_params, rng=self.rng)
        self._specs = {None: self.spec}

    def spec_for(self, forward: str | None = None):
        """The PairSpec used for `forward` (None: the configured one)."""
        if forward == self.forward:
            forward = None
        if forward not in self._specs:
            self._specs[forward] = make_pair(forward, self.backward, backward_params=self.backward_params, rng=self.rng)
        return self._specs[forward]

    def __call__(self, forward: str | None = None) -> ActivationPair:
        return ActivationPair.from_spec(self.spec_for(forward))

    def describe(self) -> str:
        return self.spec.describe()
