"""genjax.data: pixel modes, MNIST loading and its cache, data-dir resolution, CIFAR-10 via TFDS mocks.

Colour datasets, preprocessing, streaming decoding and the label filter: test_data_colour.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tfds_mocks import mock_tfds

import genjax.data as data
from genjax.errors import UsageError


# --- pixels -----------------------------------------------------------------

ALL_VALUES = jnp.arange(256, dtype=jnp.uint8)


def test_to_pixels_float():
    x = np.asarray(data.to_pixels(ALL_VALUES, "float"))
    assert x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x, np.arange(256) / 255.0, rtol=1e-6)


def test_to_pixels_threshold_is_x_over_255_above_half():
    x = np.asarray(data.to_pixels(ALL_VALUES, "threshold"))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, (np.arange(256) / 255.0 > 0.5).astype(np.float32))
    # The boundary: 127/255 < 0.5 < 128/255.
    assert x[127] == 0.0 and x[128] == 1.0
    assert set(np.unique(x)) == {0.0, 1.0}


def test_to_pixels_stochastic_is_bernoulli_of_intensity():
    draws = 4000
    images = jnp.tile(ALL_VALUES, (draws, 1))  # each value drawn `draws` times
    x = np.asarray(data.to_pixels(images, "stochastic", jax.random.key(0)))
    assert x.dtype == np.float32 and set(np.unique(x)) == {0.0, 1.0}
    p = np.arange(256) / 255.0
    se = np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(x.mean(0) - p) < 5 * se + 1e-9)
    assert np.all(x[:, 0] == 0.0) and np.all(x[:, 255] == 1.0)
    y = np.asarray(data.to_pixels(images, "stochastic", jax.random.key(1)))
    assert not np.array_equal(x, y)  # a new key, a new draw
    z = np.asarray(data.to_pixels(images, "stochastic", jax.random.key(0)))
    np.testing.assert_array_equal(x, z)  # same key, same draw


def test_to_pixels_signed_is_x_over_127_5_minus_1():
    x = np.asarray(data.to_pixels(ALL_VALUES, "signed"))
    assert x.dtype == np.float32
    assert x[0] == -1.0 and x[255] == 1.0 and x.min() == -1.0 and x.max() == 1.0  # exact ends
    np.testing.assert_allclose(x, -1.0 + 2.0 * np.arange(256) / 255.0, rtol=0, atol=1e-6)
    assert np.all(np.diff(x) > 0)  # 256 distinct, increasing values
    np.testing.assert_array_equal(data.fixed_eval_pixels(np.asarray(ALL_VALUES), "signed"), x)


def test_fixed_eval_pixels_stochastic_is_one_fixed_binary_draw():
    images = np.tile(np.arange(256, dtype=np.uint8), (20, 1))
    a = np.asarray(data.fixed_eval_pixels(images, "stochastic"))
    b = np.asarray(data.fixed_eval_pixels(images, "stochastic"))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(data.fixed_eval_pixels(images, "threshold"), data.to_pixels(images, "threshold"))


def test_pixel_mode_checks():
    for mode in data.PIXEL_MODES:
        assert data.check_pixel_mode(mode) == mode
    with pytest.raises(UsageError, match="bogus"):
        data.check_pixel_mode("bogus")
    with pytest.raises(UsageError):
        data.to_pixels(ALL_VALUES, "bogus")
    assert data.is_binary("threshold") and data.is_binary("stochastic") and not data.is_binary("float")
    assert not data.is_binary("signed")
    assert set(data.BINARIZATION) == set(data.PIXEL_MODES)


# --- MNIST ------------------------------------------------------------------


def test_load_mnist_shapes_labels_and_pixel_mean(mnist):
    train, test = mnist
    assert train.images.shape == (60000, 28, 28, 1) and len(train) == 60000
    assert test.images.shape == (10000, 28, 28, 1) and len(test) == 10000
    for split in (train, test):
        assert split.images.dtype == np.uint8
        assert split.labels.shape == (len(split),)
        assert np.issubdtype(split.labels.dtype, np.integer)
        np.testing.assert_array_equal(np.unique(split.labels), np.arange(10))
        assert split.images.max() == 255 and split.images.min() == 0
    # The well-known MNIST statistics (float pixels): train mean 0.1307, std 0.3081.
    x = train.images.astype(np.float64) / 255.0
    assert x.mean() == pytest.approx(0.1307, abs=5e-4)
    assert x.std() == pytest.approx(0.3081, abs=5e-4)
    assert test.images.mean() / 255.0 == pytest.approx(0.1325, abs=5e-4)
    # Class balance: every digit is between 9% and 12% of the training set.
    counts = np.bincount(train.labels, minlength=10) / 60000
    assert counts.min() > 0.09 and counts.max() < 0.12


def test_cache_roundtrip_with_explicit_cache_dir(tmp_path, mnist, monkeypatch):
    t0 = time.perf_counter()
    first = data.load_split("mnist", "test", cache_dir=tmp_path)
    t_first = time.perf_counter() - t0
    cached = list(tmp_path.rglob("*.npz"))
    assert len(cached) == 1 and cached[0].parent.parent.name == "mnist", cached
    assert cached[0].name.startswith("test-")
    np.testing.assert_array_equal(first.images, mnist[1].images)
    np.testing.assert_array_equal(first.labels, mnist[1].labels)

    # The second load reads the .npz: TFDS's reader is never asked.
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data._tfds(), "data_source", no_decoding)
    t0 = time.perf_counter()
    second = data.load_split("mnist", "test", cache_dir=tmp_path)
    t_second = time.perf_counter() - t0
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert second.images.dtype == np.uint8
    assert t_second < t_first, (t_first, t_second)


def test_unwritable_cache_only_costs_time(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    split = data.load_split("mnist", "test", cache_dir=blocker / "cache")
    assert split.images.shape == (10000, 28, 28, 1)
    assert blocker.is_file()


def test_unknown_dataset_is_a_usage_error():
    with pytest.raises(UsageError, match="mnist"):  # the message lists the choices
        data.load_split("nosuchset", "train")
    with pytest.raises(UsageError):
        data.load_dataset("MNIST ")


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    arg, env = tmp_path / "arg", tmp_path / "env"
    monkeypatch.setenv("TFDS_DATA_DIR", str(env))
    assert data.resolve_data_dir(arg) == arg.resolve()
    assert data.resolve_data_dir(str(arg)) == arg.resolve()
    assert data.resolve_data_dir(None) == env.resolve()
    monkeypatch.delenv("TFDS_DATA_DIR")
    if data.SHARED_DATA_DIR.is_dir():  # ../shared/tensorflow_datasets beside the repository
        assert data.resolve_data_dir() == data.SHARED_DATA_DIR
    assert data.SHARED_DATA_DIR == Path(data.__file__).resolve().parents[3] / "shared" / "tensorflow_datasets"
    monkeypatch.setattr(data, "SHARED_DATA_DIR", tmp_path / "absent")
    assert data.resolve_data_dir() is None
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.resolve_data_dir("~/x") == (tmp_path / "x").resolve()


def test_default_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("GENJAX_CACHE_DIR", str(tmp_path / "g"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "g"
    monkeypatch.delenv("GENJAX_CACHE_DIR")
    assert data.default_cache_dir() == tmp_path / "xdg" / "genjax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.default_cache_dir() == tmp_path / ".cache" / "genjax"


def test_empty_data_dir_without_network_fails_fast_naming_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENJAX_OFFLINE", "1")  # also holds on a machine with internet
    empty = tmp_path / "empty"
    empty.mkdir()
    t0 = time.perf_counter()
    with pytest.raises(UsageError) as info:
        data.load_split("mnist", "test", data_dir=empty, cache_dir=tmp_path / "cache")
    assert time.perf_counter() - t0 < 30
    assert "--data-dir" in str(info.value)
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_download_addresses_are_found_for_every_dataset():
    tfds = data._tfds()
    for name in data.DATASETS:
        url = data._download_url(tfds.builder(name))
        assert url and url.startswith("http"), name


def test_offline_switch_and_unreachable_hosts(monkeypatch):
    monkeypatch.setenv("GENJAX_OFFLINE", "1")
    assert not data._network_reachable("https://example.com/x")
    monkeypatch.delenv("GENJAX_OFFLINE")
    assert not data._network_reachable("https://no-such-host.invalid/x", timeout=2.0)


# --- CIFAR-10 through the same code, on TFDS's mocked data -------------------


def test_cifar10_load_split_with_mock_data(tmp_path):
    # mock_data fakes the records but not the prepared files that load_split checks for first.
    with mock_tfds(num_examples=7):
        train = data.load_split("cifar10", "train", cache_dir=tmp_path)
        assert train.images.shape == (7, 32, 32, 3) and train.images.dtype == np.uint8
        assert train.labels.shape == (7,) and np.issubdtype(train.labels.dtype, np.integer)
        assert train.labels.min() >= 0 and train.labels.max() <= 9
        assert train.images.std() > 0  # random pixels, not a blank array
        assert list((tmp_path / "cifar10").rglob("train-*.npz"))
        again = data.load_split("cifar10", "train", cache_dir=tmp_path)
        np.testing.assert_array_equal(again.images, train.images)
        np.testing.assert_array_equal(again.labels, train.labels)
        tr, te = data.load_dataset("cifar10", cache_dir=tmp_path)
        assert te.images.shape == (7, 32, 32, 3)
