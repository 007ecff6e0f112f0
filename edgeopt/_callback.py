"""A callback base that both `keras` (Keras 3) and `tf_keras` `fit` accept.

Both fits duck-type their callbacks; tf_keras additionally asks a few private
questions (`_implements_train_batch_hooks`, `_supports_tf_logs`), answered here. So one
edgeopt callback class serves either Keras without importing it.
"""

from __future__ import annotations

from typing import Any


class FitCallback:
    """Unexported base of edgeopt's callbacks: no-op hooks, `model` and `params`."""

    # True: tf_keras may pass batch logs as tensors; converting them to numpy every
    # batch would force a device sync that costs more than our hooks do.
    _supports_tf_logs = True
    _chief_worker_only = None
    async_safe = False

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict = {}
        self.validation_data = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def _implements_train_batch_hooks(self) -> bool:
        return type(self).on_train_batch_end is not FitCallback.on_train_batch_end

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...
