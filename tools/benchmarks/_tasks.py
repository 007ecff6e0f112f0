"""Harder offline tasks for the benchmarks, generated here (no dataset downloads), and
small CNNs for them, in either Keras.

Digits (scikit-learn's 8x8, 97-99 % for every method) is too easy to tell compression
methods apart. These two are not:

* `noisy_digits`: scikit-learn's digits placed at a random offset on a 12x12 canvas,
  with Gaussian noise, random contrast and a random occluding square. The base digits
  are split before augmenting, so no test image shares a digit with a training image.
* `chirps`: 1-D signals of 64 samples, 8 classes; each class is a pair of close
  frequencies with a class-specific phase relation, at a random time shift and
  amplitude, under Gaussian noise; 10 % of the labels (all splits) are replaced by a
  random other class, so the accuracy ceiling is 0.90 (no model can predict the
  flipped labels).

    from tools.benchmarks._tasks import TASKS, Task
    task = TASKS["noisy_digits"](seed=0)      # x_train, y_train, x_val, ..., classes, ceiling
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Task:
    """Train / validation / test arrays (float32 inputs, int64 labels) of one task."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    ceiling: float  # the best accuracy any model can reach (1.0 when not known to be lower)


def _augment_digits(images: np.ndarray, labels: np.ndarray, copies: int, rng: np.random.Generator):
    n = len(images) * copies
    out = np.zeros((n, 12, 12), np.float32)
    idx = np.repeat(np.arange(len(images)), copies)
    dy, dx = rng.integers(0, 5, n), rng.integers(0, 5, n)
    for i, (k, a, b) in enumerate(zip(idx, dy, dx)):
        out[i, a:a + 8, b:b + 8] = images[k]
    out *= rng.uniform(0.6, 1.0, (n, 1, 1)).astype(np.float32)  # contrast
    oy, ox, size = rng.integers(0, 10, n), rng.integers(0, 10, n), rng.integers(2, 5, n)
    for i in range(n):  # an occluding square of noise-grey
        out[i, oy[i]:oy[i] + size[i], ox[i]:ox[i] + size[i]] = 0.5
    out += rng.normal(0.0, 0.15, out.shape).astype(np.float32)
    return out[..., None], labels[idx].astype(np.int64)


def noisy_digits(seed: int = 0, *, copies: int = 4) -> Task:
    """Digits on a 12x12 canvas with shifts, contrast, occlusion and noise.

    Args:
        seed: the base-digit split and the augmentation draws. Defaults to `0`.
        copies: augmented copies of each base digit. Defaults to `4`.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = (digits.images / 16.0).astype(np.float32), digits.target
    rng = np.random.default_rng(1000 + seed)
    order = rng.permutation(len(images))
    n_test, n_val = 500, 200
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    arrays = {k: _augment_digits(images[v], labels[v], copies, rng) for k, v in parts.items()}
    return Task("noisy_digits", *arrays["train"], *arrays["val"], *arrays["test"], classes=10, ceiling=1.0)


def _signals(n: int, classes: int, rng: np.random.Generator, flip: float):
    t = np.arange(64, dtype=np.float32) / 64.0
    y = rng.integers(0, classes, n)
    f1 = 3.0 + 0.5 * y  # close frequencies (cycles per window)
    f2 = f1 + 1.5 + 0.25 * (y % 3)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    relation = (np.pi / 2) * (y % 2)  # odd classes: the second tone is shifted a quarter turn
    shift = rng.uniform(-0.1, 0.1, (n, 1))
    amplitude = rng.uniform(0.5, 1.5, (n, 1))
    tt = t[None, :] + shift
    x = amplitude * (np.sin(2 * np.pi * f1[:, None] * tt + phase)
                     + 0.7 * np.sin(2 * np.pi * f2[:, None] * tt + 2 * phase + relation[:, None]))
    x += rng.normal(0.0, 1.0, x.shape)
    flipped = rng.random(n) < flip
    y = np.where(flipped, (y + rng.integers(1, classes, n)) % classes, y)
    return x.astype(np.float32)[..., None], y.astype(np.int64)


def chirps(seed: int = 0, *, n_train: int = 3000, classes: int = 8, flip: float = 0.1) -> Task:
    """1-D two-tone signals in noise, 8 classes, 10 % label noise (ceiling 0.90).

    Args:
        seed: the draws. Defaults to `0`.
        n_train: training samples (validation 400, test 1,000). Defaults to `3000`.
        classes: number of classes. Defaults to `8`.
        flip: share of labels replaced by another class. Defaults to `0.1`.
    """
    rng = np.random.default_rng(2000 + seed)
    train, val, test = (_signals(n, classes, rng, flip) for n in (n_train, 400, 1000))
    return Task("chirps", *train, *val, *test, classes=classes, ceiling=1.0 - flip)


TASKS = {"noisy_digits": noisy_digits, "chirps": chirps}


def cnn(task: Task, *, flavour: str = "keras3", width: int = 16, dense: int = 64, name: str = "cnn"):
    """A small CNN with logits out: Conv-BN-ReLU, pool, Conv-ReLU, pool, Dense, Dense.

    Conv2D for images (`(H, W, C)` inputs), Conv1D for signals (`(T, C)` inputs).

    Args:
        task: sets the input shape and the number of classes.
        flavour: `"keras3"` or `"tf_keras"`. Defaults to `"keras3"`.
        width: filters of the first convolution (the second has twice as many).
            Defaults to `16`.
        dense: units of the hidden Dense layer. Defaults to `64`.
        name: the model's name. Defaults to `"cnn"`.
    """
    from edgeopt._keras import keras_module

    k = keras_module(flavour)
    layers = k.layers
    shape = task.x_train.shape[1:]
    two_d = len(shape) == 3
    conv, pool = (layers.Conv2D, layers.MaxPooling2D) if two_d else (layers.Conv1D, layers.MaxPooling1D)
    size = 3 if two_d else 5
    inputs = k.Input(shape, name="x")
    x = conv(width, size, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = pool(2, name="pool1")(x)
    x = conv(2 * width, size, padding="same", activation="relu", name="conv2")(x)
    x = pool(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense, activation="relu", name="dense1")(x)
    outputs = layers.Dense(task.classes, name="logits")(x)
    return k.Model(inputs, outputs, name=name)


def tiny_cnn(task: Task, *, flavour: str = "keras3"):
    """The tiny student: `cnn` with 4 filters and 16 hidden units (about 1/10 of the
    parameters of `cnn(task)`)."""
    return cnn(task, flavour=flavour, width=4, dense=16, name="tiny")
