"""The conformance matrix: every capability on every architecture of the zoo; each cell
works or names its limit. The cells run in `test_keras3.py` and `test_tf_keras.py`.

A cell is one (model, capability) pair. `EXPECTED` says what each cell does today:
`OK`, or `(ErrorClass, "part of the message")` for an `EdgeoptError` that names a real
limitation, or `Xfail("...")` for a cell that still raises something else (the fix is
on another branch; strict, so the fix shows up as a failure to update the table). No
cell may raise an exception that is not an `EdgeoptError`. README.md's "Supported
architectures" table is checked against `EXPECTED`.

Models are built once per module (`shared`) for the capabilities that return a new
model, and as the distillation teacher (the test checks that the shared model's weights
are left untouched, and the teacher is unfrozen again); pruning trains in place and the
student trains, so they get fresh models. Training is one or two eager steps on a few
random samples (see `EAGER`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from edgeopt import ConfigError, ConversionError, EdgeoptError
from edgeopt._layers import kernel_of, select_layers
from tests.conformance import zoo

CLUSTERS = 8
CAPABILITIES = ("export", "qat", "pruning", "clustering", "factorize", "distill")
KERAS3 = [(name, "keras3") for name in zoo.BUILDERS]
TF_KERAS = [(name, "tf_keras") for name in zoo.TF_KERAS_TWINS]
MODELS = KERAS3 + TF_KERAS
OK = "ok"
# One or two training steps: tracing the training graph would cost more than the steps
# (ten times more for a keras.applications model). Each technique's graph-mode `fit` is
# covered by its own tests; here the question is whether it takes the architecture.
EAGER = True


@dataclass(frozen=True)
class Partial:
    """An export cell where some precisions fail with a named converter/LiteRT limit and
    every other precision is written and validated: `{precision: part of its error}`."""

    failed: dict


@dataclass(frozen=True)
class Xfail:
    """A cell that raises a non-edgeopt exception today; fixed on another branch."""

    reason: str


SUBCLASSED = "only works for functional and Sequential models"
ONE_IN_ONE_OUT_EXPORT = "Only models with one input and one output are supported"
ONE_IN_ONE_OUT_DISTILL = "The Distiller takes models with one input and one output"
INT16X8_OP = "Quantization to 16x8-bit not yet supported for op: '{op}'"  # the converter's own limit
TENSOR_LIST = "TensorListReserve"  # LSTM/GRU loops the converter cannot lower (static shapes needed)


def _qat_layers(*names: str) -> tuple:
    return (ConfigError, f"QAT cannot quantize these layers: [{', '.join(names)}]")


def _defaults() -> dict:
    return {(name, flavour, capability): OK for name, flavour in MODELS for capability in CAPABILITIES}


EXPECTED: dict[tuple[str, str, str], object] = _defaults()
EXPECTED.update({
    # -- Keras 3 ------------------------------------------------------------------------
    ("mobilenet_v3", "keras3", "export"): Partial({"int16x8": INT16X8_OP.format(op="HARD_SWISH")}),
    ("transformer", "keras3", "export"): Partial({"int16x8": INT16X8_OP.format(op="NEG")}),
    ("lstm", "keras3", "export"): (ConversionError, TENSOR_LIST),
    ("lstm", "keras3", "qat"): _qat_layers("('lstm', 'LSTM')"),
    ("gru", "keras3", "export"): (ConversionError, TENSOR_LIST),
    ("gru", "keras3", "qat"): _qat_layers("('gru', 'GRU')"),
    ("multi_io", "keras3", "distill"): (ConfigError, ONE_IN_ONE_OUT_DISTILL),
    ("subclassed", "keras3", "qat"): (ConfigError, "needs a functional or a built Sequential model"),
    ("subclassed", "keras3", "clustering"): (ConfigError, "Keras cannot rebuild it from its config"),
    ("subclassed", "keras3", "factorize"): (ConfigError, SUBCLASSED),
    # -- tf_keras -----------------------------------------------------------------------
    ("transformer", "tf_keras", "qat"): (ConfigError, "tfmot cannot quantize these layers: [('ln1', "
                                                      "'LayerNormalization')"),
    ("lstm", "tf_keras", "export"): (ConversionError, TENSOR_LIST),
    ("lstm", "tf_keras", "qat"): (ConfigError, "tfmot cannot quantize these layers: [('lstm', 'LSTM')]"),
    ("gru", "tf_keras", "export"): (ConversionError, TENSOR_LIST),
    ("gru", "tf_keras", "qat"): (ConfigError, "tfmot cannot quantize these layers: [('gru', 'GRU')]"),
    ("conv1d", "tf_keras", "qat"): (ConfigError, "tfmot cannot quantize these layers: [('conv1', 'Conv1D')"),
    ("multi_io", "tf_keras", "distill"): (ConfigError, ONE_IN_ONE_OUT_DISTILL),
    ("subclassed", "tf_keras", "qat"): (ConfigError, "tfmot can only quantize Sequential or functional"),
    ("subclassed", "tf_keras", "clustering"): (ConfigError, SUBCLASSED),
    ("subclassed", "tf_keras", "factorize"): (ConfigError, SUBCLASSED),
})


# -- running one cell -----------------------------------------------------------------------


def _fit(model, n: int = 4, callbacks=()):
    x, y = zoo.sample_data(model, n)
    model.compile(optimizer="sgd", loss=zoo.losses(model), run_eagerly=EAGER)
    return model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=list(callbacks))


def _outputs(model, x) -> list[np.ndarray]:
    out = model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _fingerprint(model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


PRECISIONS = ("float32", "float16", "dynamic", "int8", "int16x8", "int4")


def run_export(name, flavour, shared, tmp_path, failed: dict | None = None):
    """Every precision; `failed` names those that must fail, each with part of its error."""
    model = shared(name, flavour)
    failed = failed or {}
    try:
        report = edgeopt.export_tflite(model, PRECISIONS, output_dir=tmp_path,
                                       calibration_data=zoo.sample_inputs(model, 8))
    except ConversionError as exc:
        if exc.report is None or not failed:
            raise
        report = exc.report
    for precision in PRECISIONS:
        entry = report[precision]
        if precision in failed:
            assert entry.status == "failed" and failed[precision] in entry.error, entry
            assert "\n" not in entry.error and not list(tmp_path.glob(f"*.{precision}.tflite")), entry
        else:
            assert entry.status == "ok" and Path(entry.path).stat().st_size > 0, entry
    assert report["int8"].input_dtype == "int8", report["int8"]


def run_qat(name, flavour, shared, tmp_path):
    model = shared(name, flavour)
    qat = edgeopt.quantize_aware(model)
    assert qat is not model
    x = zoo.sample_inputs(model, 2)
    assert [o.shape for o in _outputs(qat, x)] == [o.shape for o in _outputs(model, x)]
    # QAT's point: a full-integer model from the learned ranges, no calibration data needed
    report = edgeopt.export_tflite(qat, ["int8"], output_dir=tmp_path)
    assert report["int8"].status == "ok" and report["int8"].input_dtype == "int8", report["int8"]


def run_pruning(name, flavour, shared, tmp_path):
    model = zoo.build(name, flavour)  # pruned in place: a model of its own
    _fit(model, n=8, callbacks=[edgeopt.Pruning(edgeopt.ConstantSparsity(0.5), frequency=1)])
    report = edgeopt.sparsity_report(model)
    assert report.sparsity == pytest.approx(0.5, abs=0.02), str(report)
    assert 0 < report.covered_fraction <= 1 and report.model_sparsity >= report.sparsity * report.covered_fraction - 1e-9
    assert "of all" in str(report)


def run_clustering(name, flavour, shared, tmp_path):
    model = shared(name, flavour)
    clustered = edgeopt.cluster_weights(model, clusters=CLUSTERS)
    _fit(clustered)
    final = edgeopt.strip_clustering(clustered)
    kernels = [t for t in select_layers(final, what="clustering") if t.size > CLUSTERS]
    assert kernels
    for target in kernels:
        assert len(np.unique(target.read())) <= CLUSTERS, (target.name, target.type)
        assert getattr(target.variable, "constraint", None) is None, target.name  # a plain model


def run_factorize(name, flavour, shared, tmp_path):
    model = shared(name, flavour)
    new = edgeopt.factorize(model, energy=0.5)
    assert new is not model
    assert new.count_params() <= model.count_params()
    x = zoo.sample_inputs(model, 2)
    assert [o.shape for o in _outputs(new, x)] == [o.shape for o in _outputs(model, x)]


def run_distill(name, flavour, shared, tmp_path):
    teacher, student = shared(name, flavour), zoo.build(name, flavour, seed=1)  # the student trains: its own
    before, trainable = _fingerprint(student), teacher.trainable
    try:
        distiller = edgeopt.Distiller(student, teacher)  # freezes the teacher: undone below
        distiller.compile(optimizer="sgd", run_eagerly=EAGER)
        x, y = zoo.sample_data(teacher, 4)
        history = distiller.fit(x, y, batch_size=4, epochs=1, verbose=0)
    finally:
        teacher.trainable = trainable
    assert np.isfinite(history.history["loss"][-1])
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))  # it trained


RUN = {"export": run_export, "qat": run_qat, "pruning": run_pruning, "clustering": run_clustering,
       "factorize": run_factorize, "distill": run_distill}


# -- the matrix ------------------------------------------------------------------------------


def cells(models):
    """One pytest param per (model, capability) of `models`, with its id and xfail mark."""
    for name, flavour in models:
        for capability in CAPABILITIES:
            expected = EXPECTED[name, flavour, capability]
            marks = [pytest.mark.xfail(strict=True, reason=expected.reason)] if isinstance(expected, Xfail) else []
            yield pytest.param(name, flavour, capability, marks=marks, id=f"{flavour}-{name}-{capability}")


def check_cell(shared, tmp_path, name, flavour, capability):
    """Runs one cell and checks it did what `EXPECTED` says, leaving the shared model as it was."""
    expected = EXPECTED[name, flavour, capability]
    model = shared(name, flavour)
    before = _fingerprint(model)
    if expected == OK:
        RUN[capability](name, flavour, shared, tmp_path)
    elif isinstance(expected, Partial):
        run_export(name, flavour, shared, tmp_path, failed=expected.failed)
    elif isinstance(expected, Xfail):
        try:  # passes once the cell raises nothing but EdgeoptErrors: then update EXPECTED
            RUN[capability](name, flavour, shared, tmp_path)
        except EdgeoptError:
            pass
    else:
        error, message = expected
        with pytest.raises(error, match=re.escape(message)):
            RUN[capability](name, flavour, shared, tmp_path)
    after = _fingerprint(model)
    assert len(before) == len(after) and all(np.array_equal(a, b) for a, b in zip(before, after)), \
        "the shared model was modified"

