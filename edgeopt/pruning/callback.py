"""`Pruning`: magnitude pruning as a callback on the user's own, unmodified model.

Written here rather than taken from tfmot because tfmot's `prune_low_magnitude`
wraps every layer (and the user's own layer objects), needs `UpdatePruningStep`, and
works only for tf_keras. This callback edits the model's kernels **in place**: masks
are computed at the schedule's steps and re-applied after every training batch, so
optimizer updates (momentum included) cannot revive pruned weights.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from edgeopt._callback import FitCallback
from edgeopt._layers import WEIGHT_LAYER_TYPES, Target, select_layers
from edgeopt.errors import ConfigError
from edgeopt.pruning import masks as mask_lib
from edgeopt.pruning.schedule import PruningSchedule


class Pruning(FitCallback):
    """Prunes the smallest-magnitude kernel weights during `fit`, in place.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[
        edgeopt.Pruning(edgeopt.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000), frequency=100)])
    edgeopt.sparsity_report(model)
    ```

    The step is the optimizer's iteration count, so resuming from a checkpoint continues
    the schedule. At the end of every epoch the overall sparsity of the selected
    kernels is put into `logs["sparsity"]` (seen by History, CSVLogger, TensorBoard).

    Args:
        schedule: a `PruningSchedule`; may be `None` only with `hold=True`.
        frequency: update the masks every this many steps. Defaults to `100`.
        granularity: `"unstructured"` or `"N:M"` (e.g. `"2:4"`: keep 2 of every 4
            weights along the input-channel axis; the schedule then sets when, not how
            much). Defaults to `"unstructured"`.
        scope: `"layer"` (each layer to the target) or `"global"` (one magnitude
            threshold across the selected layers). Defaults to `"layer"`.
        layer_types: which layer types to prune. Defaults to Dense, Conv1D, Conv2D,
            DepthwiseConv2D (kernels only; never biases, BatchNorm or embeddings).
        include: layer-name patterns (fnmatch) to prune. Defaults to `None` (all).
        exclude: layer-name patterns to leave dense. Defaults to `()`.
        min_params: skip kernels with fewer weights. Defaults to `0`.
        hold: keep the model's existing zeros fixed instead of pruning further (for
            fine-tuning a pruned model, e.g. QAT). Defaults to `False`.
        verbose: print a line at each mask update. Defaults to `0`.
    """

    def __init__(self, schedule: PruningSchedule | None = None, *, frequency: int = 100,
                 granularity: str = "unstructured", scope: str = "layer",
                 layer_types: Sequence[str] = WEIGHT_LAYER_TYPES, include: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), min_params: int = 0, hold: bool = False, verbose: int = 0):
        super().__init__()
        if schedule is None and not hold:
            raise ConfigError("Pruning needs a schedule. Received: schedule=None. Pass e.g. "
                              "edgeopt.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000), or hold=True.")
        if schedule is not None and not isinstance(schedule, PruningSchedule):
            raise ConfigError(f"schedule must be a PruningSchedule. Received: {type(schedule).__name__}. "
                              "Use edgeopt.ConstantSparsity or edgeopt.PolynomialDecay.")
        if not isinstance(frequency, int) or isinstance(frequency, bool) or frequency <= 0:
            raise ConfigError(f"frequency must be a positive integer. Received: frequency={frequency!r}.")
        if scope not in ("layer", "global"):
            raise ConfigError(f"Unknown scope. Received: scope={scope!r}. Use 'layer' or 'global'.")
        self.schedule = schedule
        self.frequency = frequency
        self.granularity = granularity
        self.n_m = mask_lib.parse_granularity(granularity)
        self.scope = scope
        self.layer_types = tuple(layer_types)
        self.include = include
        self.exclude = tuple(exclude)
        self.min_params = min_params
        self.hold = hold
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.targets: list[Target] = []
        self.masks: list[np.ndarray] | None = None
        self._mask_tensors: list[Any] = []
        self._apply_fn = None
        self._next_update = None
        self._applied_sparsity: float | None = None
        self._steps_before_epoch = 0
        self._epoch_batches = 0

    # -- fit hooks ---------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._reset()
        types = self.layer_types
        if self.n_m is not None:
            types = tuple(t for t in types if t != "DepthwiseConv2D")  # no input-channel reduction
        # Inside a Distiller, prune the student only, never the (frozen) teacher.
        model = getattr(self.model, "student", None) if hasattr(self.model, "teacher") else None
        self.targets = select_layers(model or self.model, layer_types=types, include=self.include, exclude=self.exclude,
                                     min_params=self.min_params, what="pruning")
        if self.n_m is not None:
            self._drop_layers_without_n_m_groups()
        step = self._steps_before_epoch = self._step()
        if self.hold or (self.schedule is not None and step > self.schedule.begin_step):
            # keep the zeros already there (a pruned model, or a run resumed mid-schedule)
            self._set_masks([w != 0 for w in self._weights()])
        if not self.hold:
            begin = self.schedule.begin_step
            self._next_update = begin if step <= begin else begin + -(-(step - begin) // self.frequency) * self.frequency
            self._warn_if_unreached(step)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        # Steps are counted here, not read from the optimizer every batch: a read would
        # wait for the device each step. `batch` is the index within the epoch (the last
        # one of a `steps_per_execution` group).
        self._epoch_batches = batch + 1
        if self._next_update is not None:
            step = self._steps_before_epoch + self._epoch_batches
            if step >= self._next_update and self.schedule.active(step):
                self._update_masks(step)
                while self._next_update <= step:
                    self._next_update += self.frequency
        if self._apply_fn is not None:
            self._apply_fn()

    def on_epoch_end(self, epoch, logs=None):
        self._steps_before_epoch += self._epoch_batches
        if logs is not None and self.targets:
            logs["sparsity"] = self.current_sparsity()

    # -- internals -------------------------------------------------------------------

    def _step(self) -> int:
        return int(np.asarray(self.model.optimizer.iterations.numpy()))

    def _weights(self) -> list[np.ndarray]:
        return [t.read() for t in self.targets]

    def _update_masks(self, step: int) -> None:
        weights = self._weights()
        if self.n_m is not None:
            new = [mask_lib.n_m_mask(w, *self.n_m) for w in weights]
            sparsity = 1 - self.n_m[0] / self.n_m[1]
        else:
            sparsity = self.schedule.sparsity(step)
            if sparsity == self._applied_sparsity:
                return
            compute = mask_lib.global_masks if self.scope == "global" else mask_lib.layer_masks
            new = compute(weights, sparsity)
        self._applied_sparsity = sparsity
        self._set_masks(new)
        if self.verbose:
            print(f"Pruning: step {step}: masks at {sparsity:.3f} sparsity on {len(self.targets)} layers")

    def _set_masks(self, masks: list[np.ndarray]) -> None:
        import tensorflow as tf

        self.masks = masks
        if not self._mask_tensors:
            self._mask_tensors = [tf.Variable(m.astype(t.read().dtype), trainable=False, name=f"mask_{i}")
                                  for i, (m, t) in enumerate(zip(masks, self.targets))]
            variables = [t.variable for t in self.targets]
            mask_vars = self._mask_tensors

            @tf.function
            def apply():
                for variable, mask in zip(variables, mask_vars):
                    variable.assign(variable * mask)

            self._apply_fn = apply
        else:
            for tensor, mask in zip(self._mask_tensors, masks):
                tensor.assign(mask.astype(tensor.dtype.as_numpy_dtype))
        self._apply_fn()

    def _drop_layers_without_n_m_groups(self) -> None:
        m = self.n_m[1]
        unfit = [t for t in self.targets if t.variable.shape[-2] % m]
        if unfit and len(unfit) == len(self.targets):
            raise ConfigError(
                f"No selected layer has input channels divisible by M={m} for {self.granularity} sparsity. "
                f"Received: {[(t.name, int(t.variable.shape[-2])) for t in unfit]}. Pick another M or other layers.")
        if unfit:
            warnings.warn(f"Pruning {self.granularity}: left dense because their input channels are not a multiple "
                          f"of {m}: {[t.name for t in unfit]}", stacklevel=3)
        self.targets = [t for t in self.targets if t not in unfit]

    def _warn_if_unreached(self, step: int) -> None:
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps or not epochs:
            return
        last = step + steps * epochs
        if self._next_update > last:
            warnings.warn(
                f"Pruning never starts in this fit: its first mask update is at step {self._next_update} "
                f"(begin_step={self.schedule.begin_step}, frequency={self.frequency}) but training ends at step "
                f"{last}. Lower begin_step/frequency or train longer.", stacklevel=2)
        elif self.schedule.end_step != -1 and self.schedule.end_step > last and self.n_m is None:
            reached = self.schedule.sparsity(last)
            warnings.warn(
                f"Pruning reaches final_sparsity={self.schedule.final_sparsity} at step {self.schedule.end_step} "
                f"but training ends at step {last} (about {reached:.2f} sparsity). Lower end_step or train longer.",
                stacklevel=2)

    def current_sparsity(self) -> float:
        """Fraction of zeros across the selected kernels now."""
        weights = self._weights()
        return float(sum(int(np.count_nonzero(w == 0)) for w in weights) / max(1, sum(w.size for w in weights)))


class KeepSparsity(Pruning):
    """Keeps the model's existing zeros at zero during further training, in place.

    Use it while fine-tuning a pruned model (e.g. quantization-aware training) so the
    sparsity survives. Same as `Pruning(hold=True)`.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("hold", True)
        super().__init__(None, **kwargs)
