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


def mobilenetv2(*, flavour: str = "keras3", input_shape=(96, 96, 3), alpha: float = 0.35, classes: int = 2):
    """MobileNetV2 with random weights (`weights=None`: nothing is downloaded).

    The defaults are the shape of MLPerf Tiny's visual wake words: 96×96×3, alpha 0.35,
    two classes.
    """
    k = keras_module(Flavour(flavour))
    return k.applications.MobileNetV2(input_shape=tuple(input_shape), alpha=alpha, weights=None, classes=classes)


def ds_cnn(*, flavour: str = "keras3", input_shape=(49, 10, 1), filters: int = 64, blocks: int = 4,
           classes: int = 12, softmax: bool = True):
    """DS-CNN keyword spotting (Zhang et al., "Hello Edge", 2017) on 49×10 MFCC frames.

    A 10×4 stride-2 convolution, then `blocks` depthwise-separable blocks (3×3 depthwise,
    1×1 pointwise, each with BatchNorm and ReLU), global average pooling, a Dense layer.
    The MLPerf Tiny keyword-spotting model is this with 64 filters and 4 blocks.
    """
    k = keras_module(Flavour(flavour))
    layers = k.layers
    inputs = k.Input(tuple(input_shape), name="mfcc")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", use_bias=False, name="conv0")(inputs)
    x = layers.BatchNormalization(name="bn0")(x)
    x = layers.ReLU(name="relu0")(x)
    for i in range(1, blocks + 1):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"pw{i}")(x)
        x = layers.BatchNormalization(name=f"pw{i}_bn")(x)
        x = layers.ReLU(name=f"pw{i}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, activation="softmax" if softmax else None, name="logits")(x)
    return k.Model(inputs, outputs, name="ds_cnn")
