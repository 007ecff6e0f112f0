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
from edgeopt._checks import is_integer, is_real
from edgeopt._layers import WEIGHT_LAYER_TYPES, Target, select_layers
from edgeopt.errors import ConfigError
from edgeopt.pruning import masks as mask_lib
from edgeopt.pruning import state as state_lib
from edgeopt.pruning.schedule import PolynomialDecay, PruningSchedule, deserialize_schedule, serialize_schedule

# A target sparsity alone is reached at this share of the first fit's steps; the rest
# fine-tunes the final mask (measured in tools/benchmarks/quality.py).
DERIVED_END_FRACTION = 0.6


class Pruning(FitCallback):
    """Prunes the smallest-magnitude kernel weights during `fit`, in place.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[edgeopt.Pruning(0.8)])  # schedule from the fit's length
    model.fit(x, y, epochs=10, callbacks=[
        edgeopt.Pruning(edgeopt.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000), frequency=100)])
    edgeopt.sparsity_report(model)
    ```

    Defaults, measured against tfmot's guide recipe (README, "Defaults and why"): a
    target sparsity alone gets the cubic schedule from 0 that ends at
    `DERIVED_END_FRACTION` (60 %) of the first fit's steps, leaving the rest to recover;
    and `scope="global"` prunes by one magnitude threshold, capped per layer (see
    `masks.max_layer_sparsity`), so small layers such as the first convolution and the
    classifier keep more of their weights than large ones.

    The schedule's step counts the batches this schedule has pruned, from 0 at the
    first one, whatever the optimizer's iteration count (so a model trained before
    pruning is pruned by the whole schedule). The step is kept on the model (see
    `edgeopt.pruning.state`): a second `fit`, or a run resumed from a checkpoint with a
    new `Pruning` of the same schedule, continues where it stopped. A fit that cannot
    reach the schedule's final sparsity warns. At the end of every epoch the overall
    sparsity of the selected kernels is put into `logs["sparsity"]` (seen by History,
    CSVLogger, TensorBoard).

    Like tfmot's, masks are updated at `begin_step` and every `frequency` steps after,
    and a kernel always keeps at least one weight. Deliberate differences: masks are
    first computed at the end of the first batch when `begin_step` is 0 (tfmot's
    count starts at 1, so it first prunes at step `frequency`); exactly the target
    count of weights is zeroed when magnitudes tie (tfmot keeps every tied weight); and
    there is a last update at `end_step` itself, so the final sparsity is reached even
    when `end_step - begin_step` is not a multiple of `frequency` (tfmot stops at the
    last multiple, e.g. 0.794 of a 0.8 target).

    Args:
        schedule: a `PruningSchedule`, or a target sparsity in [0, 1): then
            `PolynomialDecay(0, target, 0, end)` with `end` 60 % of the steps of the
            first `fit` (`steps_per_epoch * epochs`), and the masks updated at least 8
            times on the way; may be `None` only with `hold=True`.
        frequency: update the masks every this many steps. Defaults to `100`.
        granularity: `"unstructured"` or `"N:M"` (e.g. `"2:4"`: keep 2 of every 4
            weights along the input-channel axis; the schedule then sets when, not how
            much). Defaults to `"unstructured"`.
        scope: `"global"` (one magnitude threshold across the selected layers, no
            layer pruned beyond halfway from the target to 1) or `"layer"` (each layer
            to the target, as tfmot). Defaults to `"global"`.
        layer_types: which layer types to prune. Defaults to Dense, Conv1D, Conv2D,
            DepthwiseConv2D (kernels only; never biases, BatchNorm or embeddings).
        include: layer-name patterns (fnmatch) to prune. Defaults to `None` (all).
        exclude: layer-name patterns to leave dense. Defaults to `()`.
        min_params: skip kernels with fewer weights. Defaults to `0`.
        hold: keep the model's existing zeros fixed instead of pruning further (for
            fine-tuning a pruned model, e.g. QAT). Defaults to `False`.
        verbose: print a line at each mask update. Defaults to `0`.
    """

    def __init__(self, schedule: PruningSchedule | float | None = None, *, frequency: int = 100,
                 granularity: str = "unstructured", scope: str = "global",
                 layer_types: Sequence[str] = WEIGHT_LAYER_TYPES, include: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), min_params: int = 0, hold: bool = False, verbose: int = 0):
        super().__init__()
        if schedule is None and not hold:
            raise ConfigError("Pruning needs a schedule. Received: schedule=None. Pass e.g. "
                              "edgeopt.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000), or hold=True.")
        self.target_sparsity = None  # set when the schedule is derived from the first fit's length
        if is_real(schedule) and not isinstance(schedule, bool):
            if not 0.0 <= float(schedule) < 1.0:
                raise ConfigError(f"A target sparsity must be in [0, 1). Received: schedule={schedule!r}. "
                                  "Pass the fraction of weights to zero, e.g. 0.8.")
            self.target_sparsity, schedule = float(schedule), None
        elif schedule is not None and not isinstance(schedule, PruningSchedule):
            raise ConfigError(f"schedule must be a PruningSchedule or a target sparsity. Received: "
                              f"{type(schedule).__name__}. Use e.g. 0.8, edgeopt.ConstantSparsity or edgeopt.PolynomialDecay.")
        if not is_integer(frequency) or frequency <= 0:
            raise ConfigError(f"frequency must be a positive integer. Received: frequency={frequency!r}. "
                              "Update the masks every this many steps, e.g. 100.")
        if not is_integer(min_params) or min_params < 0:
            raise ConfigError(f"min_params must be an integer >= 0. Received: min_params={min_params!r}.")
        if scope not in ("layer", "global"):
            raise ConfigError(f"Unknown scope. Received: scope={scope!r}. Use 'layer' or 'global'.")
        self.schedule = schedule
        self.frequency = int(frequency)
        self.granularity = granularity
        self.n_m = mask_lib.parse_granularity(granularity)
        self.scope = scope
        self.layer_types = _names(layer_types)
        self.include = list(_names(include)) if include is not None else None
        self.exclude = _names(exclude)
        self.min_params = int(min_params)
        self.hold = bool(hold)
        self.verbose = verbose
        self._reset()

    # -- Keras callback convention: config round-trip ------------------------------

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-serialisable (the schedule as class name + config)."""
        schedule = self.target_sparsity if self.schedule is None else serialize_schedule(self.schedule)
        return {"schedule": schedule,
                "frequency": self.frequency, "granularity": self.granularity, "scope": self.scope,
                "layer_types": list(self.layer_types), "include": self.include, "exclude": list(self.exclude),
                "min_params": self.min_params, "hold": self.hold, "verbose": self.verbose}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Pruning":
        config = dict(config)
        if isinstance(config.get("schedule"), dict):
            config["schedule"] = deserialize_schedule(config["schedule"])
        return cls(**config)

    def _reset(self) -> None:
        self.targets: list[Target] = []
        self.masks: list[np.ndarray] | None = None
        self._mask_tensors: list[Any] = []
        self._apply_fn = None
        self._state = None
        self._next_update: int | None = None
        self._applied_sparsity: float | None = None
        self._start = 0  # schedule steps done when this fit began
        self._before_epoch = 0  # batches of this fit before the current epoch
        self._epoch_batches = 0
        self._started = self._warned = False

    # -- fit hooks ---------------------------------------------------------------------

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        if not self.hold:
            # Attached now, before any callback's on_train_begin, so that one restoring
            # weights (BackupAndRestore) restores the step too.
            self._state = state_lib.attach(model)

    def on_train_begin(self, logs=None):
        if self.schedule is None and self.target_sparsity is not None:
            self._derive_schedule()
        state = self._state
        self._reset()
        self._state = state
        types = self.layer_types
        if self.n_m is not None:
            types = tuple(t for t in types if t != "DepthwiseConv2D")  # no input-channel reduction
        # Inside a Distiller, prune the student only, never the (frozen) teacher.
        model = getattr(self.model, "student", None) if hasattr(self.model, "teacher") else None
        self.targets = select_layers(model or self.model, layer_types=types, include=self.include, exclude=self.exclude,
                                     min_params=self.min_params, what="pruning")
        if self.n_m is not None:
            self._drop_layers_without_n_m_groups()

    def _derive_schedule(self) -> None:
        """The schedule of a bare target sparsity, from this (the first) fit's length; later
        fits continue it."""
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps or not epochs:
            raise ConfigError(f"Pruning({self.target_sparsity}) derives its schedule from the fit's length, which this "
                              f"fit does not know. Received: steps={steps!r}, epochs={epochs!r}. Pass steps_per_epoch "
                              "to fit, or an explicit schedule such as edgeopt.PolynomialDecay(0.0, 0.8, 0, 2000).")
        end = max(1, round(DERIVED_END_FRACTION * steps * epochs))
        self.schedule = PolynomialDecay(0.0, self.target_sparsity, 0, end)
        self.frequency = max(1, min(self.frequency, end // 8))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_batches = 0
        if not self._started:
            # Here rather than in on_train_begin: callbacks that restore weights
            # (BackupAndRestore) do so in theirs, and the kernels and step they restore count.
            self._started = True
            self._begin_run(epoch)

    def _begin_run(self, epoch: int) -> None:
        weights = self._weights()
        total = sum(w.size for w in weights)
        sparsity = sum(int(np.count_nonzero(w == 0)) for w in weights) / max(1, total)
        tolerance = (len(weights) + 1) / max(1, total)  # rounding: half a weight per layer, one kept per layer
        if not self.hold:
            if self._state is None:
                self._state = state_lib.attach(self.model)
            self._start, message = state_lib.resume_step(
                self.schedule, state_lib.saved(self._state), frequency=self.frequency, sparsity=sparsity,
                tolerance=tolerance, structured=self.n_m is not None)
            if message:
                warnings.warn(message, stacklevel=3)
            self._state.schedule_key.assign(self.schedule.key())
            self._state.step.assign(self._start)
            self._next_update = self.schedule.next_update(self._start, self.frequency)
        else:
            self._state = None
        # The zeros already there stay until the next update (a pruned model, a resumed run).
        self._build_apply([w != 0 for w in weights])
        self._apply_fn(np.int64(self._start))  # traced here, not inside the first batch
        if self.hold or sparsity > tolerance:
            self.masks = [w != 0 for w in weights]
        if not self.hold:
            self._warn_if_unreached(epoch)

    def on_train_batch_end(self, batch, logs=None):
        # Steps are counted here, not read from a variable every batch: a read would wait
        # for the device each step. `batch` is the index within the epoch (the last one
        # of a `steps_per_execution` group).
        if not self._started:
            return
        self._epoch_batches = batch + 1
        step = self._start + self._before_epoch + self._epoch_batches
        if self._next_update is not None and step >= self._next_update:
            self._update_masks(step)
            self._next_update = self.schedule.next_update(step, self.frequency)
        if self._apply_fn is not None:
            self._apply_fn(np.int64(step))

    def on_epoch_end(self, epoch, logs=None):
        self._before_epoch += self._epoch_batches
        self._epoch_batches = 0
        if logs is not None and self.targets:
            logs["sparsity"] = self.current_sparsity()

    def on_train_end(self, logs=None):
        if not self._started or self.hold or self.n_m is not None or self.schedule.end_step == -1 or self._warned:
            return
        done = self._start + self._before_epoch + self._epoch_batches
        if done < self.schedule.end_step:
            warnings.warn(f"Pruning stopped at step {done} of the schedule, before end_step={self.schedule.end_step}: "
                          f"sparsity {self.current_sparsity():.3f}, not final_sparsity="
                          f"{self.schedule.final_sparsity}. Fit again with the same schedule to continue.",
                          stacklevel=2)

    # -- internals -------------------------------------------------------------------

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
        """New masks, applied now and after every batch from here on."""
        self.masks = masks
        for tensor, mask in zip(self._mask_tensors, masks):
            tensor.assign(mask.astype(tensor.dtype.as_numpy_dtype))
        for variable, mask in zip((t.variable for t in self.targets), self._mask_tensors):
            variable.assign(variable * mask)

    def _build_apply(self, masks: list[np.ndarray]) -> None:
        """Mask variables (starting at `masks`) and one graph run after every batch that
        applies them and stores the schedule's step: built once per fit."""
        import tensorflow as tf

        self._mask_tensors = [tf.Variable(m.astype(t.read().dtype), trainable=False, name=f"mask_{i}")
                              for i, (m, t) in enumerate(zip(masks, self.targets))]
        variables, mask_vars, state = [t.variable for t in self.targets], list(self._mask_tensors), self._state

        @tf.function
        def apply(step):
            for variable, mask in zip(variables, mask_vars):
                variable.assign(variable * mask)
            if state is not None:
                state.step.assign(step)

        self._apply_fn = apply

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

    def _warn_if_unreached(self, epoch: int) -> None:
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps or not epochs:
            return
        last = self._start + steps * max(0, epochs - epoch)
        if self._next_update is None:
            return  # the schedule is complete: nothing left to reach
        if self._next_update > last:
            self._warned = True
            warnings.warn(
                f"Pruning never starts in this fit: its next mask update is at step {self._next_update} "
                f"(begin_step={self.schedule.begin_step}, frequency={self.frequency}) but this fit ends at step "
                f"{last}. Lower begin_step/frequency or train longer.", stacklevel=3)
        elif self.schedule.end_step != -1 and self.schedule.end_step > last and self.n_m is None:
            self._warned = True
            reached = self.schedule.sparsity(last)
            warnings.warn(
                f"Pruning reaches final_sparsity={self.schedule.final_sparsity} at step {self.schedule.end_step} "
                f"but this fit ends at step {last} (about {reached:.2f} sparsity). Lower end_step or train longer.",
                stacklevel=3)

    def current_sparsity(self) -> float:
        """Fraction of zeros across the selected kernels now."""
        weights = self._weights()
        return float(sum(int(np.count_nonzero(w == 0)) for w in weights) / max(1, sum(w.size for w in weights)))


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    """A pattern list; one string is one pattern (not its characters)."""
    return (value,) if isinstance(value, str) else tuple(value)


class KeepSparsity(Pruning):
    """Keeps the model's existing zeros at zero during further training, in place.

    Use it while fine-tuning a pruned model (e.g. quantization-aware training) so the
    sparsity survives. Same as `Pruning(hold=True)`.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("hold", True)
        kwargs.pop("schedule", None)
        super().__init__(None, **kwargs)
