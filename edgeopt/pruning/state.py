"""The pruning step a model carries: which schedule it is pruned by, and how far along.

`Pruning` attaches one small state object to the model it prunes (as the attribute
`_edgeopt_pruning_state`, not as a layer: `model.layers`, `model.weights` and
`get_weights()` are unchanged). It holds two int64 variables, the schedule's key and
the steps done under it, and travels with the model:

- across `fit` calls on the same model object;
- in TensorFlow checkpoints (`tf.train.Checkpoint(model=model)`, tf_keras
  `save_weights` in TF format, `ModelCheckpoint` writing those): restoring one into a
  freshly built model restores the step when the callback attaches its state
  (TensorFlow's deferred restoration), so `fit` with a new `Pruning` continues;
- in Keras 3 `.keras` / `.weights.h5` files, read back by `load_weights` into a model
  that already has the state (`BackupAndRestore`, or `callback.set_model(model)` before
  `model.load_weights(...)`). A model rebuilt from a file without it
  (`keras.models.load_model`) has no saved step; `resume_step` then infers it from
  the kernels' sparsity.
"""

from __future__ import annotations

from typing import Any

from edgeopt import _keras
from edgeopt.pruning.schedule import PruningSchedule

ATTRIBUTE = "_edgeopt_pruning_state"
_CLASSES: dict[str, type] = {}


def _state_class(module: Any) -> type:
    """A `Layer` subclass of the model's own Keras (so both Kerases save and track it)."""
    if module.__name__ not in _CLASSES:

        class PruningState(module.layers.Layer):
            """Not part of the model's graph: two variables Keras and TensorFlow save with it."""

            def __init__(self, **kwargs):
                super().__init__(name="edgeopt_pruning_state", trainable=False, **kwargs)
                self.schedule_key = self.add_weight(name="schedule_key", shape=(), dtype="int64",
                                                    initializer="zeros", trainable=False)
                self.step = self.add_weight(name="step", shape=(), dtype="int64", initializer="zeros",
                                            trainable=False)
                self.built = True  # nothing to build; a built layer is saved whole in SavedModels

            def call(self, inputs):
                return inputs

            def load_own_variables(self, store):
                # A weights file written before the model was pruned has no entry: keep ours.
                if len(store.keys()) == 2:
                    super().load_own_variables(store)

        _CLASSES[module.__name__] = PruningState
    return _CLASSES[module.__name__]


def attach(model: Any) -> Any:
    """The model's pruning state, created (at step 0, no schedule) if it has none."""
    state = getattr(model, ATTRIBUTE, None)
    if not (hasattr(state, "step") and hasattr(state, "schedule_key")):  # none, or not one of ours
        state = _state_class(_keras.keras_module(_keras.flavour_of(model)))()
        # Not through the model's __setattr__: Keras would make it a layer and its
        # variables model weights. TensorFlow's tracking is told directly, so checkpoints
        # save it and a restore made before this attach is applied now.
        object.__setattr__(model, ATTRIBUTE, state)
        with _untracked_by_keras(model):
            model._track_trackable(state, name=ATTRIBUTE, overwrite=True)
    return state


def _untracked_by_keras(model: Any) -> Any:
    """A scope in which Keras 3's own attribute tracker ignores new state.

    TensorFlow records the dependency in a dict that Keras 3 wraps with its tracker; a
    built subclassed model has that tracker locked ("You cannot add new elements of
    state ... to a layer that is already built"), and an unlocked one would list the
    state among the model's layers. tf_keras has no such tracker.
    """
    import contextlib

    if _keras.flavour_of(model) is not _keras.Flavour.KERAS3:
        return contextlib.nullcontext()
    try:  # Keras 3 exposes no public switch for this; its private scope is used when present.
        from keras.src.utils.tracking import DotNotTrackScope
    except ImportError:  # pragma: no cover - a future Keras without it
        return contextlib.nullcontext()
    return DotNotTrackScope()


def saved(state: Any) -> tuple[int, int]:
    """`(schedule_key, step)` as stored."""
    return int(state.schedule_key.numpy()), int(state.step.numpy())


def resume_step(schedule: PruningSchedule, stored: tuple[int, int] | None, *, frequency: int, sparsity: float,
                tolerance: float, structured: bool) -> tuple[int, str | None]:
    """Where a run of `schedule` stands for a model `sparsity` sparse, and why if surprising.

    Returns `(steps_done, warning)`. A stored step of this same schedule is trusted
    when the kernels are at least as sparse as it implies; a model with (nearly) no
    zeros starts at 0; an already sparse model without a usable step resumes at the
    latest update whose target it has reached, so no pruned weight is revived.
    """
    key = schedule.key()
    if stored is not None and stored[0] == key:
        last = schedule.last_update(stored[1], frequency)
        if structured or last is None or schedule.sparsity(last) <= sparsity + tolerance:
            return stored[1], None
        if sparsity <= tolerance:
            return 0, (f"Pruning: the model carries step {stored[1]} of this schedule but its selected kernels "
                       f"are dense (sparsity {sparsity:.3f}); starting the schedule again at step 0.")
    if sparsity <= tolerance:
        return 0, None
    if structured:
        return 0, None
    done = schedule.step_reached(sparsity, frequency, tolerance)
    if done == 0:
        return 0, None
    return done, (f"Pruning: the selected kernels are already {sparsity:.1%} sparse and the model carries no saved "
                  f"step of this schedule (a model rebuilt from a file loses it); resuming at step {done}, where the "
                  "schedule reaches that sparsity. Restore a tf.train.Checkpoint, or call callback.set_model(model) "
                  "before model.load_weights(...), to resume at the exact step.")
