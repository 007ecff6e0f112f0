"""Run pruning and clustering under tf.distribute.MirroredStrategy on two logical CPUs.

Logical devices must be configured before TensorFlow starts, so tests/test_distributed.py
runs this file in a fresh process; it prints one JSON object with what it measured.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import warnings  # noqa: E402

import edgeopt  # noqa: E402

warnings.simplefilter("ignore")
from edgeopt.models import digits_cnn  # noqa: E402


def main() -> None:
    data = edgeopt.load_digits_splits()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": strategy.num_replicas_in_sync}
    for flavour in ("keras3", "tf_keras"):
        with strategy.scope():
            model = digits_cnn(flavour=flavour, width=8)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(data.x_train, data.y_train, epochs=2, batch_size=64, verbose=0,
                            callbacks=[edgeopt.Pruning(edgeopt.PolynomialDecay(0.0, 0.7, 0, 20), frequency=5)])
        out[f"{flavour}_pruned_sparsity"] = edgeopt.sparsity_report(model).sparsity
        out[f"{flavour}_logged_sparsity"] = history.history["sparsity"][-1]
        with strategy.scope():
            clustered = edgeopt.cluster_weights(model, clusters=8, preserve_sparsity=True)
            clustered.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        clustered.fit(data.x_train, data.y_train, epochs=1, batch_size=64, verbose=0)
        final = edgeopt.strip_clustering(clustered)
        kernel = final.get_layer("dense1").get_weights()[0]
        out[f"{flavour}_cluster_values"] = int(len(np.unique(kernel)))
        out[f"{flavour}_cluster_sparsity"] = float(np.mean(kernel == 0))
        with strategy.scope():
            student = digits_cnn(flavour=flavour, width=4, softmax=False)
            distiller = edgeopt.Distiller(student=student, teacher=model, temperature=2.0, alpha=0.5)
            distiller.compile(optimizer="adam", metrics=["accuracy"])
        history = distiller.fit(data.x_train, data.y_train, epochs=2, batch_size=64, verbose=0)
        out[f"{flavour}_distill_loss"] = [float(v) for v in history.history["loss"]]
    with strategy.scope():
        qat = edgeopt.quantize_aware(digits_cnn(width=8))
        qat.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = qat.fit(data.x_train, data.y_train, epochs=2, batch_size=64, verbose=0)
    out["keras3_qat_loss"] = [float(v) for v in history.history["loss"]]
    out["keras3_qat_range"] = float(qat.get_layer("relu1_quant").range.numpy()[1])
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
