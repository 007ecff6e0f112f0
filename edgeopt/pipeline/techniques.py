"""Applying a recipe's steps with edgeopt's public API: train, prune, cluster, factorize,
QAT, distill. Each step maps one-to-one onto the function or callback of that name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from edgeopt import _keras
from edgeopt._callback import FitCallback
from edgeopt._callables import resolve_callable
from edgeopt.pipeline.recipe import OPTIMIZERS
from edgeopt.pipeline.steps import PIPELINE_KEYS, STEPS

Progress = Callable[[str], None]


@dataclass
class Data:
    """Train / validation / test arrays (validation and test may be None)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None


def load_data(section: dict | None) -> Data | None:
    if section is None:
        return None
    if section["source"] == "digits":
        from edgeopt.datasets import load_digits_splits

        s = load_digits_splits(**section.get("kwargs", {}))
        return Data(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test)
    if section["source"] == "npz":
        arrays = {}
        for split in ("train", "val", "test"):
            if split in section:
                with np.load(section[split]) as f:
                    arrays[split] = (f["x"], f["y"])
        val, test = arrays.get("val", (None, None)), arrays.get("test", (None, None))
        return Data(*arrays["train"], *val, *test)
    loaded = resolve_callable(section["loader"], "data.loader")(**section.get("kwargs", {}))
    if isinstance(loaded, dict):
        get = loaded.get
        return Data(get("x_train"), get("y_train"), get("x_val"), get("y_val"), get("x_test"), get("y_test"))
    return Data(*loaded) if not hasattr(loaded, "x_train") else Data(
        loaded.x_train, loaded.y_train, getattr(loaded, "x_val", None), getattr(loaded, "y_val", None),
        getattr(loaded, "x_test", None), getattr(loaded, "y_test", None))


def seed_everything(seed: int) -> None:
    """Python, numpy, TensorFlow and Keras seeds, so a recipe run is repeatable."""
    import sys

    import keras

    keras.utils.set_random_seed(seed)
    if "tf_keras" in sys.modules:
        sys.modules["tf_keras"].utils.set_random_seed(seed)


def build_model(section: dict, *, unsafe: bool = False) -> Any:
    if section.get("builder"):
        return resolve_callable(section["builder"], "model.builder")(**section.get("kwargs", {}))
    return _keras.load_model(section["path"], unsafe=unsafe)


class EpochProgress(FitCallback):
    """One progress line per epoch: a bar, the epoch and the logged metrics."""

    def __init__(self, label: str, say: Progress):
        super().__init__()
        self.label, self.say = label, say

    def on_epoch_end(self, epoch, logs=None):
        total = self.params.get("epochs") or epoch + 1
        done = int(20 * (epoch + 1) / total)
        metrics = " ".join(f"{k}={float(v):.4f}" for k, v in (logs or {}).items() if k in
                           ("loss", "accuracy", "val_accuracy", "sparsity"))
        self.say(f"{self.label} [{'#' * done}{'.' * (20 - done)}] epoch {epoch + 1}/{total} {metrics}")


def _optimizer(model: Any, train: dict, learning_rate: float | None = None):
    k = _keras.keras_module(_keras.flavour_of(getattr(model, "student", model)))
    return getattr(k.optimizers, OPTIMIZERS[train["optimizer"]])(learning_rate=learning_rate or train["learning_rate"])


def fit(model: Any, data: Data, train: dict, epochs: int, label: str, say: Progress, callbacks=(),
        learning_rate: float | None = None, compile_model: bool = True) -> Any:
    """Compiles (keyword arguments only: the two Kerases differ positionally) and fits."""
    if compile_model:
        model.compile(optimizer=_optimizer(model, train, learning_rate), loss=train["loss"], metrics=train["metrics"])
    validation = (data.x_val, data.y_val) if data.x_val is not None else None
    model.fit(data.x_train, data.y_train, validation_data=validation, epochs=epochs, batch_size=train["batch_size"],
              verbose=0, callbacks=[*callbacks, EpochProgress(label, say)])
    return model


# A `pruning` step distills from the model it started from unless `distill: false`
# (PIPELINE_KEYS["distill"]; measured in tools/benchmarks/quality.py).
SCRATCH_SUFFIX = "-scratch"


def dense_teacher(model: Any, say: Progress) -> Any | None:
    """A frozen copy of `model` (the teacher of its own pruning), or None, said why, when
    it cannot be copied or has a single output (nothing to distill)."""
    from edgeopt.errors import ConfigError

    try:  # a subclassed model has no symbolic outputs (Keras 3 raises, tf_keras gives None)
        outputs = list(getattr(model, "outputs", None) or [])
    except (AttributeError, ValueError):
        outputs = []
    width = outputs[0].shape[-1] if len(outputs) == 1 and outputs[0].shape else None
    if width is not None and width < 2:
        say("  pruning: not distilling (a single output has no class distribution); distill: false to silence")
        return None
    try:
        from edgeopt._cloning import clone

        teacher = clone(model, "distillation while pruning")
    except ConfigError as exc:
        say(f"  pruning: not distilling, the model cannot be copied as its teacher: {exc}")
        return None
    teacher.trainable = False
    return teacher


def quiet_distiller(student: Any, teacher: Any) -> Any:
    """`edgeopt.Distiller` with its defaults, without its softmax-output warning (the
    pipeline's own models often end in one; the Distiller handles it)."""
    import warnings

    import edgeopt

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Distiller: the .* ends in a softmax")
        return edgeopt.Distiller(student=student, teacher=teacher)


def scratch_twins(variants: list[dict]) -> list[dict]:
    """`variants`, each one with a `distill` step followed by its from-scratch twin.

    The twin, `<name>-scratch`, trains the last distill step's student architecture on
    the labels alone for the same epochs, then applies the steps after it: the report's
    row that tells whether distillation paid off. A name already taken gets a number.
    """
    taken = {v["name"].casefold() for v in variants}
    twinned = {v.get("scratch_of") for v in variants}  # a recipe expanded before keeps its twins
    out = []
    for variant in variants:
        out.append(variant)
        steps = variant.get("steps") or []
        last = max((i for i, step in enumerate(steps) if "distill" in step), default=None)
        if last is None or variant.get("scratch_of") or variant["name"] in twinned:
            continue
        name, n = variant["name"] + SCRATCH_SUFFIX, 2
        while name.casefold() in taken:
            name, n = f"{variant['name']}{SCRATCH_SUFFIX}{n}", n + 1
        taken.add(name.casefold())
        distill = steps[last]["distill"]
        twin = {"name": name, "scratch_of": variant["name"],
                "steps": [{"scratch": {"student": distill["student"], "epochs": distill["epochs"]}}, *steps[last + 1:]]}
        if "precisions" in variant:
            twin["precisions"] = variant["precisions"]
        out.append(twin)
    return out


def apply_step(kind: str, settings: dict, model: Any, data: Data, train: dict, say: Progress, state: dict,
               callbacks: Sequence[Any] = ()) -> Any:
    """Applies one technique to `model` (fine-tuning it) and returns the resulting model.

    `callbacks` join every `fit` of the step (`edgeopt search` stops poor trials with one)."""
    import edgeopt

    settings = dict(settings)
    epochs = settings.pop("epochs")
    label = f"  {kind}"
    extra = list(callbacks)
    keep = [edgeopt.KeepSparsity()] if state.get("pruned") else []
    if kind == "pruning":
        distill = settings.pop("distill", PIPELINE_KEYS["distill"].default)
        callbacks = [edgeopt.Pruning(**STEPS[kind].arguments(settings)), *extra]
        teacher = dense_teacher(model, say) if _distills(distill, train, label, say) else None
        # the model pruned in place is the student of its own dense copy
        _fine_tune(model, teacher, data, train, epochs, label, say, callbacks)
        state["pruned"] = True
        return model
    if kind == "scratch":  # the from-scratch twin of a distilled student (see `scratch_twins`)
        student = build_model(settings.pop("student"))
        fit(student, data, train, epochs, label, say, extra)
        state["pruned"] = False
        return student
    if kind == "clustering":
        if state.get("pruned"):
            settings.setdefault("preserve_sparsity", True)
        clustered = edgeopt.cluster_weights(model, **settings)
        fit(clustered, data, train, epochs, label, say, extra)
        return edgeopt.strip_clustering(clustered)
    if kind == "lowrank":
        return fit(edgeopt.factorize(model, **settings), data, train, epochs, label, say, keep + extra)
    if kind == "qat":
        learning_rate = settings.pop("learning_rate", None) or train["learning_rate"] / 10
        qat = edgeopt.quantize_aware(model, **settings)
        # Keras 3 QAT keeps the user's layers, so KeepSparsity holds the zeros; tfmot's
        # wrapped layers keep them through preserve: sparsity instead.
        hold = keep if _keras.flavour_of(qat) is _keras.Flavour.KERAS3 else []
        return fit(qat, data, train, epochs, label, say, hold + extra, learning_rate=learning_rate)
    if kind == "distill":
        student = build_model(settings.pop("student"))
        distiller = edgeopt.Distiller(student=student, teacher=model, **settings)
        distiller.compile(optimizer=_optimizer(student, train), metrics=train["metrics"])
        fit(distiller, data, train, epochs, label, say, extra, compile_model=False)
        state["pruned"] = False
        return distiller.student
    if kind == "channel_pruning":
        return _channel_pruning(model, settings, data, train, epochs, label, say, extra)
    # Any other registered step: a callback is fitted with, a model transform fine-tuned.
    spec = STEPS[kind]
    if spec.takes_model():
        return fit(spec.callable()(**{spec.model: model}, **spec.arguments(settings)), data, train, epochs, label, say,
                   keep + extra)
    return fit(model, data, train, epochs, label, say, [spec.callable()(**spec.arguments(settings)), *keep, *extra])


# Losses whose labels the Distiller's default hard loss (sparse cross-entropy) reads.
_CLASS_LABEL_LOSSES = {"sparse_categorical_crossentropy"}


def _channel_pruning(model: Any, settings: dict, data: Data, train: dict, epochs: int, label: str, say: Progress,
                     callbacks: list) -> Any:
    """`prune_channels` in `iterations` rounds, each fine-tuned for `epochs`; by default
    by distillation from the model the step started from (the unpruned model is a free
    teacher), on sparse class labels only (another loss fine-tunes on the labels alone)."""
    import edgeopt

    iterations = settings.pop("iterations", PIPELINE_KEYS["iterations"].default)
    distill = _distills(settings.pop("distill", PIPELINE_KEYS["distill"].default), train, label, say)
    arguments = STEPS["channel_pruning"].arguments(settings)
    ratio = arguments.pop("ratio")
    if str(arguments.get("criterion", "l1")) == "taylor":
        arguments["data"] = (data.x_train[:512], data.y_train[:512])
    from edgeopt.channels.prune import round_ratios

    teacher = current = model
    rounds = round_ratios(model, ratio, iterations, round_to=arguments.get("round_to", 1)) if iterations > 1 else [ratio]
    for round_index, round_share in enumerate(rounds):
        current = edgeopt.prune_channels(current, round_share, **arguments)
        # Frozen after it is copied (a copy would inherit the flag): the Distiller would
        # freeze it itself, with a warning; it is not trained again.
        teacher.trainable = False
        say(f"{label}: round {round_index + 1}/{iterations}, {current.count_params()} parameters left")
        current = _fine_tune(current, teacher if distill else None, data, train, epochs, label, say, callbacks)
    return current


def _distills(distill: bool, train: dict, label: str, say: Progress) -> bool:
    """Whether a step that may distil does: only on the class labels the Distiller's hard loss reads."""
    if distill and train["loss"] not in _CLASS_LABEL_LOSSES:
        say(f"{label}: not distilling (train.loss is {train['loss']!r}, not class labels); fine-tuning on the labels")
        return False
    return bool(distill)


def _fine_tune(student: Any, teacher: Any | None, data: Data, train: dict, epochs: int, label: str, say: Progress,
               callbacks: Sequence[Any]) -> Any:
    """Fits `student` on the labels, or distilled from `teacher` when there is one; returns it."""
    if teacher is None:
        return fit(student, data, train, epochs, label, say, callbacks)
    distiller = quiet_distiller(student, teacher)
    distiller.compile(optimizer=_optimizer(student, train), metrics=train["metrics"])
    fit(distiller, data, train, epochs, label, say, callbacks, compile_model=False)
    return distiller.student
