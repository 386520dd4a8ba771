"""Image datasets from tensorflow-datasets, as in-memory uint8 arrays (this module), their
preprocessing (:mod:`genjax.data.preprocess`) and the checks on users' own arrays
(:mod:`genjax.data.inputs`).

Reading goes through ``tfds.data_source`` (array_record files; no TensorFlow
needed), record by record into one preallocated array, with an optional
:class:`~genjax.data.preprocess.Preprocess` (centre crop, resize) applied to each
record as it is decoded. Decoded arrays are cached as ``.npz`` under a key that
includes the preprocessing, so a second run starts in seconds. Preparing a
fresh download needs TensorFlow (the ``prepare`` extra) and network; without
them the user hears so at once, with the fix. CelebA's files sit on Google
Drive, whose quota often refuses TFDS: its message also names the manual route
(the files, by hand, into ``<data_dir>/downloads/manual/``).

Pixels stay ``uint8`` on the device; :func:`to_pixels` turns a batch into
floats inside the compiled step, in one of four modes:

* ``float``      x / 255, in [0, 1];
* ``signed``     x / 127.5 - 1, in [-1, 1] (for a tanh decoder, and the bins of
  :func:`genjax.objectives.losses.discretized_logistic_log_likelihood`);
* ``threshold``  1[x / 255 > 0.5] (the binarization of seeds 000 and 002);
* ``stochastic`` a fresh Bernoulli(x / 255) draw each time it is called
  (each step of each epoch gets its own key).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import importlib.util
import logging
import os
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import prng
from genjax.data.preprocess import Preprocess
from genjax.errors import UsageError

PIXEL_MODES = ("float", "signed", "threshold", "stochastic")
UNIT_PIXEL_MODES = tuple(m for m in PIXEL_MODES if m != "signed")  # pixels in [0, 1] (sigmoid decoders)
# What each mode means, for printing beside every likelihood.
BINARIZATION = {
    "float": "none (float pixels x/255 in [0, 1])",
    "signed": "none (signed pixels x/127.5 - 1 in [-1, 1])",
    "threshold": "threshold (x/255 > 0.5)",
    "stochastic": "stochastic (Bernoulli(x/255) each step; test set: one fixed draw, key 0)",
}
REPO_ROOT = Path(__file__).resolve().parents[2]  # genjax/data/__init__.py -> the checkout
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "tensorflow_datasets"
DECODE_BATCH = 256  # records asked of the source at once (__getitems__)
NO_PREPROCESS = Preprocess()  # the images as stored

# Seed 003's CelebA VAE takes 64x64 RGB images (its example feeds torch.rand(16, 3, 64, 64)) but
# loads no CelebA and names no transform. We take the usual PyTorch CelebA VAE recipe,
# Compose([CenterCrop(148), Resize(64)]) (e.g. AntixK/PyTorch-VAE): the 148x148 centre of the
# 218x178 aligned face (rows 35..182, columns 15..162), bilinear-antialiased down to 64x64.
CELEB_A_64 = Preprocess(crop=148, size=64)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What genjax needs to know about a TFDS dataset."""

    image_shape: tuple[int, int, int]  # as stored, before any preprocessing
    label_key: str | None  # None: the dataset has no class label
    splits: tuple[str, str]  # (train, test)
    preprocess: Preprocess = NO_PREPROCESS  # what load_split applies unless told otherwise
    manual_from: str | None = None  # where to fetch the source files by hand, if TFDS's download fails


DATASETS = {
    "mnist": DatasetSpec((28, 28, 1), "label", ("train", "test")),
    "cifar10": DatasetSpec((32, 32, 3), "label", ("train", "test")),
    "celeb_a": DatasetSpec((218, 178, 3), None, ("train", "test"), CELEB_A_64,
                           manual_from="http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"),
}


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """A split in memory: ``images`` uint8 (N, H, W, C), ``labels`` int32 (N,) or None."""

    images: np.ndarray
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.images)

    def where_label(self, labels: int | Sequence[int]) -> ImageSet:
        """A new set of the images whose label is one of ``labels`` (one class, or several),
        in their original order; e.g. one digit to train an anomaly detector on."""
        if self.labels is None:
            raise UsageError("this dataset has no class labels to select by")
        wanted = np.atleast_1d(np.asarray(labels))
        keep = np.isin(self.labels, wanted)
        if not keep.any():
            raise UsageError(
                f"no image has label {', '.join(map(str, wanted))}: "
                f"the labels are {', '.join(map(str, np.unique(self.labels)))}"
            )
        return ImageSet(self.images[keep], self.labels[keep])


def image_shape(name: str, preprocess: Preprocess | None = None) -> tuple[int, int, int]:
    """(H, W, C) of the images :func:`load_split` returns for ``name`` with ``preprocess``
    (None: the dataset's default, e.g. 64x64x3 for celeb_a)."""
    spec = _spec(name)
    return (spec.preprocess if preprocess is None else preprocess).output_shape(spec.image_shape)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """``--data-dir``, else ``$TFDS_DATA_DIR``, else ``../shared/tensorflow_datasets``
    beside the repository when it exists, else None (TFDS's default, downloading)."""
    if data_dir:
        return Path(data_dir).expanduser().resolve()
    if os.environ.get("TFDS_DATA_DIR"):
        return Path(os.environ["TFDS_DATA_DIR"]).expanduser().resolve()
    if SHARED_DATA_DIR.is_dir():
        return SHARED_DATA_DIR
    return None


def default_cache_dir() -> Path:
    """``$GENJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/genjax``, else ``~/.cache/genjax``."""
    if os.environ.get("GENJAX_CACHE_DIR"):
        return Path(os.environ["GENJAX_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "genjax"


def _tfds():
    logging.getLogger("absl").setLevel(logging.ERROR)  # silence "OpenCV is not installed"
    import tensorflow_datasets as tfds

    return tfds


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UsageError(
            f"unknown dataset {name!r}: choose one of {', '.join(sorted(DATASETS))}"
        )
    return DATASETS[name]


def _download_url(builder) -> str | None:
    """The builder's download address: its ``URL`` attribute, else the first
    ``http(s)://`` string constant of the module that defines it, else the
    dataset's homepage (usually the same host)."""
    url = getattr(builder, "URL", None)
    if isinstance(url, str) and url.startswith("http"):
        return url
    module = sys.modules.get(type(builder).__module__)
    for value in vars(module).values() if module else ():
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return getattr(builder.info, "homepage", None) or None


def _network_reachable(url: str | None, timeout: float = 5.0) -> bool:
    """Whether ``url``'s host answers on port 443 within ``timeout`` seconds (DNS included).

    ``GENJAX_OFFLINE=1`` says no without trying; behind a proxy (``HTTPS_PROXY``)
    or without a known address it says yes and lets TFDS try.
    """
    if os.environ.get("GENJAX_OFFLINE") == "1":
        return False
    host = urllib.parse.urlparse(url).hostname if url else None
    if not host or os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True

    def connect():
        socket.create_connection((host, 443), timeout=timeout).close()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(connect).result(timeout=timeout)
        return True
    except (OSError, concurrent.futures.TimeoutError):
        return False
    finally:
        pool.shutdown(wait=False)


def manual_dir(builder) -> Path:
    """Where TFDS looks for source files downloaded by hand: ``<data_dir>/downloads/manual``."""
    return Path(builder.data_dir_root) / "downloads" / "manual"


def manual_files(builder) -> list[str]:
    """The names TFDS accepts in :func:`manual_dir`: the file-name column of the builder's
    ``checksums.tsv`` (for celeb_a: img_align_celeba.zip, list_eval_partition.txt, ...)."""
    return sorted({info.filename for info in builder.url_infos.values() if info.filename})


def _manual_route(name: str, builder) -> str:
    """'' for a dataset TFDS downloads reliably, else how to fetch its files by hand."""
    site = _spec(name).manual_from
    if not site:
        return ""
    return (
        f"; or download {', '.join(manual_files(builder))} by hand from {site} (TFDS's own download "
        f"from Google Drive often fails on its quota) into {manual_dir(builder)}/, and the next run "
        f"prepares {name} from them (still with TensorFlow, but no network)"
    )


def prepare_dataset(name: str, data_dir: Path | None) -> None:
    """Download and prepare ``name`` into ``data_dir`` as array_record files.

    Needs TensorFlow (``pip install 'genjax-models[prepare]'``) and network, or
    for celeb_a the source files in :func:`manual_dir`. Raises
    :class:`UsageError` naming the fix when they are missing, within seconds
    (TFDS itself would retry the download for minutes).
    """
    spec = _spec(name)
    tfds = _tfds()
    builder = tfds.builder(name, data_dir=str(data_dir) if data_dir else None)
    where, manual = builder.data_dir, _manual_route(name, builder)
    if importlib.util.find_spec("tensorflow") is None:
        raise UsageError(
            f"{name} is not prepared in {where}, and preparing a download needs TensorFlow: "
            "run `pip install 'genjax-models[prepare]'` (or `pip install -e '.[prepare]'` in a "
            "checkout), or pass --data-dir DIR pointing at prepared TFDS data" + manual
        )
    by_hand = bool(spec.manual_from) and all((manual_dir(builder) / f).is_file() for f in manual_files(builder))
    if not by_hand and not _network_reachable(_download_url(builder)):
        raise UsageError(
            f"{name} is not prepared in {where} and its download site cannot be reached: "
            "connect to the internet, or pass --data-dir DIR (or set TFDS_DATA_DIR) "
            "pointing at prepared TFDS data" + manual
        )
    try:
        builder.download_and_prepare(file_format="array_record")
    except Exception as e:  # a quota page, a checksum mismatch, a dropped connection
        if not manual:
            raise
        raise UsageError(f"preparing {name} in {where} failed ({type(e).__name__}: {str(e)[:300]})" + manual) from e


def _cache_path(cache_dir: Path, name: str, split: str, builder, preprocess: Preprocess = NO_PREPROCESS) -> Path:
    """``<cache>/<name>/<version>/<split>[-<preprocess tag>]-<key>.npz``; the key hashes the
    prepared files (name, size, mtime) and the preprocessing. Without preprocessing it is
    the key of the earlier, preprocessing-free loader, so existing caches stay valid."""
    files = sorted(Path(builder.data_path).glob(f"*{split}*"))
    stamp = "|".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    tag = preprocess.tag
    key = hashlib.sha1(f"{builder.data_path}|{stamp}{'|' + tag if tag else ''}".encode()).hexdigest()[:12]
    return cache_dir / name / str(builder.version) / f"{split}-{tag + '-' if tag else ''}{key}.npz"


def decode_source(
    source,
    spec: DatasetSpec,
    preprocess: Preprocess = NO_PREPROCESS,
    batch_size: int = DECODE_BATCH,
    where: str = "the source",
) -> ImageSet:
    """Every record of ``source`` (``len`` and ``[i]``, and ``__getitems__`` if it has it)
    decoded into one preallocated uint8 array, ``batch_size`` records at a time, each
    image preprocessed as it arrives: peak memory is the result plus one batch of raw
    records, never a list of all records beside a stacked copy."""
    n = len(source)
    images = np.empty((n, *preprocess.output_shape(spec.image_shape)), np.uint8)
    labels = np.empty(n, np.int32) if spec.label_key else None
    get_many = getattr(source, "__getitems__", None)
    for start in range(0, n, batch_size):
        keys = list(range(start, min(start + batch_size, n)))
        records = get_many(keys) if get_many else [source[i] for i in keys]
        for i, record in zip(keys, records):
            image = np.asarray(record["image"])
            if image.shape != spec.image_shape:
                raise UsageError(f"{where}: record {i} has an image of shape {image.shape}, expected {spec.image_shape}")
            images[i] = preprocess(image)
            if labels is not None:
                labels[i] = record[spec.label_key]
    return ImageSet(images, labels)


def load_split(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: Path | None = None,
    preprocess: Preprocess | None = None,
) -> ImageSet:
    """One split of a TFDS image dataset, decoded once (with ``preprocess``; None: the
    dataset's default, see :data:`DATASETS`) and cached as ``.npz``."""
    spec = _spec(name)
    preprocess = spec.preprocess if preprocess is None else preprocess
    preprocess.output_shape(spec.image_shape)  # a crop too large fails before any decoding
    data_dir = resolve_data_dir(data_dir)
    tfds = _tfds()
    builder = tfds.builder(name, data_dir=str(data_dir) if data_dir else None)
    if not builder.is_prepared():
        prepare_dataset(name, data_dir)
    cache = _cache_path(cache_dir or default_cache_dir(), name, split, builder, preprocess)
    if cache.exists():
        with np.load(cache) as f:
            return ImageSet(f["images"], f["labels"] if "labels" in f else None)
    source = tfds.data_source(name, split=split, data_dir=str(data_dir) if data_dir else None, download=False)
    result = decode_source(source, spec, preprocess, where=f"{name}/{split}")
    arrays = {"images": result.images, **({"labels": result.labels} if result.labels is not None else {})}
    _save_npz_atomically(cache, **arrays)
    return result


def _save_npz_atomically(path: Path, **arrays) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:  # an unwritable cache only costs time
        logging.getLogger(__name__).warning("could not cache decoded arrays at %s: %s", path, e)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: Path | None = None,
    preprocess: Preprocess | None = None,
) -> tuple[ImageSet, ImageSet]:
    """(train, test) splits of ``name``, both with ``preprocess`` (see :func:`load_split`)."""
    train, test = _spec(name).splits
    return (load_split(name, train, data_dir, cache_dir, preprocess),
            load_split(name, test, data_dir, cache_dir, preprocess))


def check_pixel_mode(mode: str) -> str:
    if mode not in PIXEL_MODES:
        raise UsageError(f"unknown pixel mode {mode!r}: choose one of {', '.join(PIXEL_MODES)}")
    return mode


def to_pixels(images: jax.Array, mode: str, key: jax.Array | None = None) -> jax.Array:
    """uint8 images -> float32 pixels by ``mode`` (see the module docstring): in [0, 1],
    or in [-1, 1] for ``signed`` (exactly -1 + 2k/255 for the byte k)."""
    if mode == "signed":
        return images.astype(jnp.float32) / 127.5 - 1.0
    x = images.astype(jnp.float32) / 255.0
    if mode == "float":
        return x
    if mode == "threshold":
        return (x > 0.5).astype(jnp.float32)
    if mode == "stochastic":
        return prng.bernoulli(key, x).astype(jnp.float32)
    raise UsageError(f"unknown pixel mode {mode!r}: choose one of {', '.join(PIXEL_MODES)}")


def fixed_eval_pixels(images: np.ndarray, mode: str) -> jax.Array:
    """Test-set pixels for evaluation. ``stochastic`` becomes one fixed Bernoulli
    draw (key 0), so every run and every epoch is scored on the same binary set."""
    return to_pixels(jnp.asarray(images), mode, jax.random.key(0))


def is_binary(mode: str) -> bool:
    """Whether pixels in ``mode`` are {0, 1}, so a Bernoulli likelihood is a likelihood."""
    return mode in ("threshold", "stochastic")
