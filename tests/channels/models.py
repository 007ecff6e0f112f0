"""Tiny models, one per channel-dependency pattern, and the zeroed-channel reference.

Every builder takes the Keras module (`keras` or `tf_keras`) and returns a model with
random, non-trivial weights (BatchNorm statistics included), seeded.
"""

from __future__ import annotations

import numpy as np

from edgeopt._keras import flavour_of, keras_module


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if i != len(weights) - 1
                               else rng.uniform(0.5, 2.0, w.shape).astype("float32") for i, w in enumerate(weights)])
        elif weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in weights])
    return model


def _image(k):
    return k.Input((8, 8, 3), name="image")


def _bn_relu(k, x, bn: str, relu: str, max_value=None):
    """BatchNormalization then ReLU (capped at `max_value`), the usual tail of a convolution."""
    return k.layers.ReLU(max_value, name=relu)(k.layers.BatchNormalization(name=bn)(x))


def _classify(k, inputs, x, name: str, pool="GlobalAveragePooling2D"):
    """Pooling (unless `pool` is None), a 4-way Dense `logits`, and the model."""
    if pool:
        x = getattr(k.layers, pool)(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(4, name="logits")(x), name=name)


def conv_chain(k):
    inputs = _image(k)
    x = k.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = _bn_relu(k, x, "bn1", "relu1")
    x = k.layers.Conv2D(8, 3, padding="same", use_bias=False, name="c2")(x)
    x = k.layers.BatchNormalization(name="bn2")(x)
    x = k.layers.Activation("relu", name="act2")(x)
    x = k.layers.MaxPooling2D(2, name="pool")(x)
    return _classify(k, inputs, x, "conv_chain")


def residual_add(k):
    inputs = _image(k)
    x = k.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = _bn_relu(k, x, "stem_bn", "stem_relu")
    y = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="expand")(x)
    y = k.layers.Conv2D(8, 1, name="project")(y)
    y = k.layers.BatchNormalization(name="project_bn")(y)
    x = k.layers.Add(name="add")([x, y])
    x = k.layers.Conv2D(6, 1, activation="relu", name="head")(x)
    return _classify(k, inputs, x, "residual_add")


def multiply(k):
    inputs = _image(k)
    a = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="value")(inputs)
    b = k.layers.Conv2D(8, 3, padding="same", activation="tanh", name="gate")(inputs)
    x = k.layers.Multiply(name="mul")([a, b])
    x = k.layers.Conv2D(6, 1, activation="relu", name="head")(x)
    return _classify(k, inputs, x, "multiply")


def concatenate(k):
    inputs = _image(k)
    a = k.layers.Conv2D(6, 3, padding="same", activation="relu", name="left")(inputs)
    b = k.layers.Conv2D(4, 1, activation="relu", name="right")(inputs)
    x = k.layers.Concatenate(name="cat")([a, b])
    x = k.layers.Conv2D(8, 1, activation="relu", name="mix")(x)
    return _classify(k, inputs, x, "concatenate")


def depthwise(k):
    inputs = _image(k)
    x = k.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = _bn_relu(k, x, "stem_bn", "stem_relu", 6.0)
    x = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = _bn_relu(k, x, "dw_bn", "dw_relu", 6.0)
    x = k.layers.Conv2D(8, 1, activation="relu", name="pw")(x)
    return _classify(k, inputs, x, "depthwise")


def separable(k):
    inputs = _image(k)
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    x = k.layers.SeparableConv2D(10, 3, padding="same", depth_multiplier=2, name="sep1")(x)
    x = _bn_relu(k, x, "sep1_bn", "sep1_relu")
    x = k.layers.SeparableConv2D(6, 3, padding="same", activation="relu", name="sep2")(x)
    return _classify(k, inputs, x, "separable")


def squeeze_excite(k):
    inputs = _image(k)
    x = k.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = _bn_relu(k, x, "stem_bn", "stem_relu")
    s = k.layers.GlobalAveragePooling2D(name="se_pool")(x)
    s = k.layers.Dense(4, activation="relu", name="se_reduce")(s)
    s = k.layers.Dense(8, activation="sigmoid", name="se_expand")(s)
    s = k.layers.Reshape((1, 1, 8), name="se_reshape")(s)
    x = k.layers.Multiply(name="se_mul")([x, s])
    x = k.layers.Conv2D(6, 1, activation="relu", name="head")(x)
    return _classify(k, inputs, x, "squeeze_excite")


def flatten_dense(k):
    inputs = _image(k)
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = k.layers.MaxPooling2D(2, name="pool")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(16, activation="relu", name="fc")(x)
    return _classify(k, inputs, x, "flatten_dense", pool=None)


def pooled_dense(k):
    inputs = _image(k)
    x = k.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = _bn_relu(k, x, "bn", "relu")
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    x = k.layers.Dense(16, activation="relu", name="fc")(x)
    x = k.layers.Dropout(0.3, name="drop")(x)
    return k.Model(inputs, k.layers.Dense(4, name="logits")(x), name="pooled_dense")


def conv1d(k):
    inputs = k.Input((16, 3), name="signal")
    x = k.layers.Conv1D(8, 3, padding="same", name="c1")(inputs)
    x = _bn_relu(k, x, "bn1", "relu1")
    x = k.layers.MaxPooling1D(2, name="pool")(x)
    x = k.layers.Conv1D(8, 3, activation="relu", name="c2")(x)
    return _classify(k, inputs, x, "conv1d", pool="GlobalAveragePooling1D")


def sequential(k):
    return k.Sequential([k.Input((8, 8, 3)), k.layers.Conv2D(8, 3, activation="relu", name="c1"),
                         k.layers.BatchNormalization(name="bn1"), k.layers.Conv2D(8, 3, activation="relu", name="c2"),
                         k.layers.Flatten(name="flatten"), k.layers.Dense(12, activation="relu", name="fc"),
                         k.layers.Dense(4, name="logits")], name="sequential")


PATTERNS = {f.__name__: f for f in (conv_chain, residual_add, multiply, concatenate, depthwise, separable,
                                    squeeze_excite, flatten_dense, pooled_dense, conv1d, sequential)}


def build(pattern: str, flavour: str, seed: int = 0):
    k = keras_module(flavour)
    k.utils.set_random_seed(seed)
    return _randomize(PATTERNS[pattern](k), seed)


def sample(model, n=16, seed=1):
    shape = tuple(model.inputs[0].shape)[1:]
    return np.random.default_rng(seed).normal(0, 1, (n, *shape)).astype("float32")


def _copy(model):
    """A copy with the same weights; the tests' own Lambdas and custom activations are carried over."""
    k = keras_module(flavour_of(model))

    def clone(layer):
        config = layer.get_config()
        if isinstance(config.get("activation"), dict):
            config["activation"] = layer.activation
        return layer.__class__.from_config(config)

    if flavour_of(model) == "keras3":
        from keras.src.saving.serialization_lib import SafeModeScope

        with SafeModeScope(False):
            copy = k.models.clone_model(model, clone_function=clone)
    else:
        copy = k.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def zeroed(model, plan):
    """A copy of `model` whose removed channels are exactly 0 wherever they appear.

    Producers get their kernel column and bias zeroed, BatchNorm layers in the group
    their gamma and beta (so BN(x) = 0), depthwise layers their kernel and bias; ReLU
    and friends keep 0 at 0. Consumers then see zeros where the pruned model has no
    channel at all, so both must compute the same outputs.
    """
    copy = _copy(model)
    for group in plan.groups:
        removed = np.setdiff1d(np.arange(group.channels), group.kept)
        if not removed.size:
            continue
        layers = {layer.name: layer for layer in copy.layers}
        for name in [n for n in group.layers if n in layers]:  # Keras 3 ops are not layers
            layer = layers[name]
            weights = layer.get_weights()
            kind = type(layer).__name__
            if kind == "BatchNormalization":
                scale = layer.get_config().get("scale", True)
                for i in ([0, 1] if scale else [0]):
                    weights[i][removed] = 0
            elif kind.startswith("Depthwise"):
                weights[0][..., removed, :] = 0
                for b in weights[1:]:
                    b[removed] = 0
            elif name in group.producers:
                kernel = 1 if kind.startswith("Separable") else 0
                weights[kernel][..., removed] = 0
                for b in weights[kernel + 1:]:
                    b[removed] = 0
            layer.set_weights(weights)
    return copy
