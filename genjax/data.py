"""Image datasets from tensorflow-datasets, as in-memory uint8 arrays.

Reading goes through ``tfds.data_source`` (array_record files; no TensorFlow
needed). Decoded arrays are cached as ``.npz`` so a second run starts in
seconds. Preparing a fresh download needs TensorFlow (the ``prepare`` extra)
and network; without them the user hears so at once, with the fix.

Pixels stay ``uint8`` on the device; :func:`to_pixels` turns a batch into
floats inside the compiled step, in one of three modes:

* ``float``      x / 255, in [0, 1];
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
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import prng
from genjax.errors import UsageError

PIXEL_MODES = ("float", "threshold", "stochastic")
# What each mode means, for printing beside every likelihood.
BINARIZATION = {
    "float": "none (float pixels x/255 in [0, 1])",
    "threshold": "threshold (x/255 > 0.5)",
    "stochastic": "stochastic (Bernoulli(x/255) each step; test set: one fixed draw, key 0)",
}
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "tensorflow_datasets"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What genjax needs to know about a TFDS dataset."""

    image_shape: tuple[int, int, int]
    label_key: str | None  # None: the dataset has no class label
    splits: tuple[str, str]  # (train, test)


DATASETS = {
    "mnist": DatasetSpec((28, 28, 1), "label", ("train", "test")),
    "cifar10": DatasetSpec((32, 32, 3), "label", ("train", "test")),
    "celeb_a": DatasetSpec((218, 178, 3), None, ("train", "test")),
}


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """A split in memory: ``images`` uint8 (N, H, W, C), ``labels`` int32 (N,) or None."""

    images: np.ndarray
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.images)


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


def prepare_dataset(name: str, data_dir: Path | None) -> None:
    """Download and prepare ``name`` into ``data_dir`` as array_record files.

    Needs TensorFlow (``pip install 'genjax-models[prepare]'``) and network.
    Raises :class:`UsageError` naming the fix when either is missing, within
    seconds (TFDS itself would retry the download for minutes).
    """
    _spec(name)
    tfds = _tfds()
    builder = tfds.builder(name, data_dir=str(data_dir) if data_dir else None)
    where = builder.data_dir
    if importlib.util.find_spec("tensorflow") is None:
        raise UsageError(
            f"{name} is not prepared in {where}, and preparing a download needs TensorFlow: "
            "run `pip install 'genjax-models[prepare]'` (or `pip install -e '.[prepare]'` in a "
            "checkout), or pass --data-dir DIR pointing at prepared TFDS data"
        )
    if not _network_reachable(_download_url(builder)):
        raise UsageError(
            f"{name} is not prepared in {where} and its download site cannot be reached: "
            "connect to the internet, or pass --data-dir DIR (or set TFDS_DATA_DIR) "
            "pointing at prepared TFDS data"
        )
    builder.download_and_prepare(file_format="array_record")


def _cache_path(cache_dir: Path, name: str, split: str, builder) -> Path:
    files = sorted(Path(builder.data_path).glob(f"*{split}*"))
    stamp = "|".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    key = hashlib.sha1(f"{builder.data_path}|{stamp}".encode()).hexdigest()[:12]
    return cache_dir / name / str(builder.version) / f"{split}-{key}.npz"


def load_split(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: Path | None = None,
) -> ImageSet:
    """One split of a TFDS image dataset, decoded once and cached as ``.npz``."""
    spec = _spec(name)
    data_dir = resolve_data_dir(data_dir)
    tfds = _tfds()
    builder = tfds.builder(name, data_dir=str(data_dir) if data_dir else None)
    if not builder.is_prepared():
        prepare_dataset(name, data_dir)
    cache = _cache_path(cache_dir or default_cache_dir(), name, split, builder)
    if cache.exists():
        with np.load(cache) as f:
            return ImageSet(f["images"], f["labels"] if "labels" in f else None)
    source = tfds.data_source(name, split=split, data_dir=str(data_dir) if data_dir else None, download=False)
    records = [source[i] for i in range(len(source))]
    images = np.stack([r["image"] for r in records]).astype(np.uint8)
    if images.shape[1:] != spec.image_shape:
        raise UsageError(f"{name}/{split}: images of shape {images.shape[1:]}, expected {spec.image_shape}")
    labels = None
    if spec.label_key:
        labels = np.asarray([r[spec.label_key] for r in records], dtype=np.int32)
    _save_npz_atomically(cache, images=images, **({"labels": labels} if labels is not None else {}))
    return ImageSet(images, labels)


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
    name: str, data_dir: str | os.PathLike | None = None, cache_dir: Path | None = None
) -> tuple[ImageSet, ImageSet]:
    """(train, test) splits of ``name``."""
    train, test = _spec(name).splits
    return load_split(name, train, data_dir, cache_dir), load_split(name, test, data_dir, cache_dir)


def check_pixel_mode(mode: str) -> str:
    if mode not in PIXEL_MODES:
        raise UsageError(f"unknown pixel mode {mode!r}: choose one of {', '.join(PIXEL_MODES)}")
    return mode


def to_pixels(images: jax.Array, mode: str, key: jax.Array | None = None) -> jax.Array:
    """uint8 images -> float32 pixels in [0, 1] by ``mode`` (see the module docstring)."""
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
