"""Compiled pairs do not specialise on their parameters (issue #14).

One process compiles many small models whose pairs differ only in parameters (interval ends,
levels, few-bit tables, jam seeds): Dynamo must reuse one graph per graph structure instead of
recompiling per model, which past `recompile_limit` (8) falls back to eager with only a warning.

Guards and recompiles are Dynamo's, the same whatever backend runs the graphs, so this test
compiles with "aot_eager": AOTAutograd still traces every forward and backward (the gate ops
expand into their plain-op forms, the custom ops' fakes run) but nothing goes to Inductor, which
cost 20-130 s with a cold compile cache. Under "inductor", "aot_eager" and "eager" this test
counted the same graphs and recompiles with the same guard failures, and against the tree before
422525a (graph-visible interval floats) all three hit the recompile limit. Inductor's lowering
of the gate ops is tested once, bit for bit, in test_backends.py.
"""
import logging

import torch
from torch import nn

from harness.activations import ActFactory, compile_model

# Groups of pairs that share one graph structure: (forward, rule, parameters, seed).
GROUPS = {
    # Gates behind relu keep y with signed zeros (graph.py); those that straddle 0 one compare
    # fewer each way: their own structure
    "gate": [
        ("relu", "rectangular", {"a": -0.5, "b": 0.5}, 0),
        ("relu", "rectangular", {"a": -1.0, "b": 2.0}, 0),
        ("relu", "rectangular", {"a": 0.0, "b": 1.0}, 0),  # closed at 0
        ("relu", "clipped_ste", {"t": 0.5}, 0),
        ("relu", "clipped_ste", {"t": 3.0}, 0),
    ],
    "gate off 0": [
        ("relu", "rectangular", {"a": 0.25, "b": 0.75}, 0),
        ("relu", "rectangular", {"a": -2.0, "b": -0.5}, 0),
    ],
    # 1[x > 0] behind relu keeps relu's own y, no signed zeros (graph.py): its own structure
    "output gate": [
        ("relu", "exact", {}, 0),
        ("relu", "heaviside", {}, 0),
    ],
    # Behind a step forward a gate keeps bits (the graph's word blocks)
    "step gate": [
        ("step", "rectangular", {"a": -0.5, "b": 0.5}, 0),
        ("step", "rectangular", {"a": -1.0, "b": 2.0}, 0),
    ],
    "jam": [
        ("relu", "positive_jam", {}, 0),
        ("relu", "positive_jam", {}, 7),
        ("relu", "rectangular_jam", {"a": -1.0, "b": 1.0}, 3),
        ("relu", "rectangular_jam", {"a": -4.0, "b": 0.5}, 11),
    ],
    "codes": [
        ("relu", "quantized", {"bits": 2, "of": "b_silu"}, 0),
        ("relu", "quantized", {"bits": 2, "of": "fast_sigmoid"}, 0),
        ("relu", "quantized", {"bits": 2, "of": "b_silu", "a": 1.0}, 0),
    ],
    "noise": [
        ("relu", "noise", {"sigma": 0.1}, 0),
        ("relu", "noise", {"sigma": 0.4}, 5),
    ],
    "constant": [
        ("relu", "constant", {"c": 0.5}, 0),
        ("relu", "constant", {"c": 2.0}, 0),
    ],
}


class _Recompiles(logging.Handler):
    """Collects Dynamo's recompile and recompile-limit messages."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _model(forward, rule, params, seed):
    act = ActFactory(forward, rule, backward_params=params, seed=seed)
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), act(), nn.Linear(16, 16), act(), nn.Linear(16, 3))


def _step(model, x):
    loss = model(x).square().sum()
    loss.backward()
    return loss.detach()


def compile_every_pair(backend: str = "aot_eager") -> tuple[int, int, list[str]]:
    """Compile and step every pair of GROUPS in one Dynamo cache; checks each non-stochastic
    pair's gradients against eager. Returns (pairs, unique graphs, Dynamo's recompile messages)."""
    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
    handler = _Recompiles()
    dynamo_log = logging.getLogger("torch._dynamo")  # the guards' recompile messages propagate here
    dynamo_log.addHandler(handler)
    torch._logging.set_logs(recompiles=True)
    x = torch.randn(9, 6)
    try:
        n_pairs = 0
        for group in GROUPS.values():
            for forward, rule, params, seed in group:
                eager = _model(forward, rule, params, seed)
                compiled_model = _model(forward, rule, params, seed)
                compiled = compile_model(compiled_model, backend=backend)
                for _ in range(2):  # the second call must hit the cache too
                    _step(compiled, x)
                n_pairs += 1
                if rule not in ("positive_jam", "rectangular_jam", "noise"):  # compiled draws differ
                    _step(eager, x)
                    for pe, pc in zip(eager.parameters(), compiled_model.parameters()):
                        torch.testing.assert_close(pc.grad, 2 * pe.grad, rtol=1e-5, atol=1e-6)
    finally:
        torch._logging.set_logs()
        dynamo_log.removeHandler(handler)
    return n_pairs, counters["stats"]["unique_graphs"], handler.messages


def test_many_pairs_compile_once_per_graph_structure():
    n_pairs, graphs, messages = compile_every_pair()
    assert n_pairs >= 12
    assert not [m for m in messages if "recompile_limit" in m or "cache_size_limit" in m]
    recompiles = [m for m in messages if "Recompiling function" in m]
    assert graphs == len(GROUPS), (graphs, recompiles)
    assert len(recompiles) == len(GROUPS) - 1, recompiles
