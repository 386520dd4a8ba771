"""The MNIST digit classifier the evaluator scores samples with: trained once, cached, checked.

:func:`train` fits :class:`~genjax.models.digit_cnn.DigitCNN` with the library's
generic step (cross-entropy, Adam with a cosine-decayed learning rate) on the MNIST training split; :func:`save`
writes its parameters beside an ``info.json`` holding their SHA-256, the test
accuracy and the training settings; :func:`load` refuses parameters whose
checksum does not match and, when none are cached, says how to train them
(``python -m experiments.mnist_classifier``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import data
from genjax.devices import data_mesh, map_in_chunks, replicate
from genjax.errors import UsageError
from genjax.models.digit_cnn import DigitCNN
from genjax.objectives.losses import masked_mean
from genjax.runs import cli
from genjax.runs.files import write_bytes_atomic, write_json_atomic
from genjax.training.step import TrainState, epoch_key, fast_compiler_options, make_epoch, make_train_step, num_batches

TRAIN_COMMAND = "python -m experiments.mnist_classifier"
PARAMS_FILE, INFO_FILE = "params.msgpack", "info.json"
MIN_TEST_ACCURACY = 0.99  # the experiment refuses to save a weaker classifier


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    prng: str = "rbg"


def default_dir() -> Path:
    """Where the classifier is cached: ``<genjax cache>/mnist_classifier``
    (see :func:`genjax.data.default_cache_dir`)."""
    return data.default_cache_dir() / "mnist_classifier"


def cross_entropy_loss(model: DigitCNN):
    """The generic step's loss: mean over the batch's real examples of -log softmax(logits)[label]."""

    def loss_fn(params, model_state, batch, key, step):
        logits, _ = model.apply({"params": params}, data.to_pixels(batch["image"], "float"))
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        accuracy = masked_mean((jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32), batch)
        return masked_mean(nll, batch), (model_state, {"accuracy": accuracy})

    return loss_fn


@partial(jax.jit, static_argnames="chunk")
def apply(params, images: jax.Array, chunk: int = 500) -> tuple[jax.Array, jax.Array]:
    """(logits (N, 10), features (N, 128)) of ``images`` (N, 28, 28, 1) float in [0, 1],
    ``chunk`` images at a time (one compiled loop, bounded memory)."""
    model = DigitCNN()
    return map_in_chunks(lambda x: model.apply({"params": params}, x), images, chunk)


def accuracy(params, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of uint8 ``images`` whose predicted class is ``labels``."""
    logits, _ = apply(params, data.to_pixels(jnp.asarray(images), "float"))
    return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == labels))


def learning_rate(config: ClassifierConfig, steps_per_epoch: int) -> optax.Schedule:
    """Cosine decay from ``config.lr`` to 0 over the run: lr_t = lr (1 + cos(pi t / T)) / 2."""
    return optax.cosine_decay_schedule(config.lr, max(1, config.epochs * steps_per_epoch))


def init_params(seed: int = 0) -> dict:
    """Fresh DigitCNN parameters (also the template :func:`load` deserializes into)."""
    return jax.jit(DigitCNN().init)(jax.random.key(seed), jnp.zeros((1, 28, 28, 1)))["params"]


def train(config: ClassifierConfig, train_set: data.ImageSet, test_set: data.ImageSet,
          progress: bool = False, log=print) -> tuple[dict, float]:
    """(params, test accuracy) after ``config.epochs`` epochs on ``train_set``."""
    mesh = data_mesh()
    model = DigitCNN()
    key = jax.random.key(config.seed, impl=config.prng)
    init_key, state_key, run_key = jax.random.split(key, 3)
    params = jax.jit(model.init)(init_key, jnp.zeros((1, 28, 28, 1)))["params"]
    tx = optax.adam(learning_rate(config, num_batches(len(train_set), config.batch_size)))
    state = replicate(TrainState.create(params, tx, state_key), mesh)
    epoch_fn = make_epoch(make_train_step(cross_entropy_loss(model), tx), config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))
    train_data = replicate({"image": jnp.asarray(train_set.images), "label": jnp.asarray(train_set.labels)}, mesh)
    for epoch in range(config.epochs):
        state, steps = epoch_fn(state, train_data, epoch_key(run_key, epoch))
        if progress:
            log(f"epoch {epoch + 1}/{config.epochs}: train loss {float(np.mean(steps['loss'])):.4f}, "
                  f"accuracy {float(np.mean(steps['accuracy'])):.4f}")
    params = jax.device_get(state.params)
    return params, accuracy(params, test_set.images, test_set.labels)


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def save(directory: Path, params, test_accuracy: float, config: ClassifierConfig, **extra) -> Path:
    """Write ``params.msgpack`` and then ``info.json`` (its checksum, accuracy, settings
    and any ``extra`` JSON fields), each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = flax.serialization.to_bytes(params)
    write_bytes_atomic(directory / PARAMS_FILE, blob)
    info = {"model": "DigitCNN", "sha256": _sha256(blob), "test_accuracy": test_accuracy,
            "config": dataclasses.asdict(config), **extra}
    write_json_atomic(directory / INFO_FILE, info)
    return directory


DEFAULT_DIR_TEXT = "mnist_classifier in the genjax cache, $GENJAX_CACHE_DIR or ~/.cache/genjax"


def add_dir_flag(p) -> None:
    """``--classifier-dir``: where the cached classifier is (for every script that scores samples)."""
    p.add_argument("--classifier-dir", type=Path,
                   help=f"the evaluator's digit classifier, trained there on first use (default: {DEFAULT_DIR_TEXT})")


def train_and_save(directory: Path, config: ClassifierConfig = ClassifierConfig(), data_dir=None,
                   progress: bool = True, log=print) -> tuple[dict, float, float]:
    """Train the classifier on MNIST and save it into ``directory`` (refusing one below
    :data:`MIN_TEST_ACCURACY`): (params, test accuracy, seconds)."""
    train_set, test_set = data.load_dataset("mnist", data_dir)
    t0 = time.perf_counter()
    params, acc = train(config, train_set, test_set, progress=progress, log=log)
    seconds = round(time.perf_counter() - t0, 1)
    log(f"classifier test accuracy {acc:.4f} after {config.epochs} epochs ({seconds} s, {jax.default_backend()})")
    if acc < MIN_TEST_ACCURACY:
        raise UsageError(f"the classifier's test accuracy {acc:.4f} is below {MIN_TEST_ACCURACY}: nothing saved; "
                         f"train longer (`{TRAIN_COMMAND} --epochs N`) or with another --seed")
    save(directory, params, acc, config, train_seconds=seconds, backend=jax.default_backend(),
         machine=f"{platform.machine()}, {os.cpu_count()} CPUs")
    return params, acc, seconds


DEFAULT_CONFIG = ClassifierConfig()  # what load_or_train trains on first use (python -m experiments.mnist_classifier's)


def load_or_train(directory: Path | None = None, data_dir=None, config: ClassifierConfig | None = None,
                  progress: bool = True) -> tuple[dict, dict]:
    """(params, info) of the cached classifier (:func:`load`); trained and cached first when there
    is none yet (2-5 minutes on a 2-core CPU, a line per epoch and its test accuracy on stderr)."""
    directory = Path(directory) if directory else default_dir()
    if not ((directory / PARAMS_FILE).is_file() or (directory / INFO_FILE).is_file()):
        cli.check_writable(directory)

        def log(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        log(f"the digit classifier that scores samples is not trained yet: training it once into {directory} "
            "(2-5 minutes on a 2-core CPU)")
        train_and_save(directory, config or DEFAULT_CONFIG, data_dir, progress=progress, log=log)
    return load(directory)


def load(directory: Path | None = None) -> tuple[dict, dict]:
    """(params, info) of the cached classifier, after checking the parameters' checksum."""
    directory = Path(directory) if directory else default_dir()
    params_path, info_path = directory / PARAMS_FILE, directory / INFO_FILE
    if not (params_path.is_file() and info_path.is_file()):
        raise UsageError(f"the MNIST classifier that scores samples is not trained yet (nothing in {directory}): "
                         f"run `{TRAIN_COMMAND}` once (2-5 minutes on a 2-core CPU)")
    retrain = f"retrain it with `{TRAIN_COMMAND}`"
    blob = params_path.read_bytes()
    try:
        info = json.loads(info_path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{info_path} is not valid JSON (a partial or altered file): {retrain}")
    if not isinstance(info, dict) or _sha256(blob) != info.get("sha256"):
        raise UsageError(f"the classifier in {directory} does not match its checksum (a partial or altered file): "
                         f"{retrain}")
    try:
        params = flax.serialization.from_bytes(init_params(), blob)
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"the classifier in {directory} does not fit the DigitCNN ({e}): {retrain}")
    return params, info
