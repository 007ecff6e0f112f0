"""Reading the converter's error lines: the parser on real and arbitrary text, and the
message a real converter failure becomes (issue 12 item 2)."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt import ConversionError, export_tflite
from edgeopt.convert.diagnostics import diagnose, first_line, skip_location

# str(ConverterError) of TF 2.21 for a Keras 3 LSTM with a free batch size.
TENSOR_LIST = (
    '<unknown>:0: error: loc(callsite(fused["TensorListReserve:", "lstm1_1/lstm_1/TensorArrayV2_1@__inference___call'
    '___553"] at callsite(fused["StatefulPartitionedCall:", "StatefulPartitionedCall@__inference_signature_wrapper__'
    '_call___584"] at fused["StatefulPartitionedCall:", "StatefulPartitionedCall_1"]))): \'tf.TensorListReserve\' op'
    " requires element_shape to be static during TF Lite transformation pass\n"
    '<unknown>:0: note: loc(callsite(fused["StatefulPartitionedCall:", "StatefulPartitionedCall@__inference_signature'
    '_wrapper___call___584"] at fused["StatefulPartitionedCall:", "StatefulPartitionedCall_1"])): called from\n'
    '<unknown>:0: error: loc(callsite(fused["TensorListReserve:", "lstm1_1/lstm_1/TensorArrayV2_1@__inference___call'
    '___553"] at fused["StatefulPartitionedCall:", "StatefulPartitionedCall_1"])): failed to legalize operation '
    "'tf.TensorListReserve' that was explicitly marked illegal\n"
    "<unknown>:0: error: Lowering tensor list ops is failed. Please consider using Select TF ops and disabling "
    "`_experimental_lower_tensor_list_ops` flag in the TFLite converter object. For example, "
    "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]\\n "
    "converter._experimental_lower_tensor_list_ops = False\n"
)
# The converter's captured log for an op without a builtin (location first, then `error:`).
SELECT_LOG = (
    'loc(callsite(fused["WriteFile:", "WriteFile@__inference_serve_8"] at fused["StatefulPartitionedCall:", '
    '"StatefulPartitionedCall"])): error: \'tf.WriteFile\' op is neither a custom op nor a flex op\n'
    "error: failed while converting: 'main': \n"
    "Some ops are not supported by the native TFLite runtime, you can enable TF kernels fallback using TF Select. "
    "See instructions: https://www.tensorflow.org/lite/guide/ops_select \n"
    "TF Select ops: WriteFile\n"
    "Details:\n\ttf.WriteFile(tensor<!tf_type.string>, tensor<!tf_type.string>) -> () : {device = \"\"}\n"
)


def test_mlir_diagnostics_become_their_messages_and_hints():
    found = diagnose(TENSOR_LIST)
    assert found.errors == (
        "'tf.TensorListReserve' op requires element_shape to be static during TF Lite transformation pass",
        "failed to legalize operation 'tf.TensorListReserve' that was explicitly marked illegal",
        "Lowering tensor list ops is failed.",
    )
    assert found.hints[0].startswith("Please consider using Select TF ops")
    assert found.tensor_list and not found.select_ops
    log = diagnose(SELECT_LOG)
    assert log.errors == ("'tf.WriteFile' op is neither a custom op nor a flex op",)
    assert log.select_ops == ("WriteFile",) and "enable TF kernels fallback" in log.hints[0]
    assert not log.tensor_list


@pytest.mark.parametrize("text, expected", [
    ('loc("a(b)":1:2): message', "message"),
    ('loc(fused["x\\")", "y"]): m: n', "m: n"),
    ("loc(callsite(cut off", ""),
    ("no location here", "no location here"),
])
def test_skip_location(text, expected):
    assert skip_location(text).strip() == expected


def test_first_line_falls_back():
    assert first_line("Quantization to 16x8-bit not yet supported for op: 'NEG'.\n") == (
        "Quantization to 16x8-bit not yet supported for op: 'NEG'.")
    assert first_line("", fallback="ConverterError") == "ConverterError"
    assert first_line("<unknown>:0: error: loc(callsite(x", fallback="ValueError") == "ValueError"


_pieces = st.sampled_from(["error:", "note:", "loc(", ")", "(", "[", "]", '"', "\\", ":", "\n", "\\n", " ",
                           "TF Select ops:", "Custom ops:", "Please consider", "<unknown>:0:", "fused[", ","])


@given(st.lists(st.one_of(_pieces, st.text(max_size=12)), max_size=60).map("".join))
@settings(max_examples=400, deadline=None)
def test_any_text_gives_one_line_messages_or_a_fallback(text):
    found = diagnose(text, None, 12)
    for line in found.errors + found.hints + found.select_ops + found.custom_ops:
        assert line and "\n" not in line and len(line) <= 300
    summary = found.summary()
    assert "\n" not in summary and len(summary) <= 300
    line = first_line(text, fallback="fallback")
    assert line and "\n" not in line


@given(st.text(alphabet=string.ascii_letters + string.digits + " '.-_=", max_size=40).filter(
           lambda s: any(c.isalnum() for c in s)),
       st.text(alphabet='ab"()[]\\:, ', max_size=30))
@settings(max_examples=200, deadline=None)
def test_the_message_survives_any_location(message, inside):
    """Brackets and escaped quotes inside a location's strings never leak into the message."""
    quoted = inside.replace("\\", "\\\\").replace('"', '\\"')
    text = f'<unknown>:0: error: loc(callsite(fused["{quoted}", "x"] at "{quoted}")): {message}'
    assert diagnose(text).errors == (" ".join(message.split()),)
    assert diagnose(f'loc(fused["{quoted}"]): error: {message}').errors == (" ".join(message.split()),)


@pytest.fixture(scope="module")
def free_batch_lstm():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 3))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.LSTM(8)(inputs)), name="lstm_free")


def test_converter_failure_quotes_its_error_line_and_names_select_tf_ops(free_batch_lstm, tmp_path):
    with pytest.raises(ConversionError) as caught:
        export_tflite(free_batch_lstm, ["float32"], output_dir=tmp_path)
    message = str(caught.value)
    assert ("Received: converter log: error: 'tf.TensorListReserve' op requires element_shape to be static "
            "during TF Lite transformation pass") in message
    assert "Converter hint: Please consider using Select TF ops" in message
    assert "select_tf_ops=True (--select-tf-ops" in message and "unroll=True" in message
    assert "<unknown>" not in message and "loc(" not in message and "\n" not in message
    entry = caught.value.report["float32"]
    assert entry.status == "failed" and entry.error in message
    assert (tmp_path / "export_report.json").is_file()


def test_select_tf_ops_converts_the_same_model(free_batch_lstm, tmp_path):
    x = np.random.default_rng(0).random((4, 6, 3), dtype=np.float32)
    report = export_tflite(free_batch_lstm, ["float32"], output_dir=tmp_path, eval_data=x, select_tf_ops=True)
    entry = report["float32"]
    assert entry.status == "ok" and entry.settings["select_tf_ops"] is True and report.select_tf_ops
    assert any(op.startswith("CUSTOM:FlexTensorList") for op in entry.op_counts)
    assert entry.validation is None and "not validated" in entry.warning and "Flex delegate" in entry.warning
