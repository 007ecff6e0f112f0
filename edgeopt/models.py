"""Small reference architectures for examples, recipes and tests (random init, no downloads)."""

from __future__ import annotations

from edgeopt._keras import Flavour, keras_module


def digits_cnn(*, flavour: str = "keras3", width: int = 16, num_classes: int = 10, softmax: bool = True):
    """A small CNN for 8×8×1 digits: Conv-BN-ReLU, max-pool, Conv-ReLU, Dense.

    Args:
        flavour: `"keras3"` or `"tf_keras"`. Defaults to `"keras3"`.
        width: filters of the first convolution (the second has twice as many).
            Defaults to `16`.
        num_classes: output classes. Defaults to `10`.
        softmax: end in a softmax (probabilities) rather than logits. Defaults to `True`.
    """
    k = keras_module(Flavour(flavour))
    layers = k.layers
    inputs = k.Input((8, 8, 1), name="image")
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense1")(x)
    outputs = layers.Dense(num_classes, activation="softmax" if softmax else None, name="logits")(x)
    return k.Model(inputs, outputs, name="digits_cnn")
