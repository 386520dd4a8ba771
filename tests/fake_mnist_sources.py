"""Locally written stand-ins for the four MNIST source files.

TFDS's ``mnist`` builder asks its download manager for four gzipped IDX files
and then reads the *extracted* (uncompressed) files: a 16-byte header, then
exactly 60000 (train) or 10000 (test) 28x28 uint8 images; an 8-byte header,
then one uint8 label per image. Fewer images make its ``reshape`` fail, so the
fakes have the real counts. Most images are blank (cheap to write and encode);
every ``NONZERO_EVERY``-th one is random noise, so pixel checks mean something.

TFDS stores examples in a hashed (shuffled) order, so each image carries its own
index in its first two pixels: :func:`source_index` recovers it from a record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIDE = 28
NONZERO_EVERY = 100
# The builder's download keys, and the (extracted) names of the real files.
FILENAMES = {
    "train_data": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_data": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def fake_mnist_arrays(num_train=60000, num_test=10000, seed=0):
    """{"train": (images, labels), "test": (images, labels)}; images uint8 (N, 28, 28).

    At most 65536 images a split (the index stamp has two bytes).
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", num_train), ("test", num_test)):
        images = np.zeros((n, SIDE, SIDE), np.uint8)
        noisy = np.arange(0, n, NONZERO_EVERY)
        images[noisy] = rng.integers(0, 256, (len(noisy), SIDE, SIDE), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.divmod(np.arange(n), 256)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        arrays[split] = (images, labels)
    return arrays


def source_index(image) -> int:
    """The index a fake image was generated at (its first two pixels, base 256)."""
    image = np.asarray(image).reshape(SIDE, SIDE)
    return int(image[0, 0]) * 256 + int(image[0, 1])


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.tobytes())


def write_mnist_sources(directory, num_train=60000, num_test=10000, seed=0) -> dict[str, Path]:
    """Write the four uncompressed IDX files into ``directory``.

    Returns what the builder's ``download_and_extract`` call should return:
    its keys (``train_data``, ...) mapped to the written paths. The pixel and
    label values are ``fake_mnist_arrays(num_train, num_test, seed)``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, (images, labels) in fake_mnist_arrays(num_train, num_test, seed).items():
        paths[f"{split}_data"] = directory / FILENAMES[f"{split}_data"]
        paths[f"{split}_labels"] = directory / FILENAMES[f"{split}_labels"]
        _write_idx(paths[f"{split}_data"], 0x0803, images)
        _write_idx(paths[f"{split}_labels"], 0x0801, labels)
    return paths
