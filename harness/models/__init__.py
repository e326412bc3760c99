"""Model zoo in which every activation slot is a configured activation pair.

>>> model = build_model("cnn1d", input_shape=(40,), num_classes=10, act=act)

``act(forward=None) -> nn.Module`` comes from :mod:`harness.activations`.  Registered models
(``MODELS``): mlp, cnn1d, lenet5, vgg, resnet18, gru, transformer, bnn.  See each builder's
docstring (``MODELS[name].doc``) for architecture and source.
"""

from harness.models.registry import (
    KINDS,
    MODELS,
    ActFn,
    ModelDataMismatch,
    ModelEntry,
    build_model,
    check_model_data,
    count_parameters,
    data_kinds,
    get_model_entry,
    register_model,
)

# Importing the model modules registers them (order = listing order of MODELS).
from harness.models import mlp, cnn1d, lenet5, vgg, resnet  # noqa: E402,F401,I001
from harness.models import gru, transformer, bnn  # noqa: E402,F401,I001
from harness.models import logistic  # noqa: E402,F401,I001
from harness.models.binary import BinaryLinear, binarize, clip_binary_weights_  # noqa: E402

__all__ = [
    "KINDS",
    "MODELS",
    "ActFn",
    "BinaryLinear",
    "ModelDataMismatch",
    "ModelEntry",
    "binarize",
    "build_model",
    "check_model_data",
    "clip_binary_weights_",
    "count_parameters",
    "data_kinds",
    "get_model_entry",
    "register_model",
]
