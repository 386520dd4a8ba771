"""Preparing a fresh MNIST download, offline, from locally written source files."""

from unittest import mock

import numpy as np
import pytest

from fake_mnist_sources import fake_mnist_arrays, source_index, write_mnist_sources

pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

import genjax.data  # noqa: E402


@pytest.mark.slow
def test_prepare_mnist_from_local_sources(tmp_path, monkeypatch):
    sources = write_mnist_sources(tmp_path / "sources")
    data_dir = tmp_path / "tfds"

    def fake_download_and_extract(self, urls):
        assert set(urls) == set(sources), urls  # the builder still asks for these four
        return {key: sources[key] for key in urls}

    # No network here: skip genjax's reachability probe and TFDS's download.
    monkeypatch.setattr(genjax.data, "_network_reachable", lambda *a, **k: True, raising=False)
    with mock.patch.object(
        tfds.download.DownloadManager, "download_and_extract", fake_download_and_extract
    ):
        genjax.data.prepare_dataset("mnist", data_dir)

    images, labels = fake_mnist_arrays()["test"]
    source = tfds.data_source("mnist", split="test", data_dir=str(data_dir), download=False)
    assert len(source) == len(images) == 10000
    # Records come back in TFDS's hashed order; each fake image names its own index.
    records = source.__getitems__(range(len(source)))
    got_images = np.stack([r["image"] for r in records])
    order = np.array([source_index(image) for image in got_images])
    np.testing.assert_array_equal(np.sort(order), np.arange(10000))
    assert got_images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(got_images[..., 0], images[order])
    np.testing.assert_array_equal([r["label"] for r in records], labels[order])
    assert np.count_nonzero(got_images[:, 1:].any(axis=(1, 2, 3))) == 100  # the noisy ones
    assert len(tfds.data_source("mnist", split="train", data_dir=str(data_dir))) == 60000
