"""Sparse inference: float32 exports of pruned models try the converter's sparse
encoding, time it against dense in LiteRT, and keep it only when it is faster."""

from __future__ import annotations

import numpy as np
import pytest

import edgeopt
from edgeopt.convert import sparse
from edgeopt.convert.engines import convert_saved_model
from edgeopt.convert.precision import Precision


def _model(seed: int, zeros: float):
    """A small conv net whose kernels are `zeros` zero (magnitude-pruned by hand)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(32, 3, strides=2, padding="same"),
                              keras.layers.Conv2D(64, 1, activation="relu"), keras.layers.Conv2D(64, 1),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)], name=f"net{seed}")
    for layer in model.layers:
        if layer.get_weights():
            kernel, *rest = layer.get_weights()
            cut = np.quantile(np.abs(kernel), zeros) if zeros else -1
            layer.set_weights([np.where(np.abs(kernel) <= cut, 0, kernel), *rest])
    return model


@pytest.fixture(scope="module")
def samples():
    return np.random.default_rng(0).random((8, 16, 16, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, samples):
    out = {}
    for zeros in (0.0, 0.8):
        directory = tmp_path_factory.mktemp(f"z{int(zeros * 100)}")
        out[zeros] = (edgeopt.export_tflite(_model(0, zeros), ["float32", "int8"], output_dir=directory,
                                            calibration_data=samples, eval_data=samples), directory)
    return out


@pytest.mark.slow
def test_a_pruned_model_is_timed_both_ways_and_the_choice_is_recorded(exports):
    report, directory = exports[0.8]
    decision = report["float32"].settings["sparse_inference"]
    assert decision["zero_fraction"] == pytest.approx(0.8, abs=0.02)
    assert decision["dense_p50_ms"] > 0 and decision["sparse_p50_ms"] > 0 and decision["runs"] >= sparse.ROUNDS
    assert decision["max_abs_difference"] < sparse.MAX_ABS_DIFFERENCE
    assert decision["used"] == (decision["speedup"] >= sparse.MIN_SPEEDUP)
    ops = edgeopt.inspect_tflite(directory / "net0.float32.tflite").op_counts
    assert ("DENSIFY" in ops) == decision["used"], (ops, decision)
    assert report["float32"].validation["top1_agreement"] == 1.0
    assert report["int8"].status == "ok"  # made from the dense weights either way


@pytest.mark.slow
def test_a_dense_model_is_not_tried(exports):
    decision = exports[0.0][0]["float32"].settings["sparse_inference"]
    assert decision["used"] is False and "below" in decision["reason"] and "sparse_p50_ms" not in decision


@pytest.mark.slow
def test_a_sparse_file_with_other_outputs_is_refused(tmp_path, samples):
    """The sparse candidate is another model's (different weights): its outputs disagree,
    so the dense file is kept whatever the timing says."""
    dense_model, other = _model(0, 0.8), _model(1, 0.8)
    paths = []
    for model in (dense_model, other):
        path = tmp_path / model.name
        model.export(str(path), format="tf_saved_model", verbose=False)
        paths.append(str(path))
    dense, _ = convert_saved_model(paths[0], Precision.FLOAT32)
    wrong, _ = convert_saved_model(paths[1], Precision.FLOAT32, sparsity=True)
    kept, decision = sparse.choose_float32(dense, lambda: wrong, [samples[:1]])
    assert kept == dense and decision["used"] is False and "differ" in decision["reason"]
    assert sparse.zero_fraction(wrong) == 0.0 < sparse.zero_fraction(dense)  # stored sparse: no dense zeros
