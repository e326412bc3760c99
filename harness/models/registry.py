"""Model registry: name -> builder, plus the checks ``build_model`` runs before constructing.

Every builder has the keyword-only signature
``builder(*, input_shape, num_classes, act, <model params with defaults>)``.  The registry reads
the model params (and their defaults) from that signature, so a config can never name a parameter
the builder does not have, and the error for a typo lists the valid ones.

Data kinds use the vocabulary of ``harness.data`` (``DataSplits.kind``):

* ``"vector"``   ``(F,)``               flat features with no order (sklearn digits, spirals)
* ``"sequence"`` ``(L,)`` or ``(L, F)`` a 1-D signal (MNIST-1D), or L steps of F features
* ``"image"``    ``(C, H, W)``          channels-first image (MNIST, CIFAR)

Pass the dataset's ``kind`` to :func:`build_model` when it is known: a rank-1 shape alone cannot
tell a signal from a feature vector, so without it a rank-1 input is accepted by any model that
takes vectors or sequences.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from harness.errors import ConfigError, ParameterError, ParameterTypeError
from harness.registry import Registry
from harness.suggest import describe_unknown_keys

#: ``act(forward=None) -> nn.Module``: a fresh activation-pair module per call; in the harness this
#: is a ``harness.activations.ActFactory`` instance.
ActFn = Callable[..., nn.Module]

KINDS: tuple[str, ...] = ("vector", "sequence", "image")
_KINDS_BY_RANK = {1: ("vector", "sequence"), 2: ("sequence",), 3: ("image",)}
_KIND_LAYOUT = {"vector": "(F,)", "sequence": "(L,) or (L, F)", "image": "(C, H, W)"}
# Arguments every builder takes; everything else in its signature is a model param.
_COMMON_ARGS = ("input_shape", "num_classes", "act")


def _describe(kind: str) -> str:
    return f"{kind} {_KIND_LAYOUT[kind]}"


class ModelDataMismatch(ConfigError):
    """A model cannot consume the dataset's samples (wrong rank, too short, indivisible patches...).

    Raised by :func:`build_model` before any module is constructed, so a sweep fails at config time
    instead of mid-training.  The message names what the model expects and what the data provides.
    """

    @classmethod
    def for_model(
        cls, model: str, expects: str, input_shape: Sequence[int], kind: str | None = None,
        hint: str | None = None,
    ) -> ModelDataMismatch:
        """Build the standard message: model, what it expects, what the dataset provides, a hint."""
        shape = tuple(input_shape)
        if kind is None:
            kinds = _KINDS_BY_RANK.get(len(shape), ())
            kind = " or ".join(kinds) if kinds else None
        provides = f"input_shape {shape}" + (f" (kind {kind})" if kind else "")
        msg = f"model {model!r} expects {expects}, but the dataset provides {provides}"
        return cls(msg + (f"; {hint}" if hint else ""))


def data_kinds(input_shape: Sequence[int], kind: str | None = None) -> tuple[str, ...]:
    """The data kinds a per-sample shape can be: ``kind`` alone if given (checked against the
    shape's rank), else every kind of that rank (rank 1 is ``("vector", "sequence")``).
    """
    shape = tuple(input_shape)
    if len(shape) not in _KINDS_BY_RANK or any(int(d) < 1 for d in shape):
        raise ModelDataMismatch(
            f"input_shape {shape} is not a supported per-sample shape; expected "
            + ", ".join(_describe(k) for k in KINDS) + " with positive sizes"
        )
    possible = _KINDS_BY_RANK[len(shape)]
    if kind is None:
        return possible
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; valid kinds: {KINDS}")
    if kind not in possible:
        raise ModelDataMismatch(
            f"the dataset's kind {kind!r} needs the layout {_KIND_LAYOUT[kind]}, but its "
            f"input_shape is {shape} (rank {len(shape)}: {' or '.join(possible)})"
        )
    return (kind,)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder, the data kinds it accepts, and an optional shape check.

    Calling the entry calls the builder directly (no validation); use :func:`build_model`.
    """

    name: str
    builder: Callable[..., nn.Module]
    kinds: tuple[str, ...]
    check: Callable[..., None] | None = None

    @property
    def params(self) -> dict[str, Any]:
        """Model params and their defaults, read from the builder's signature."""
        sig = inspect.signature(self.builder)
        return {
            n: p.default
            for n, p in sig.parameters.items()
            if n not in _COMMON_ARGS and p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    @property
    def doc(self) -> str:
        """The builder's docstring (architecture and source)."""
        return inspect.getdoc(self.builder) or ""

    def __call__(self, **kwargs: Any) -> nn.Module:
        return self.builder(**kwargs)


#: name -> registered model (each entry is callable like its builder).
MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str, *, kinds: Sequence[str], check: Callable[..., None] | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder`` under ``name`` for the given data ``kinds``.

    ``check(input_shape, **params)`` (all params: defaults merged with the caller's) runs before
    the builder and raises :class:`ModelDataMismatch` for shapes of an accepted kind that still
    do not fit (e.g. a signal too short for three stride-2 convolutions), or ValueError for bad
    param values (reported as :class:`ParameterError`).
    """
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown data kinds {bad} for model {name!r}; valid kinds: {KINDS}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        sig = inspect.signature(builder)
        missing = [a for a in _COMMON_ARGS if a not in sig.parameters]
        if missing:
            raise TypeError(f"builder for {name!r} must accept keyword arguments {missing}")
        MODELS.add(name, ModelEntry(name, builder, tuple(kinds), check))
        return builder

    return decorator


def get_model_entry(name: str) -> ModelEntry:
    """Look a model up; an unknown name raises UnknownNameError with close matches and the full list."""
    return MODELS.get(name)


def _merge_params(entry: ModelEntry, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``; an unknown param is a ParameterTypeError naming the valid ones."""
    valid = entry.params
    unknown = [p for p in params if p not in valid]
    if unknown:
        raise ParameterTypeError(
            f"unknown parameter(s) for model {entry.name!r}: {describe_unknown_keys(unknown, valid)}. "
            f"Valid parameters: {', '.join(valid) or '(none)'}"
        )
    return {**valid, **params}


def check_model_data(
    name: str, *, input_shape: Sequence[int], kind: str | None = None, **params: Any
) -> None:
    """Validate model name, params and data shape (and ``kind``) without building anything.

    Raises :class:`UnknownNameError` (unknown model), :class:`ParameterError` (bad param value;
    :class:`ParameterTypeError` for unknown params) or :class:`ModelDataMismatch`, all
    ``ConfigError``.  Useful to pre-flight a whole sweep before any run starts.
    """
    entry = get_model_entry(name)
    merged = _merge_params(entry, params)
    shape = tuple(int(d) for d in input_shape)
    if not set(data_kinds(shape, kind)) & set(entry.kinds):
        expects = " or ".join(_describe(k) for k in entry.kinds) + " input"
        raise ModelDataMismatch.for_model(name, expects, shape, kind=kind)
    if entry.check is not None:
        try:
            entry.check(shape, **merged)
        except ConfigError:
            raise
        except ValueError as exc:  # a builder's own value check: a bad parameter of this model
            raise ParameterError(f"model {name!r}: {exc}") from exc


def build_model(
    name: str, *, input_shape: Sequence[int], num_classes: int, act: ActFn,
    kind: str | None = None, **params: Any,
) -> nn.Module:
    """Build registered model ``name`` for per-sample ``input_shape`` and ``num_classes`` outputs.

    Every activation slot of the model is a module from ``act()`` (``act("sigmoid")`` /
    ``act("tanh")`` for GRU gates).  ``params`` are the model's own hyper-parameters (see
    ``MODELS[name].params``).  ``kind`` is the dataset's data kind (``DataSplits.kind``), optional
    but needed to reject e.g. a 1-D CNN on a flat feature vector.  Name, params and shapes are
    validated before anything is constructed (:class:`ModelDataMismatch` for data that does not
    fit).  The model maps a batch ``(B, *input_shape)`` to logits ``(B, num_classes)``.
    """
    # torch.Size, lists and OmegaConf ListConfig all occur; builders get a plain int tuple.
    shape = tuple(int(d) for d in input_shape)
    check_model_data(name, input_shape=shape, kind=kind, **params)
    if int(num_classes) < 1:
        raise ParameterError(f"num_classes must be >= 1, got {num_classes}")
    if not callable(act):
        raise ParameterTypeError(f"act must be a callable act(forward=None) -> nn.Module, got {act!r}")
    try:
        return MODELS[name].builder(input_shape=shape, num_classes=int(num_classes), act=act, **params)
    except ConfigError:
        raise
    except ValueError as exc:  # the builders' own value checks (depth, width, channels, ...)
        raise ParameterError(f"model {name!r}: {exc}") from exc


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
