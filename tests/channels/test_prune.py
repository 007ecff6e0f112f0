"""prune_channels: criteria, ratio patterns, frozen groups, errors, the input model, MobileNetV2."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt import ConfigError, export_tflite, inspect_tflite, prune_channels
from edgeopt._keras import keras_module
from edgeopt.channels.prune import kept_count, parse_ratio
from tests.channels.models import build, sample, zeroed
from tests.conftest import FLAVOURS


def _chain(k, filters=6, bn=True):
    inputs = k.Input((6, 6, 2), name="image")
    x = k.layers.Conv2D(filters, 3, padding="same", name="conv")(inputs)
    if bn:
        x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.ReLU(name="relu")(x)
    x = k.layers.Conv2D(4, 1, activation="relu", name="conv2")(x)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


def _kept(plan, producer):
    (group,) = [g for g in plan.groups if producer in g.producers]
    return group.kept


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_l1_l2_and_bn_gamma_keep_the_expected_channels(flavour):
    k = keras_module(flavour)
    model = _chain(k)
    kernel = np.zeros((3, 3, 2, 6), "float32")
    kernel[..., :] = np.array([0.1, 3.0, 0.2, 2.0, 0.3, 1.0])  # L1 order: 1 > 3 > 5 > 4 > 2 > 0
    kernel[0, 0, 0, 0] = 10.0  # channel 0: one big weight; L2 ranks it 2nd, L1 only 4th
    model.get_layer("conv").set_weights([kernel, np.zeros(6, "float32")])
    gamma = np.array([5.0, 0.1, 4.0, 0.2, 3.0, -6.0], "float32")  # |gamma| order: 5, 0, 2, 4
    bn = model.get_layer("bn")
    bn.set_weights([gamma] + bn.get_weights()[1:])
    _, plan = prune_channels(model, 0.5, return_plan=True)
    assert _kept(plan, "conv") == [1, 3, 5]
    l1 = np.abs(kernel).reshape(-1, 6).sum(0)
    l2 = np.sqrt((kernel**2).reshape(-1, 6).sum(0))
    assert l1.argsort()[-3:].tolist() != l2.argsort()[-3:].tolist()  # the hand-built kernel tells them apart
    _, plan = prune_channels(model, 0.5, criterion="l2", return_plan=True)
    assert _kept(plan, "conv") == sorted(l2.argsort()[-3:].tolist()) == [0, 1, 3]
    with pytest.warns(UserWarning, match=r"no BatchNormalization in groups \['conv2'\]") as record:
        _, plan = prune_channels(model, 0.5, criterion="bn_gamma", return_plan=True)
    assert record[0].filename == __file__  # the warning points at the caller
    assert _kept(plan, "conv") == [0, 2, 5]
    assert plan.criterion == "bn_gamma" and json.dumps(plan.to_dict())


def test_bn_gamma_without_batchnorm_falls_back_to_l1():
    import keras

    model = _chain(keras, bn=False)
    with pytest.warns(UserWarning, match="found no BatchNormalization in groups \\['conv'"):
        _, plan = prune_channels(model, 0.5, criterion="bn_gamma", return_plan=True)
    _, l1 = prune_channels(model, 0.5, return_plan=True)
    assert _kept(plan, "conv") == _kept(l1, "conv")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_taylor_ranks_by_activation_times_gradient(flavour, digits):
    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    inputs = k.Input((8, 8, 1))
    x = k.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inputs)
    x = k.layers.GlobalAveragePooling2D()(x)
    model = k.Model(inputs, k.layers.Dense(10, activation="softmax", name="logits")(x))
    dense = model.get_layer("logits")
    w, b = dense.get_weights()
    w[[0, 2, 4]] = 0.0  # channels 0, 2, 4 cannot change the loss: zero Taylor score
    w[[1, 3, 5]] *= 20
    dense.set_weights([w, b])
    conv = model.get_layer("conv")
    kernel, bias = conv.get_weights()
    kernel[..., [0, 2, 4]] *= 10  # ...while holding the largest kernels: L1 keeps them
    conv.set_weights([kernel, bias + 0.1])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = (digits.x_train[:96], digits.y_train[:96])
    _, taylor = prune_channels(model, 0.5, criterion="taylor", data=data, return_plan=True)
    _, l1 = prune_channels(model, 0.5, return_plan=True)
    assert _kept(taylor, "conv") == [1, 3, 5] and _kept(l1, "conv") == [0, 2, 4]
    _, unlabelled = prune_channels(model, 0.5, criterion="taylor", data=digits.x_train[:64], return_plan=True)
    assert _kept(unlabelled, "conv") == [1, 3, 5]
    with pytest.raises(ConfigError, match="taylor criterion needs data"):
        prune_channels(model, 0.5, criterion="taylor")


def test_ratio_patterns_pick_groups_and_first_match_wins():
    model = build("residual_add", "keras3")
    new, plan = prune_channels(model, {"proj*": 0.25, "st*": 0.75, "head": 0.5}, return_plan=True)
    widths = {n: new.get_layer(n).get_config()["filters"] for n in ("stem", "project", "expand", "head")}
    assert widths == {"stem": 6, "project": 6, "expand": 8, "head": 3}  # 'proj*' matched the stem/project group first
    assert {g.name: g.ratio for g in plan.groups}["expand"] == 0.0
    with pytest.warns(UserWarning, match=r"matched no layer: \['nope\*'\]"):
        prune_channels(model, {"head": 0.5, "nope*": 0.5})
    with pytest.raises(ConfigError, match="No ratio pattern matches a prunable layer.*'stem'"):
        prune_channels(model, {"typo": 0.5})


def test_round_to_and_kept_counts():
    assert [kept_count(16, r) for r in (0, 0.3, 0.5, 0.99)] == [16, 12, 8, 1]
    assert kept_count(32, 0.3, round_to=8) == 24 and kept_count(10, 0.5, round_to=8) == 8
    model = build("conv_chain", "keras3")
    new = prune_channels(model, 0.9, round_to=3)
    assert new.get_layer("c1").get_config()["filters"] == 3


@pytest.mark.parametrize("bad, message", [
    (1.0, "ratio must be a number in \\[0, 1\\)"), (-0.1, "ratio must be"), (True, "ratio must be"),
    ("half", "ratio must be"), (float("nan"), "ratio must be"), ({}, "empty dict"),
    ({"c*": 2}, "ratio\\['c\\*'\\] must be"), ({3: 0.5}, "ratio keys must be layer-name patterns"),
])
def test_bad_ratio(bad, message):
    with pytest.raises(ConfigError, match=message):
        prune_channels(build("conv_chain", "keras3"), bad)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.none(), st.text(),
                 st.dictionaries(st.one_of(st.text(), st.integers()), st.one_of(st.floats(), st.integers(), st.text()),
                                 max_size=4), st.lists(st.floats(), max_size=3)))
def test_parse_ratio_accepts_valid_and_rejects_everything_else(value):
    def valid(v):
        return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 1

    ok = valid(value) or (isinstance(value, dict) and bool(value)
                          and all(isinstance(p, str) and p and valid(v) for p, v in value.items()))
    if ok:
        parsed = parse_ratio(value)
        assert parsed == (float(value) if not isinstance(value, dict) else {p: float(v) for p, v in value.items()})
    else:
        with pytest.raises(ConfigError, match="Received"):
            parse_ratio(value)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_input_model_untouched_and_outputs_keep_shape(flavour):
    model = build("squeeze_excite", flavour)
    config, weights = json.dumps(model.get_config(), default=str), [w.copy() for w in model.get_weights()]
    with pytest.warns(UserWarning, match=r"no BatchNormalization in groups \['se_reduce', 'head'\]"):
        new = prune_channels(model, 0.6, criterion="bn_gamma")
    new.compile(optimizer="adam", loss="mse")
    x = sample(model)
    new.fit(x, np.zeros((len(x), 4)), epochs=1, verbose=0)  # training the new model cannot reach the old one
    assert json.dumps(model.get_config(), default=str) == config
    for old, now in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(old, now)
    assert new.output_shape == model.output_shape and new.input_shape == model.input_shape
    assert new.get_layer("logits").get_config()["units"] == 4  # feeds the model output: never pruned


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_elementwise_ops_pass_channels_through(flavour):
    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    if flavour == "keras3":
        ops = k.ops
        relu6, reverse = ops.relu6, lambda t: ops.flip(t, axis=-1)
    else:
        import tensorflow as tf

        relu6, reverse = tf.nn.relu6, lambda t: tf.reverse(t, axis=[-1])
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = x * relu6(x + 3.0) / 6.0  # hard-swish written with ops, as MobileNetV3 does
    y = k.layers.Conv2D(8, 1, name="reversed")(x)
    y = reverse(y)
    x = k.layers.Conv2D(6, 1, name="head")(k.layers.Concatenate()([x, y]))
    model = k.Model(inputs, k.layers.Dense(3, name="logits")(k.layers.GlobalAveragePooling2D()(x)))
    with pytest.warns(UserWarning, match=r"unpruned \(\['reversed'\]\).*(flip|reverse)"):
        new, plan = prune_channels(model, 0.5, return_plan=True)
    widths = {n: new.get_layer(n).get_config()["filters"] for n in ("conv", "reversed", "head")}
    assert widths == {"conv": 4, "reversed": 8, "head": 3}
    x = sample(model)
    np.testing.assert_allclose(new.predict(x, verbose=0), zeroed(model, plan).predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def _with_lambda(k, flavour):
    inputs = k.Input((8, 8, 3))
    a = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="free")(inputs)
    b = k.layers.Conv2D(8, 3, padding="same", name="blocked")(a)
    b = k.layers.Lambda(lambda t: t * 2.0, name="double")(b)
    b = b + 1.0 if flavour == "tf_keras" else k.layers.Activation("relu", name="act")(b)  # tf_keras: an op layer
    x = k.layers.Conv2D(6, 1, name="after")(b)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_unknown_layers_freeze_their_groups_with_a_warning(flavour):
    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    model = _with_lambda(k, flavour)
    with pytest.warns(UserWarning, match=r"left 1 channel group\(s\) unpruned \(\['blocked'\]\).*'double'"):
        new, plan = prune_channels(model, 0.5, return_plan=True)
    widths = {n: new.get_layer(n).get_config()["filters"] for n in ("free", "blocked", "after")}
    assert widths == {"free": 4, "blocked": 8, "after": 3}
    (blocked,) = [g for g in plan.groups if g.name == "blocked"]
    assert blocked.frozen and "double (Lambda" in blocked.frozen[0]
    x = sample(model)
    np.testing.assert_allclose(new.predict(x, verbose=0), zeroed(model, plan).predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


class _Scale(__import__("keras").layers.Layer):
    def call(self, x):
        return x * 3.0


def test_custom_layers_keras3_ops_and_grouped_convs_are_barriers():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    a = keras.layers.Conv2D(8, 3, padding="same", name="to_custom")(inputs)
    a = _Scale(name="scale")(a)
    b = keras.layers.Conv2D(8, 3, padding="same", name="to_op")(inputs)
    b = keras.ops.flip(b, axis=-1)  # an op that reorders channels
    c = keras.layers.Conv2D(8, 3, padding="same", name="to_grouped")(inputs)
    c = keras.layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")(c)
    d = keras.layers.Conv2D(8, 3, padding="same", activation="softmax", name="softmaxed")(inputs)
    x = keras.layers.Concatenate()([a, b, c, d])
    x = keras.layers.Conv2D(8, 1, name="free")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.warns(UserWarning, match="cannot be followed") as record:
        new = prune_channels(model, 0.5)
    message = str(record[0].message)
    for name in ("scale", "grouped", "flip"):
        assert name in message
    assert "softmaxed" not in message  # understood (softmax mixes its outputs), so frozen without a warning
    widths = {l.name: l.get_config()["filters"] for l in new.layers if type(l).__name__ == "Conv2D"}
    assert widths == {"to_custom": 8, "to_op": 8, "to_grouped": 8, "grouped": 8, "softmaxed": 8, "free": 4}
    x = sample(model, 4)
    assert new.predict(x, verbose=0).shape == (4, 2)


def test_subclassed_model_is_refused():
    import keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ConfigError, match="only functional and Sequential models.*Received: a subclassed model"):
        prune_channels(net, 0.5)
    with pytest.raises(ConfigError, match="no known input shape"):
        prune_channels(keras.Sequential([keras.layers.Dense(3)]), 0.5)


def test_shared_layer_reads_one_layout():
    import keras

    keras.utils.set_random_seed(0)
    a_in, b_in = keras.Input((6, 6, 3)), keras.Input((6, 6, 3))
    shared = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="shared")
    head = keras.layers.Conv2D(4, 1, name="head")
    x = keras.layers.Add()([head(shared(a_in)), head(shared(b_in))])
    model = keras.Model([a_in, b_in], keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(x)))
    new, plan = prune_channels(model, 0.5, return_plan=True)
    assert new.get_layer("shared").get_config()["filters"] == 4 and new.get_layer("head").get_config()["filters"] == 2
    xs = [sample(model, 4, 1), sample(model, 4, 2)]
    np.testing.assert_allclose(new.predict(xs, verbose=0), zeroed(model, plan).predict(xs, verbose=0),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_mobilenetv2_prunes_by_half_and_converts(flavour, tmp_path):
    from edgeopt.channels import model_cost

    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input shape not in [96, ..., 224]": fine with random weights
        model = k.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    new, plan = prune_channels(model, 0.5, return_plan=True)
    dense, small = model_cost(model), model_cost(new)
    assert small.params == new.count_params() and dense.params == model.count_params()
    assert small.macs < 0.4 * dense.macs and small.params < 0.6 * dense.params
    residual = [g for g in plan.groups if len(g.producers) > 2]  # a residual stage: every projection shares a mask
    assert residual and all(len(g.kept) == math.ceil(g.channels / 2) for g in residual if not g.frozen)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    assert new.predict(x, verbose=0).shape == (4, 10)
    entry = export_tflite(new, ["float32"], output_dir=tmp_path, eval_data=x)["float32"]
    assert entry.status == "ok" and entry.validation["max_abs_error"] < 1e-4
    assert inspect_tflite(entry.path).outputs[0].shape[1:] == [10]


def _squared(t):
    return t * t


def test_nested_models_and_unknown_activations_are_barriers():
    import keras

    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((8, 8, 8)), keras.layers.Conv2D(8, 1, name="inner_conv")], name="inner")
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", name="into_nested")(inputs)
    a = inner(a)
    b = keras.layers.Conv2D(8, 3, padding="same", activation=_squared, name="squared")(inputs)
    c = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="plain")(inputs)
    x = keras.layers.Concatenate()([a, b, c])
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.warns(UserWarning, match=r"cannot be followed: \['inner', 'squared'\]"):
        new, plan = prune_channels(model, 0.5, return_plan=True)
    widths = {n: new.get_layer(n).get_config()["filters"] for n in ("into_nested", "squared", "plain")}
    assert widths == {"into_nested": 8, "squared": 8, "plain": 4}
    assert any("unknown activation" in reason for g in plan.groups for reason in g.frozen)
    x = sample(model, 4)
    np.testing.assert_allclose(new.predict(x, verbose=0), zeroed(model, plan).predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_ratio_naming_a_group_that_must_stay_whole_warns():
    model = build("conv_chain", "keras3")
    with pytest.warns(UserWarning, match=r"must keep their channels: logits \(logits is a model output\)"):
        new = prune_channels(model, {"logits": 0.5, "c1": 0.5})
    assert new.get_layer("c1").get_config()["filters"] == 4


@pytest.mark.slow
def test_mobilenetv3_with_op_written_hard_swish_prunes_without_frozen_groups():
    import keras

    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), weights=None, classes=10,
                                                    include_preprocessing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no group is left unpruned for want of understanding a layer
        new, plan = prune_channels(model, 0.5, return_plan=True)
    frozen = {g.name: g.frozen for g in plan.groups if g.frozen}
    assert frozen == {"logits": ["predictions (Activation, activation 'softmax' mixes channels)"]}
    assert sum(len(g.kept) < g.channels for g in plan.groups) > 20
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(new.predict(x, verbose=0), zeroed(model, plan).predict(x, verbose=0),
                               rtol=1e-4, atol=1e-6)


def test_taylor_data_that_does_not_fit_is_a_config_error():
    model = build("conv_chain", "keras3")
    x = sample(model, 8)
    with pytest.raises(ConfigError, match=r"data does not fit the model. Received: x of shape \(8, 4, 4\)"):
        prune_channels(model, 0.5, criterion="taylor", data=x[:, :4, :4, 0])
    with pytest.raises(ConfigError, match="data has 8 samples but 3 labels"):
        prune_channels(model, 0.5, criterion="taylor", data=(x, np.zeros(3)))
    with pytest.raises(ConfigError, match="data must be x or"):
        prune_channels(model, 0.5, criterion="taylor", data=np.float32(1.0))
