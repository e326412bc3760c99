"""Gradient and activation diagnostics on a probe batch, without disturbing training.

- `gradient_fidelity`: how well a pair's gradient matches the gradient the exact derivative of
  the same forward would give (cosine similarity, norm ratio, per parameter and overall). This is
  the papers' central claim (direction, docs/DESIGN.md section 2).
- `gradient_norms`: per-parameter norms of the current .grad (vanishing / exploding gradients).
- `activation_stats`: sparsity and dead units of ReLU-like pairs.

Every probe leaves the model as it found it: existing .grad tensors, module buffers (BatchNorm
running statistics and counters), torch's global RNG (dropout) and the pairs' own RandomSource
(stochastic rules such as full_jam) are all restored afterwards. So a run with periodic probes
trains exactly like one without. Train/eval mode is left as it is: in train mode BatchNorm uses
batch statistics and dropout is active (with the same masks in the pair and the exact pass).

Diagnostics run the model eagerly; pass the uncompiled module, not a torch.compile wrapper.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from harness.activations import ActivationPair, BoundForward, PairSpec, RandomSource, make_pair

LossFn = Callable[[Tensor, Tensor], Tensor]


def pair_modules(model: nn.Module) -> list[tuple[str, ActivationPair]]:
    """(qualified name, module) for every ActivationPair in `model`; a module object that appears
    in several places is listed once, under its first name (as `named_modules` does)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ActivationPair)]


@contextlib.contextmanager
def exact_specs(model: nn.Module) -> Iterator[None]:
    """Temporarily give every pair the exact derivative of its own forward.

    Specs are built once per forward (name and parameters), so pairs sharing a forward share the
    exact spec, as they share their spec in a model built by one ActFactory. The original specs
    come back on exit, also when the body raises.
    """
    cache: dict[tuple, PairSpec] = {}
    originals: list[tuple[ActivationPair, PairSpec]] = []
    try:
        for _, module in pair_modules(model):
            spec = module.spec
            key = spec.forward.key()
            if key not in cache:
                cache[key] = make_pair(spec.forward.name, "exact", forward_params=dict(spec.forward.params), rng=spec.rng)
            originals.append((module, spec))
            module.spec = cache[key]
        yield
    finally:
        for module, spec in originals:
            module.spec = spec


# ---------------------------------------------------------------------------- state preservation


def _random_sources(model: nn.Module) -> list[RandomSource]:
    sources: dict[int, RandomSource] = {}
    for _, module in pair_modules(model):
        sources.setdefault(id(module.spec.rng), module.spec.rng)
    return list(sources.values())


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore on exit: module buffers, torch's global RNG and the pairs' RandomSources.

    A probe's forward in train mode updates BatchNorm running stats, dropout draws from the global
    RNG and stochastic rules draw from the pairs' generators; each would make a probed run diverge
    from an unprobed one. Generators a probe creates are removed again (they would be created, and
    seeded identically, on first use anyway).
    """
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    sources = [(rng, rng.get_state()) for rng in _random_sources(model)]
    cuda = sorted({t.device.index or 0 for t in [*model.parameters(), *model.buffers()] if t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        with torch.no_grad():
            for buf, saved in buffers:
                buf.copy_(saved)
        for rng, state in sources:
            rng.set_state(state)


# ---------------------------------------------------------------------------- gradients


def layer_gradients(model: nn.Module, loss_fn: LossFn, xb: Tensor, yb: Tensor) -> dict[str, Tensor]:
    """{parameter name: flattened gradient} from one forward/backward of `loss_fn(model(xb), yb)`.

    Only parameters that require grad and receive one appear. The caller's state is untouched:
    existing .grad tensors are put back (the same tensor objects), and buffers, the global RNG and
    the pairs' RandomSources are restored (see `preserved_state`). The model's train/eval mode is used
    as it is.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    saved = [p.grad for _, p in params]
    try:
        for _, p in params:
            p.grad = None
        with preserved_state(model):
            loss = loss_fn(model(xb), yb)
            loss.backward()
        return {n: p.grad.detach().flatten().clone() for n, p in params if p.grad is not None}
    finally:
        for (_, p), grad in zip(params, saved):
            p.grad = grad


def _compare(pair: Tensor, exact: Tensor, zero_note: str) -> dict:
    """Cosine similarity and norm ratio of two flat gradients, in float64, without dividing by 0."""
    a, b = pair.double(), exact.double()
    pair_norm = float(torch.linalg.vector_norm(a))
    exact_norm = float(torch.linalg.vector_norm(b))
    out = {"cosine": None, "norm_ratio": None, "pair_norm": pair_norm, "exact_norm": exact_norm, "note": None}
    if exact_norm == 0.0:
        out["note"] = zero_note
    elif pair_norm == 0.0:
        # The direction is undefined, but the norm ratio is a well-defined 0.
        out["norm_ratio"] = 0.0
        out["note"] = "pair gradient is zero"
    else:
        cosine = float(torch.dot(a, b)) / (pair_norm * exact_norm)
        out["cosine"] = max(-1.0, min(1.0, cosine))
        out["norm_ratio"] = pair_norm / exact_norm
    return out


def parameters_through_pairs(model: nn.Module, xb: Tensor) -> set[str]:
    """Names of the parameters whose gradient passes through at least one pair's backward.

    One forward on `xb` (state restored, see `preserved_state`) with a hook on every pair; from
    each pair output's autograd node the graph is walked towards the inputs, and every parameter
    reached (its AccumulateGrad node) is upstream of that pair, so its gradient is multiplied by
    the pair's g somewhere. Parameters only downstream of the pairs (an MLP's output layer) are not
    in the set: their gradient is the same under every rule. Exact for any architecture (residual
    branches, shared modules), because it reads the graph autograd will use.
    """
    outputs: list[Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _a, out: outputs.append(out)) for _, m in pair_modules(model)]
    try:
        with preserved_state(model), torch.enable_grad():
            model(xb)
    finally:
        for h in handles:
            h.remove()
    names = {id(p): n for n, p in model.named_parameters()}
    found: set[str] = set()
    seen: set[int] = set()
    stack = [out.grad_fn for out in outputs if isinstance(out, Tensor) and out.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf tensor
        if variable is not None and id(variable) in names:
            found.add(names[id(variable)])
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def _lowest_layer_cosine(named, pair_parts, exact_parts, through: set[str], zero_note: str) -> dict:
    """The lowest cosine over the layers (modules) whose parameters pass through a pair."""
    modules: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(named):
        if name in through:
            modules.setdefault(name.rpartition(".")[0] or name, []).append(i)
    cosines = {
        module: _compare(torch.cat([pair_parts[i] for i in idx]), torch.cat([exact_parts[i] for i in idx]), zero_note)["cosine"]
        for module, idx in modules.items()
    }
    defined = {m: c for m, c in cosines.items() if c is not None}
    if not defined:
        return {"cosine": None, "layer": None, "layers": cosines, "note": zero_note if cosines else "no parameter passes through a pair"}
    layer = min(defined, key=defined.get)
    return {"cosine": defined[layer], "layer": layer, "layers": cosines, "note": None}


def gradient_fidelity(model: nn.Module, loss_fn: LossFn, xb: Tensor, yb: Tensor) -> dict:
    """Compare the pairs' gradient with the exact-derivative gradient of the same forwards.

    Both gradients are taken at the same parameters on the same probe batch (with the same dropout
    masks); only the backward rules differ. Returns::

        {"layers": {param name: entry}, "overall": entry, "pairs": [...], "exact_pairs": [...]}
        entry = {"cosine", "norm_ratio", "pair_norm", "exact_norm", "note"}

    "overall" concatenates all parameters, including those no pair touches (an MLP's output layer
    gets the same gradient under every rule, so "overall" overstates fidelity). "through_pairs"
    concatenates only the parameters whose gradient passes through at least one pair's backward
    (`parameters_through_pairs`): the figure to headline. "layer_min" is the lowest cosine among
    those layers ({"cosine", "layer", "layers": {module name: cosine}}; one layer = the parameters
    of one module, e.g. weight and bias), and "through_pairs_params" names the parameters. norm_ratio = ||g_pair|| / ||g_exact||. Where the exact
    gradient is zero (flat forwards such as step and sign: f' = 0, so every parameter before the
    last activation gets a zero exact gradient) cosine and norm_ratio are None and "note" says so.
    Where only the pair gradient is zero, cosine is None, norm_ratio 0.0 and the note says so.
    A parameter that gets a gradient in only one of the passes counts as zero in the other.

    Stochastic rules draw from the pair's RandomSource, whose state is restored afterwards, so the
    probe does not change the training run (see `layer_gradients`).
    """
    pairs = pair_modules(model)
    g_pair = layer_gradients(model, loss_fn, xb, yb)
    with exact_specs(model):
        exact_described = sorted({m.spec.describe() for _, m in pairs})
        g_exact = layer_gradients(model, loss_fn, xb, yb)
    flat = any(m.spec.forward.flat for _, m in pairs)  # a property of the forward's definition
    zero_note = "exact gradient is zero (flat forward)" if flat else "exact gradient is zero"

    named = [(n, p) for n, p in model.named_parameters() if n in g_pair or n in g_exact]
    layers, pair_parts, exact_parts = {}, [], []
    for name, p in named:
        a = g_pair.get(name, torch.zeros(p.numel(), device=p.device, dtype=p.dtype))
        b = g_exact.get(name, torch.zeros(p.numel(), device=p.device, dtype=p.dtype))
        layers[name] = _compare(a, b, zero_note)
        pair_parts.append(a.double())
        exact_parts.append(b.double())
    empty = torch.zeros(0, dtype=torch.float64)
    overall = _compare(
        torch.cat(pair_parts) if pair_parts else empty, torch.cat(exact_parts) if exact_parts else empty, zero_note
    )
    through = parameters_through_pairs(model, xb)
    through_pairs = _compare(
        torch.cat([pair_parts[i] for i, (n, _) in enumerate(named) if n in through]) if through else empty,
        torch.cat([exact_parts[i] for i, (n, _) in enumerate(named) if n in through]) if through else empty,
        zero_note,
    )
    return {
        "layers": layers,
        "overall": overall,
        "through_pairs": through_pairs,
        "through_pairs_params": [n for n, _ in named if n in through],
        "layer_min": _lowest_layer_cosine(named, pair_parts, exact_parts, through, zero_note),
        "pairs": sorted({m.spec.describe() for _, m in pairs}),
        "exact_pairs": exact_described,
    }


def gradient_norms(model: nn.Module) -> dict[str, float]:
    """{parameter name: L2 norm of its current .grad}; parameters without a gradient are skipped."""
    return {
        name: float(torch.linalg.vector_norm(p.grad.detach()))
        for name, p in model.named_parameters()
        if p.grad is not None
    }


# ---------------------------------------------------------------------------- activations


class _UnitTally:
    """Zero counts and per-unit 'ever non-zero' masks of one pair module, over all its calls."""

    def __init__(self, forward: BoundForward):
        self.forward = forward
        self.zeros = 0
        self.elements = 0
        self.alive: dict[int, Tensor] = {}  # unit count -> bool mask (a module may see two widths)
        self.unit_dim: int | None = None

    def add(self, y: Tensor, unit_dim: int) -> None:
        y = y.detach()
        self.zeros += int((y == 0).sum())
        self.elements += y.numel()
        nonzero = y != 0
        if y.dim() < 2:  # unbatched: a single sample whose elements are the units
            alive = nonzero.reshape(-1)
        else:
            alive = nonzero.movedim(unit_dim, 0).reshape(y.shape[unit_dim], -1).any(dim=1)
        self.unit_dim = unit_dim if y.dim() >= 2 else None
        n = alive.numel()
        self.alive[n] = self.alive[n] | alive if n in self.alive else alive

    def result(self) -> dict:
        units = sum(m.numel() for m in self.alive.values())
        dead = sum(int((~m).sum()) for m in self.alive.values())
        return {
            "forward": self.forward.name,
            "relu_like": self.forward.relu_like,
            "sparsity": self.zeros / self.elements if self.elements else None,
            "dead_fraction": dead / units if units else None,
            "units": units,
            "dead_units": dead,
            "elements": self.elements,
            "zeros": self.zeros,
            "unit_dim": self.unit_dim,
        }


def activation_stats(model: nn.Module, xb: Tensor, unit_dim: int | str = "auto") -> dict:
    """Sparsity and dead units of every pair's output during one no-grad forward on `xb`.

    Per pair module: "sparsity" = fraction of outputs exactly 0; "dead_fraction" = fraction of
    units that are 0 for every sample of the batch (units: features of (N, F), channels of
    (N, C, ...)). "relu_like" marks forwards that are exactly zero on a half-line (the forward's property),
    where both numbers mean something; they are computed for every pair anyway.

    `unit_dim="auto"` takes dim 1, except that a rank >= 3 output of a pair fed directly by an
    nn.Linear (a transformer MLP on (N, L, D)) uses the last dim; pass an int to force a dim.

    Returns {"modules": {name: {"forward", "relu_like", "sparsity", "dead_fraction", "units",
    "dead_units", "elements", "zeros", "unit_dim"}}, "mean": {"sparsity", "dead_fraction",
    "modules"}}. "mean" pools the relu-like modules (zeros / elements and dead units / units over
    all of them, i.e. weighted by size); its values are None where there are none. The model's
    buffers and RNGs are restored afterwards (see `preserved_state`).
    """
    tallies: dict[str, _UnitTally] = {}
    last_linear: list[Tensor | None] = [None]
    handles = []

    def note_linear(module, args, output):
        last_linear[0] = output

    def make_hook(name: str):
        def hook(module, args, output):
            dim = unit_dim
            if dim == "auto":
                dim = -1 if output.dim() >= 3 and args and args[0] is last_linear[0] else 1
            tallies.setdefault(name, _UnitTally(module.spec.forward)).add(output, int(dim))

        return hook

    try:
        for name, module in pair_modules(model):
            handles.append(module.register_forward_hook(make_hook(name)))
        if unit_dim == "auto":
            for module in model.modules():
                if isinstance(module, nn.Linear):
                    handles.append(module.register_forward_hook(note_linear))
        with preserved_state(model), torch.no_grad():
            model(xb)
    finally:
        for h in handles:
            h.remove()
        last_linear[0] = None

    modules = {name: tally.result() for name, tally in tallies.items()}
    relu_like = [r for r in modules.values() if r["relu_like"]]
    elements = sum(r["elements"] for r in relu_like)
    units = sum(r["units"] for r in relu_like)
    mean = {
        "sparsity": sum(r["zeros"] for r in relu_like) / elements if elements else None,
        "dead_fraction": sum(r["dead_units"] for r in relu_like) / units if units else None,
        "modules": len(relu_like),
    }
    return {"modules": modules, "mean": mean}


__all__ = [
    "activation_stats", "exact_specs", "gradient_fidelity",
    "gradient_norms", "layer_gradients", "pair_modules", "parameters_through_pairs",
]
