"""The conformance model zoo: architectures people ship, built small and fresh.

Every builder takes the Keras module (`keras` or `tf_keras`) so each architecture has a
tf_keras twin for free. Inputs are as small as each architecture allows (32x32 images
for keras.applications, `weights=None`, 10 classes), so the whole matrix trains one step
per cell in minutes on two cores.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgeopt._keras import keras_module

IMAGE = (32, 32, 3)
CLASSES = 10
SEQUENCE = (16, 8)  # time steps, features


def mobilenet_v2(k):
    return k.applications.MobileNetV2(input_shape=IMAGE, alpha=0.35, weights=None, classes=CLASSES)


def mobilenet_v3(k):
    return k.applications.MobileNetV3Small(input_shape=IMAGE, alpha=0.75, weights=None, classes=CLASSES)


# EfficientNet, ResNet and DenseNet come from keras.applications' own constructors (the
# code behind EfficientNetB0, ResNet50 and DenseNet121: the same blocks, preprocessing and
# heads) at a fraction of their depth and width: converting the full-size ones takes
# minutes per precision here, and depth adds no layer type.


def efficientnet(k):
    from keras.src.applications.efficientnet import EfficientNet

    return EfficientNet(0.5, 0.25, IMAGE[0], input_shape=IMAGE, weights=None, classes=CLASSES,
                        name="efficientnet_small")  # B0's seven stages, one block each, half width


def resnet(k):
    from keras.src.applications.resnet import ResNet, stack_residual_blocks_v1

    def stacks(x):  # ResNet50's four stages of bottleneck blocks, one block each, a quarter wide
        x = stack_residual_blocks_v1(x, 16, 1, stride1=1, name="conv2")
        for index, filters in enumerate((32, 64, 128), start=3):
            x = stack_residual_blocks_v1(x, filters, 1, name=f"conv{index}")
        return x

    return ResNet(stacks, False, True, input_shape=IMAGE, weights=None, classes=CLASSES, name="resnet_small")


def densenet(k):
    from keras.src.applications.densenet import DenseNet

    return DenseNet([2, 2, 2, 2], input_shape=IMAGE, weights=None, classes=CLASSES,
                    name="densenet_small")  # DenseNet121's four dense blocks, two layers each


def transformer(k):
    """One pre-norm transformer encoder block over a float sequence, then a classifier."""
    inputs = k.Input(SEQUENCE, name="features")
    x = k.layers.Dense(16, name="embed")(inputs)
    h = k.layers.LayerNormalization(name="ln1")(x)
    h = k.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attention")(h, h)
    x = k.layers.Add(name="res1")([x, h])
    h = k.layers.LayerNormalization(name="ln2")(x)
    h = k.layers.Dense(32, activation="gelu", name="ffn1")(h)
    h = k.layers.Dense(16, name="ffn2")(h)
    x = k.layers.Add(name="res2")([x, h])
    x = k.layers.GlobalAveragePooling1D(name="pool")(x)
    return k.Model(inputs, k.layers.Dense(CLASSES, name="logits")(x), name="transformer")


def lstm(k):
    return k.Sequential([k.Input(SEQUENCE), k.layers.LSTM(16, name="lstm"),
                         k.layers.Dense(CLASSES, name="logits")], name="lstm_net")


def gru(k):
    return k.Sequential([k.Input(SEQUENCE), k.layers.GRU(16, name="gru"),
                         k.layers.Dense(CLASSES, name="logits")], name="gru_net")


def conv1d(k):
    return k.Sequential([k.Input((32, 4)), k.layers.Conv1D(16, 3, activation="relu", name="conv1"),
                         k.layers.Conv1D(16, 3, activation="relu", name="conv2"),
                         k.layers.GlobalAveragePooling1D(), k.layers.Dense(CLASSES, name="logits")], name="conv1d_net")


def separable(k):
    return k.Sequential([k.Input(IMAGE), k.layers.SeparableConv2D(16, 3, activation="relu", name="sep1"),
                         k.layers.SeparableConv2D(32, 3, strides=2, activation="relu", name="sep2"),
                         k.layers.GlobalAveragePooling2D(), k.layers.Dense(CLASSES, name="logits")],
                        name="separable_net")


def unet(k):
    """A two-level U-Net: per-pixel logits over 3 classes."""
    inputs = k.Input(IMAGE)
    d1 = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="down1")(inputs)
    x = k.layers.MaxPooling2D(name="pool1")(d1)
    d2 = k.layers.Conv2D(16, 3, padding="same", activation="relu", name="down2")(x)
    x = k.layers.MaxPooling2D(name="pool2")(d2)
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu", name="bottom")(x)
    x = k.layers.Conv2DTranspose(16, 2, strides=2, name="up2")(x)
    x = k.layers.Concatenate(name="skip2")([x, d2])
    x = k.layers.Conv2D(16, 3, padding="same", activation="relu", name="dec2")(x)
    x = k.layers.UpSampling2D(name="up1")(x)
    x = k.layers.Concatenate(name="skip1")([x, d1])
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="dec1")(x)
    return k.Model(inputs, k.layers.Conv2D(3, 1, name="mask")(x), name="unet")


def multi_io(k):
    """An image and a vector in; class logits and a regression value out."""
    image = k.Input(IMAGE, name="image")
    meta = k.Input((8,), name="meta")
    x = k.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(image)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    m = k.layers.Dense(8, activation="relu", name="meta_dense")(meta)
    x = k.layers.Concatenate(name="join")([x, m])
    x = k.layers.Dense(16, activation="relu", name="trunk")(x)
    return k.Model([image, meta], [k.layers.Dense(CLASSES, name="label")(x), k.layers.Dense(1, name="score")(x)],
                   name="multi_io")


def _subclassed_class(k):
    class TinyNet(k.Model):
        """A subclassed model as people write them: layers in `__init__`, the graph in
        `call`, a constructor argument and no `get_config`."""

        def __init__(self, width, **kwargs):
            super().__init__(**kwargs)
            self.conv = k.layers.Conv2D(width, 3, strides=2, activation="relu", name="conv")
            self.depthwise = k.layers.DepthwiseConv2D(3, activation="relu", name="depthwise")
            self.pool = k.layers.GlobalAveragePooling2D(name="pool")
            self.dense = k.layers.Dense(32, activation="relu", name="dense")
            self.logits = k.layers.Dense(CLASSES, name="logits")

        def call(self, inputs):
            return self.logits(self.dense(self.pool(self.depthwise(self.conv(inputs)))))

    return TinyNet


def subclassed(k):
    model = _subclassed_class(k)(8, name="tiny_net")
    model(np.zeros((1, *IMAGE), np.float32))  # built
    return model


BUILDERS: dict[str, Callable[[Any], Any]] = {
    "mobilenet_v2": mobilenet_v2, "mobilenet_v3": mobilenet_v3, "efficientnet": efficientnet, "resnet": resnet,
    "densenet": densenet, "transformer": transformer, "lstm": lstm, "gru": gru, "conv1d": conv1d,
    "separable": separable, "unet": unet, "multi_io": multi_io, "subclassed": subclassed,
}

# tf_keras twins (where tfmot does clustering and QAT): every small model and a MobileNet.
TF_KERAS_TWINS = ("mobilenet_v2", "transformer", "lstm", "gru", "conv1d", "separable", "unet", "multi_io",
                  "subclassed")


def build(name: str, flavour: str = "keras3", seed: int = 0) -> Any:
    """A fresh, untrained `name` model of `flavour`, with seeded weights."""
    k = keras_module(flavour)
    k.utils.set_random_seed(seed)
    return BUILDERS[name](k)


def _shapes(tensors) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in (t.shape.as_list() if hasattr(t.shape, "as_list") else t.shape)[1:]) for t in tensors]


def input_shapes(model: Any) -> list[tuple[int, ...]]:
    if getattr(model, "inputs", None):
        return _shapes(model.inputs)
    return [IMAGE]  # the subclassed model


def output_shapes(model: Any) -> list[tuple[int, ...]]:
    if getattr(model, "outputs", None):
        return _shapes(model.outputs)
    return [(CLASSES,)]


def sample_inputs(model: Any, n: int = 8, seed: int = 0):
    """`n` random float inputs for `model`: an array, or a list for several inputs."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n, *shape)).astype("float32") for shape in input_shapes(model)]
    return xs[0] if len(xs) == 1 else xs


def sample_data(model: Any, n: int = 8, seed: int = 0):
    """`(x, y)` for one `fit`: class labels for every output wider than one (per pixel for
    the U-Net), float targets for one-wide outputs."""
    rng = np.random.default_rng(seed + 1)
    ys = []
    for shape in output_shapes(model):
        if shape[-1] > 1:
            ys.append(rng.integers(0, shape[-1], (n, *shape[:-1])).astype("int32"))
        else:
            ys.append(rng.standard_normal((n, *shape)).astype("float32"))
    return sample_inputs(model, n, seed), ys[0] if len(ys) == 1 else ys


def losses(model: Any):
    """A loss per output, matching `sample_data`'s targets (logits are not normalised)."""
    from edgeopt._keras import flavour_of

    k = keras_module(flavour_of(model))
    probabilities = _ends_in_softmax(model)
    chosen = [k.losses.SparseCategoricalCrossentropy(from_logits=not probabilities) if shape[-1] > 1 else "mse"
              for shape in output_shapes(model)]
    return chosen[0] if len(chosen) == 1 else chosen


def _ends_in_softmax(model: Any) -> bool:
    from edgeopt.distill.losses import ends_in_softmax

    return ends_in_softmax(model)
