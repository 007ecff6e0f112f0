"""Loading calibration / eval data from every accepted source, and rejecting bad data."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from edgeopt.convert.calibration import Dataset, check_labels, load_dataset
from edgeopt.convert.source import InputInfo
from edgeopt.errors import ConfigError

IMG = InputInfo("image", (None, 8, 8, 1), "float32")
RGB = InputInfo("image", (None, 6, 5, 3), "float32")


def test_array_pair_npz_npy(tmp_path):
    x = np.random.rand(10, 8, 8, 1).astype(np.float32)
    y = np.arange(10)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.save(tmp_path / "d.npy", x)
    for source in (x, (x, y), tmp_path / "d.npz", str(tmp_path / "d.npy")):
        data = load_dataset(source, IMG)
        np.testing.assert_array_equal(data.x, x)
    assert load_dataset(tmp_path / "d.npz", IMG).y.tolist() == y.tolist()


def test_one_hot_labels_and_float64_cast():
    x = np.random.rand(4, 8, 8, 1)  # float64
    y = np.eye(10)[[1, 2, 3, 4]]
    data = load_dataset((x, y), IMG)
    assert data.x.dtype == np.float32 and data.y.tolist() == [1, 2, 3, 4]


def test_image_directory_with_class_folders(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((12, 10, 3), 255 if label == "dog" else 0, np.uint8)).save(tmp_path / label / f"{i}.png")
    data = load_dataset(tmp_path, RGB, scale=127.5, mean=127.5)
    assert data.x.shape == (4, 6, 5, 3)
    assert data.y.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(data.x[0], -1.0)
    np.testing.assert_allclose(data.x[-1], 1.0)


def test_callable_by_name_and_object(tmp_path, monkeypatch):
    (tmp_path / "calib_mod.py").write_text(
        "import numpy as np\n"
        "def samples():\n"
        "    for i in range(5):\n"
        "        yield np.full((8, 8, 1), i, np.float32)\n"
        "def batches():\n"
        "    return [np.zeros((2, 8, 8, 1), np.float32)] * 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_dataset("calib_mod:samples", IMG)
    assert data.x.shape == (5, 8, 8, 1) and data.x[4, 0, 0, 0] == 4
    assert load_dataset("calib_mod:batches", IMG).x.shape == (6, 8, 8, 1)
    sys.modules.pop("calib_mod", None)


def test_subset_is_deterministic():
    data = Dataset(np.arange(50, dtype=np.float32).reshape(50, 1), np.arange(50), "x")
    a, b = data.subset(10), data.subset(10)
    assert len(a) == 10 and a.x.tolist() == b.x.tolist() and a.y.tolist() == a.x[:, 0].astype(int).tolist()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.zeros((0, 8, 8, 1), np.float32), "zero samples"),
        (lambda p: np.zeros((4, 28, 28, 1), np.float32), r"wrong shape\. Received: \(4, 28, 28, 1\)"),
        (lambda p: np.zeros((4, 8, 8, 1), np.uint8), "dtype uint8 but the model input is float32"),
        (lambda p: np.full((4, 8, 8, 1), np.nan, np.float32), "256 NaN or Inf"),
        (lambda p: np.array([[np.inf] * 64]).reshape(1, 8, 8, 1).astype(np.float32), "64 NaN or Inf"),
        (lambda p: str(p / "missing.npz"), "was not found"),
        (lambda p: "no_such_module_xyz:load", "Cannot import module 'no_such_module_xyz'"),
        (lambda p: "edgeopt.datasets:nope", "has no attribute 'nope'"),
    ],
)
def test_bad_data_is_one_clear_error(tmp_path, make, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_dataset(make(tmp_path), IMG)
    assert "\n" not in str(caught.value) and "Received" in str(caught.value)


def test_npz_without_x_and_mismatched_labels(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(ConfigError, match=r"no array named 'x'.*\['images'\]"):
        load_dataset(tmp_path / "bad.npz", IMG)
    with pytest.raises(ConfigError, match="labels .* do not match"):
        load_dataset((np.zeros((3, 8, 8, 1), np.float32), np.arange(2)), IMG)


def test_empty_image_directory(tmp_path):
    with pytest.raises(ConfigError, match="has no images"):
        load_dataset(tmp_path, IMG)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated"])
def test_corrupt_image_names_the_file(tmp_path, content):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a_good.png")
    if content == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(tmp_path / "b_bad.png")
        content = (tmp_path / "b_bad.png").read_bytes()[:200]
    (tmp_path / "b_bad.png").write_bytes(content)
    with pytest.raises(ConfigError, match=r"An image in the calibration data cannot be read\. Received: '.*b_bad\.png'"):
        load_dataset(tmp_path, IMG)


@given(st.binary(max_size=400), st.sampled_from([".png", ".jpg", ".bmp"]))
@settings(max_examples=100, deadline=None)
def test_any_image_bytes_load_or_fail_with_one_config_error(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"img{suffix}").write_bytes(data)
        try:
            dataset = load_dataset(tmp, IMG)
        except ConfigError as exc:
            assert "\n" not in str(exc) and "Received" in str(exc)
        else:
            assert dataset.x.shape == (1, 8, 8, 1)


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array([0.5, 1.0, 2.0]), r"non-integer value\(s\) such as 0.5"),
        (np.array([0.0, np.nan, 1.0]), "non-integer"),
        (np.array(["cat", "dog", "cat"]), "dtype <U3"),
        (np.array([0, -1, 2]), "from 0 to 9.*labels from -1 to 2"),
        (np.array([0, 10, 2]), "from 0 to 9.*labels from 0 to 10"),
    ],
)
def test_class_labels_must_be_indices(y, message):
    with pytest.raises(ConfigError, match=message) as caught:
        check_labels(y, 10)
    assert "\n" not in str(caught.value) and "Received" in str(caught.value)


def test_integral_float_and_bool_labels_become_int64():
    assert check_labels(np.array([0.0, 3.0]), 10).dtype == np.int64
    assert check_labels(np.array([True, False]), 2).tolist() == [1, 0]


@given(hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(max_dims=1, max_side=6)), st.integers(1, 20))
@settings(max_examples=300, deadline=None)
def test_check_labels_gives_indices_or_config_error(y, classes):
    try:
        labels = check_labels(y, classes)
    except ConfigError:
        return
    assert labels.dtype == np.int64 and ((labels >= 0) & (labels < classes)).all()


def _npz_bytes(data: bytes) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", data)
    return buffer.getvalue()


@given(st.sampled_from([".npy", ".npz", "npz-member"]), st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_npy_npz_bytes_load_or_fail_with_one_config_error(kind, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("d.npz" if kind != ".npy" else "d.npy")
        path.write_bytes(_npz_bytes(data) if kind == "npz-member" else data)
        try:
            load_dataset(path, IMG)
        except ConfigError as exc:
            assert "\n" not in str(exc) and "Received" in str(exc)


def test_corrupt_npz_is_a_config_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    with pytest.raises(ConfigError, match=r"Cannot read the calibration data.*bad\.npz"):
        load_dataset(tmp_path / "bad.npz", IMG)


TWO = [InputInfo("a", (None, 3), "float32"), InputInfo("b", (None, 2, 2), "float32")]
_arrays = hnp.arrays(st.sampled_from([np.float32, np.float64, np.int32, np.uint8]),
                     hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))


@given(st.dictionaries(st.sampled_from(["x", "x_a", "x_b", "x0", "x1", "x_2", "y", "y_out", "y0", "images"]),
                       _arrays, max_size=5))
@settings(max_examples=200, deadline=None)
def test_any_npz_for_two_inputs_loads_or_fails_with_one_config_error(arrays):
    """An .npz for a two-input model: x_<name> / x<i> arrays, or one clear error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        np.savez(path, **arrays)
        try:
            data = load_dataset(path, TWO)
        except ConfigError as exc:
            assert "\n" not in str(exc) and "Received" in str(exc)
            return
    a, b = data.inputs
    assert a.shape[1:] == (3,) and b.shape[1:] == (2, 2) and len(a) == len(b) == len(data)
    assert a.dtype == np.float32 and b.dtype == np.float32


@given(st.one_of(_arrays, st.tuples(_arrays, _arrays), st.lists(_arrays, max_size=3),
                 st.dictionaries(st.sampled_from(["a", "b", "c"]), _arrays, max_size=3)),
       st.one_of(st.none(), _arrays, st.tuples(_arrays, st.none()), st.dictionaries(st.text(max_size=3), _arrays,
                                                                                     max_size=2)))
@settings(max_examples=200, deadline=None)
def test_any_structure_for_two_inputs_loads_or_fails_with_one_config_error(x, y):
    try:
        data = load_dataset((x, y) if y is not None else x, TWO, what="eval data")
    except ConfigError as exc:
        assert "\n" not in str(exc) and "Received" in str(exc)
        return
    assert [a.shape[1:] for a in data.inputs] == [(3,), (2, 2)]
