"""genjax.data for colour datasets: crop and resize, streaming decoding, the cache key,
the label filter, CIFAR-10 and CelebA end to end on TFDS's mocked records, and
CelebA's manual-download route."""

from __future__ import annotations

import hashlib
import importlib.util
import io
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from genjax import data
from genjax.data.preprocess import Preprocess, center_crop, resize, resized_shape
from genjax.errors import UsageError
from tfds_mocks import mock_tfds

CELEB_A_FILES = {  # the file-name column of TFDS's celeb_a checksums.tsv
    "img_align_celeba.zip", "list_eval_partition.txt", "list_attr_celeba.txt",
    "list_landmarks_align_celeba.txt", "identity_CelebA.txt",
}


# --- crop and resize ----------------------------------------------------------


def test_center_crop_takes_torchvisions_window():
    rows, cols = np.meshgrid(np.arange(218), np.arange(178), indexing="ij")
    image = np.stack([rows, cols, rows * 0], -1).astype(np.int32)  # each pixel holds its (row, column)
    crop = center_crop(image, 148)
    assert crop.shape == (148, 148, 3)
    assert tuple(crop[0, 0, :2]) == (35, 15) and tuple(crop[-1, -1, :2]) == (182, 162)  # (218-148)/2, (178-148)/2
    assert tuple(center_crop(image, 178)[0, 0, :2]) == (20, 0)
    with pytest.raises(UsageError, match="179x179"):
        center_crop(image, 179)


def test_resize_is_antialiased_bilinear():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (148, 148, 3), dtype=np.uint8)
    small = resize(image, 64)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    # An independent implementation of the same filter (a triangle widened by the scale factor).
    ref = jax.image.resize(jnp.asarray(image, jnp.float32), (64, 64, 3), "linear", antialias=True)
    assert np.abs(small.astype(np.float32) - np.asarray(ref)).max() <= 1.0
    # Antialiased: noise averages out (a plain point sample would keep its spread, about 74).
    assert small.std() < 0.6 * image.std()
    np.testing.assert_array_equal(resize(np.full((148, 148, 3), 77, np.uint8), 64), 77)
    grey = resize(image[..., :1], 32)
    assert grey.shape == (32, 32, 1)
    assert resize(image, 148) is image  # already that size
    assert resized_shape(218, 178, 64) == (78, 64) and resized_shape(32, 48, 16) == (16, 24)


def test_preprocess_shapes_tags_and_checks():
    assert Preprocess().output_shape((218, 178, 3)) == (218, 178, 3) and Preprocess().tag == ""
    assert data.CELEB_A_64.output_shape((218, 178, 3)) == (64, 64, 3)
    assert data.CELEB_A_64.tag == "crop148-size64" and Preprocess(size=16).tag == "size16"
    assert Preprocess(crop=178).output_shape((218, 178, 3)) == (178, 178, 3)
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    assert Preprocess()(image) is image
    for bad in ({"crop": 0}, {"size": -1}, {"size": 1.5}, {"crop": True}):
        with pytest.raises(UsageError):
            Preprocess(**bad)
    with pytest.raises(UsageError, match="200x200"):
        Preprocess(crop=200).output_shape((218, 178, 3))
    assert data.image_shape("celeb_a") == (64, 64, 3) and data.image_shape("celeb_a", Preprocess()) == (218, 178, 3)
    assert data.DATASETS["mnist"].preprocess == data.DATASETS["cifar10"].preprocess == Preprocess()  # untagged caches
    assert data.image_shape("cifar10") == (32, 32, 3) and data.image_shape("mnist", Preprocess(size=14)) == (14, 14, 1)


# --- streaming decoding -------------------------------------------------------------


class ListSource:
    """A data source over a list of records, logging every batch it is asked for."""

    def __init__(self, records):
        self.records, self.asked = records, []

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        self.asked.append(1)
        return self.records[i]


class BatchedListSource(ListSource):
    def __getitems__(self, keys):
        self.asked.append(len(keys))
        return [self.records[i] for i in keys]


def _records(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": rng.integers(0, 256, shape, dtype=np.uint8), "label": int(rng.integers(10))} for _ in range(n)]


def test_streaming_fill_equals_the_naive_stack():
    spec = data.DatasetSpec((20, 18, 3), "label", ("train", "test"))
    records = _records(10, (20, 18, 3))
    naive = np.stack([r["image"] for r in records])
    for cls in (BatchedListSource, ListSource):
        source = cls(records)
        got = data.decode_source(source, spec, batch_size=4)
        assert got.images.dtype == np.uint8 and got.labels.dtype == np.int32
        np.testing.assert_array_equal(got.images, naive)
        np.testing.assert_array_equal(got.labels, [r["label"] for r in records])
        assert source.asked == ([4, 4, 2] if cls is BatchedListSource else [1] * 10)  # batches, never all at once
    pre = Preprocess(crop=16, size=8)
    got = data.decode_source(BatchedListSource(records), spec, pre, batch_size=3)
    assert got.images.shape == (10, 8, 8, 3)
    np.testing.assert_array_equal(got.images, np.stack([pre(r["image"]) for r in records]))
    unlabelled = data.decode_source(BatchedListSource(records), data.DatasetSpec((20, 18, 3), None, ("a", "b")))
    assert unlabelled.labels is None
    with pytest.raises(UsageError, match="record 3"):
        data.decode_source(BatchedListSource(records[:3] + _records(1, (20, 17, 3))), spec)


# --- the label filter --------------------------------------------------------------


def test_where_label_keeps_the_chosen_classes_in_order():
    images = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)
    full = data.ImageSet(images, np.array([3, 1, 3, 0, 1, 3], np.int32))
    threes = full.where_label(3)
    np.testing.assert_array_equal(threes.images[:, 0, 0, 0], [0, 2, 5])
    np.testing.assert_array_equal(threes.labels, [3, 3, 3])
    both = full.where_label([0, 1])
    np.testing.assert_array_equal(both.images[:, 0, 0, 0], [1, 3, 4])
    assert len(full) == 6 and full.labels.tolist() == [3, 1, 3, 0, 1, 3]  # the original is untouched
    with pytest.raises(UsageError, match="0, 1, 3"):  # names the labels there are
        full.where_label(7)
    with pytest.raises(UsageError, match="no class labels"):
        data.ImageSet(images, None).where_label(0)


# --- CIFAR-10 and CelebA end to end on TFDS's mocked records --------------------------


def _naive_images(name, split, preprocess):
    source = tfds.data_source(name, split=split, download=False)
    return np.stack([preprocess(np.asarray(source[i]["image"])) for i in range(len(source))])


def test_celeb_a_loads_cropped_and_resized_like_the_naive_loop(tmp_path):
    with mock_tfds(num_examples=6):
        train = data.load_split("celeb_a", "train", cache_dir=tmp_path)  # the default: CELEB_A_64
        assert train.images.shape == (6, 64, 64, 3) and train.images.dtype == np.uint8
        assert train.labels is None
        np.testing.assert_array_equal(train.images, _naive_images("celeb_a", "train", data.CELEB_A_64))
        raw = data.load_split("celeb_a", "train", cache_dir=tmp_path, preprocess=Preprocess())
        assert raw.images.shape == (6, 218, 178, 3)
        np.testing.assert_array_equal(raw.images, _naive_images("celeb_a", "train", Preprocess()))
        # The 64x64 image is the resized centre of the raw one.
        np.testing.assert_array_equal(train.images[2], resize(raw.images[2, 35:183, 15:163], 64))
        tr, te = data.load_dataset("celeb_a", cache_dir=tmp_path, preprocess=Preprocess(crop=178, size=32))
        assert tr.images.shape == te.images.shape == (6, 32, 32, 3)


def test_cifar10_resized_keeps_its_labels(tmp_path):
    with mock_tfds(num_examples=7):
        full = data.load_split("cifar10", "test", cache_dir=tmp_path)
        small = data.load_split("cifar10", "test", cache_dir=tmp_path, preprocess=Preprocess(size=16))
        assert small.images.shape == (7, 16, 16, 3)
        np.testing.assert_array_equal(small.labels, full.labels)
        np.testing.assert_array_equal(full.images, _naive_images("cifar10", "test", Preprocess()))
        label = int(full.labels[0])
        assert np.all(full.where_label(label).labels == label) and len(full.where_label(label)) >= 1


def test_cache_key_includes_the_preprocessing(tmp_path, monkeypatch):
    sizes = {Preprocess(): 218, data.CELEB_A_64: 64, Preprocess(crop=178, size=32): 32}
    with mock_tfds(num_examples=3):
        for pre, side in sizes.items():
            assert data.load_split("celeb_a", "test", cache_dir=tmp_path, preprocess=pre).images.shape[1] == side
        names = sorted(p.name for p in tmp_path.rglob("*.npz"))
        assert len(names) == 3, names
        assert any(n.startswith("test-crop148-size64-") for n in names)
        assert any(n.startswith("test-crop178-size32-") for n in names)

        def no_decoding(*args, **kwargs):
            raise AssertionError("decoded again instead of reading the cache")

        monkeypatch.setattr(data._tfds(), "data_source", no_decoding)
        for pre, side in reversed(list(sizes.items())):  # each request gets its own cache entry back
            assert data.load_split("celeb_a", "test", cache_dir=tmp_path, preprocess=pre).images.shape[1] == side
    # Without preprocessing the key is the earlier loader's, so existing MNIST caches stay valid.
    builder = tfds.builder("mnist", data_dir=str(tmp_path / "none"))
    old_key = hashlib.sha1(f"{builder.data_path}|".encode()).hexdigest()[:12]
    assert data._cache_path(tmp_path, "mnist", "test", builder).name == f"test-{old_key}.npz"


# --- CelebA's download, and its manual route ------------------------------------------------


def test_celeb_a_manual_files_are_the_ones_tfds_expects(tmp_path):
    builder = tfds.builder("celeb_a", data_dir=str(tmp_path))
    assert set(data.manual_files(builder)) == CELEB_A_FILES
    assert data.manual_dir(builder) == tmp_path / "downloads" / "manual"


def test_celeb_a_offline_message_names_the_manual_route(tmp_path, monkeypatch):
    monkeypatch.setenv("GENJAX_OFFLINE", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError) as info:
        data.load_split("celeb_a", "train", data_dir=empty, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "--data-dir" in message and "Google Drive" in message
    assert str(empty / "downloads" / "manual") in message
    for name in CELEB_A_FILES:
        assert name in message, name
    with pytest.raises(UsageError) as info:
        data.load_split("cifar10", "train", data_dir=empty, cache_dir=tmp_path / "cache")
    assert "--data-dir" in str(info.value) and "manual" not in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="preparing needs TensorFlow")
def test_celeb_a_with_manual_files_prepares_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GENJAX_OFFLINE", "1")
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    for name in CELEB_A_FILES:
        (manual / name).write_bytes(b"")
    calls = []
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", lambda self, **kw: calls.append(kw))
    data.prepare_dataset("celeb_a", tmp_path)  # no network probe: the files are there
    assert calls == [{"file_format": "array_record"}]
    (manual / "list_attr_celeba.txt").unlink()  # one missing: back to needing the network
    with pytest.raises(UsageError, match="list_attr_celeba.txt"):
        data.prepare_dataset("celeb_a", tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="preparing needs TensorFlow")
def test_failed_celeb_a_download_is_a_usage_error_naming_the_manual_route(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_network_reachable", lambda *a, **k: True)

    def quota(self, **kwargs):
        raise RuntimeError("Too many users have viewed or downloaded this file recently")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", quota)
    with pytest.raises(UsageError) as info:
        data.prepare_dataset("celeb_a", tmp_path)
    assert "Too many users" in str(info.value) and "downloads/manual" in str(info.value).replace("\\", "/")
    with pytest.raises(RuntimeError, match="Too many users"):  # other datasets: TFDS's own error
        data.prepare_dataset("cifar10", tmp_path)


def _write_fake_celeb_a_sources(directory: Path, partition: dict[str, int]) -> dict[str, np.ndarray]:
    """The five files of TFDS's celeb_a, tiny: a zip of JPEGs (black outside the 148x148 centre
    crop, one flat colour inside) and the four lists; returns each file's image."""
    import zipfile

    from PIL import Image

    images = {}
    with zipfile.ZipFile(directory / "img_align_celeba.zip", "w") as zf:
        for k, file_name in enumerate(partition):
            image = np.zeros((218, 178, 3), np.uint8)
            image[35:183, 15:163] = (40 + 30 * k, 220 - 25 * k, 90)
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="JPEG", quality=95)
            zf.writestr(f"img_align_celeba/{file_name}", buf.getvalue())
            images[file_name] = image
    from tensorflow_datasets.datasets.celeb_a import celeb_a_dataset_builder as celeb_a

    def listing(headings, value):
        rows = "".join(f"{f} " + " ".join([value] * len(headings)) + "\n" for f in partition)
        return f"{len(partition)}\n" + " ".join(headings) + "\n" + rows

    (directory / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in partition.items()))
    (directory / "list_attr_celeba.txt").write_text(listing(celeb_a.ATTR_HEADINGS, "1"))
    (directory / "list_landmarks_align_celeba.txt").write_text(listing(celeb_a.LANDMARK_HEADINGS, "50"))
    (directory / "identity_CelebA.txt").write_text("".join(f"{f} {k}\n" for k, f in enumerate(partition)))
    return images


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="preparing needs TensorFlow")
def test_celeb_a_prepared_offline_from_manual_files_loads_end_to_end(tmp_path, monkeypatch):
    """The manual route as the message tells it, through real array_record files: the five
    files in <data_dir>/downloads/manual/, no network, then load_split crops and resizes."""
    monkeypatch.setenv("GENJAX_OFFLINE", "1")
    manual = tmp_path / "tfds" / "downloads" / "manual"
    manual.mkdir(parents=True)
    partition = {"000001.jpg": 0, "000002.jpg": 0, "000003.jpg": 0, "000004.jpg": 1, "000005.jpg": 2, "000006.jpg": 2}
    images = _write_fake_celeb_a_sources(manual, partition)
    # The fakes cannot have the real files' checksums.
    monkeypatch.setattr(tfds.download.DownloadManager, "_register_or_validate_checksums", lambda self, **kw: None)
    train = data.load_split("celeb_a", "train", data_dir=tmp_path / "tfds", cache_dir=tmp_path / "cache")
    assert train.images.shape == (3, 64, 64, 3) and train.labels is None
    colours = sorted(tuple(int(v) for v in image[100, 80]) for f, image in images.items() if partition[f] == 0)
    got = sorted(tuple(int(v) for v in np.median(im.reshape(-1, 3), axis=0)) for im in train.images)
    np.testing.assert_allclose(got, colours, atol=3)  # JPEG round trip
    assert train.images.min(axis=(1, 2)).min() > 20  # no black border: the crop took the centre
    raw = data.load_split("celeb_a", "test", data_dir=tmp_path / "tfds", cache_dir=tmp_path / "cache",
                          preprocess=data.Preprocess())
    assert raw.images.shape == (2, 218, 178, 3) and raw.images[:, :30].max() < 20  # black above the crop
