"""Kill-safety of every model family: ``kill -9`` mid-epoch and mid-checkpoint-write, then ``--resume``.

Each family's CLI runs in a subprocess on TFDS's mocked records (a few thousand images at most, so an
epoch takes a fraction of a second and the test stays in the slow tier's budget; see tfds_mocks.py),
decoded into a cache of the test's own. One run goes straight to the end. Another, in a second
directory, is killed with SIGKILL twice and resumed:

1. mid-epoch: as soon as the first checkpoint is complete on disk (``checkpoints/1``, or the
   family's ``NAME/checkpoints/1``), while epoch 2 trains;
2. mid-checkpoint-write: resumed with ``--resume``, and killed the moment orbax's temporary step
   directory (``STEP.orbax-checkpoint-tmp``) appears, before it is renamed to ``STEP`` (orbax
   writes each step there first; the window lasts about 0.1 s, polled every 0.5 ms);

then resumed to the end. Its metrics.json (numbers, without timing fields) and every history.csv
(without the ``seconds`` column) must equal the straight run's exactly, and every sample file too.
``test_a_hand_made_unfinished_checkpoint_is_skipped_on_resume`` builds the state a kill during
the write can leave (a step's temporary directory with a truncated file inside) by hand, and
``test_kills_in_the_first_write_and_at_random_moments_resume_exactly`` kills the VAE and the AE (two
models, one after the other) in their very first checkpoint write and then at seeded random moments.

The runs of one test share a JAX compilation cache (the same compiled programs, so the same
numbers; it makes each run after the first about twice as fast).
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, TESTS_DIR, cli_env, numbers_only, read_metrics

TMP_MARK = ".orbax-checkpoint-tmp"

# ``python -c RUNNER MODULE N ARGS``: ``python -m experiments.MODULE ARGS`` with every TFDS split
# mocked as N deterministic records (record i is the same in every process and, in TFDS's mock, in
# every split): the first N/2 are the training set, the last N/2 the test set, so that no test image
# is a training image (the evaluator's memorization check divides by test-to-train distances).
RUNNER = f"""
import importlib, sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from tfds_mocks import mock_tfds
from genjax import data
from genjax.runs import run
load_dataset = data.load_dataset
def halves(*args, **kwargs):
    train, test = load_dataset(*args, **kwargs)
    h = len(train) // 2
    part = lambda s, i: data.ImageSet(s.images[i], None if s.labels is None else s.labels[i])
    return part(train, slice(None, h)), part(test, slice(h, None))
data.load_dataset = halves
module, n, *argv = sys.argv[1:]
experiment = importlib.import_module("experiments." + module)
with mock_tfds(num_examples=int(n)):
    sys.exit(run.main(experiment.parser, experiment.experiment, argv))
"""


@pytest.fixture(scope="module")
def untrained_classifier(tmp_path_factory) -> Path:
    """A classifier directory holding the DigitCNN's initial parameters: the scores it gives are
    meaningless but deterministic, which is all an exact comparison needs (and costs no training)."""
    from genjax.evaluation import classifier

    directory = tmp_path_factory.mktemp("classifier")
    return classifier.save(directory, classifier.init_params(0), 0.0, classifier.ClassifierConfig())


class Family:
    def __init__(self, module: str, num_examples: int, *args):
        self.module, self.num_examples, self.args = module, num_examples, tuple(map(str, args))

    def command(self, out: Path, tmp: Path, *extra) -> list[str]:
        return [sys.executable, "-c", RUNNER, self.module, str(self.num_examples), *self.args,
                "--out", str(out), "--data-dir", str(tmp / "tfds"), "--no-progress", *extra]


def _env(tmp: Path) -> dict:
    env = cli_env()
    env["GENJAX_CACHE_DIR"] = str(tmp / "cache")  # the mocked records never meet the real MNIST cache
    # XLA's compiled programs, kept for the test's later runs (the same executables: 12 s a run -> 5 s).
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def checkpoint_dirs(out: Path) -> list[Path]:
    """``out/checkpoints`` and every ``out/NAME/checkpoints`` (ae/, vae/, sweep/, group_G/)."""
    return [d for d in (out / "checkpoints", *out.glob("*/checkpoints")) if d.is_dir()]


def entries(out: Path) -> list[Path]:
    found = []
    for d in checkpoint_dirs(out):
        try:
            found += list(d.iterdir())
        except FileNotFoundError:
            pass
    return found


def complete_steps(out: Path) -> dict[str, list[int]]:
    return {str(d.relative_to(out)): sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())
            for d in checkpoint_dirs(out)}


def unfinished(out: Path) -> list[Path]:
    return [p for p in entries(out) if TMP_MARK in p.name]


def run_to_end(cmd: list[str], tmp: Path, timeout: float = 300) -> None:
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(tmp), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"


def kill_when(cmd: list[str], tmp: Path, moment, what: str, timeout: float = 300) -> None:
    """Start ``cmd``, poll (every 0.5 ms) until ``moment()`` holds, then SIGKILL it."""
    log = tmp / "killed.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(tmp), stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + timeout
    try:
        while not moment():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout} s")
            time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended by itself (exit {proc.returncode}) before {what}"


def histories(out: Path) -> dict[str, list[dict]]:
    """Every history.csv of a run (its own and its models' NAME/history.csv), without ``seconds``."""
    found = {}
    for path in sorted([*out.glob("history.csv"), *out.glob("*/history.csv")]):
        with open(path, newline="") as f:
            found[str(path.relative_to(out))] = [{k: v for k, v in row.items() if k != "seconds"}
                                                for row in csv.DictReader(f)]
    return found


def without_timings(obj):
    """``obj`` (metrics.json) without timing fields: conftest's TIMING_KEYS and any other ``*seconds``
    (the PixelRNN's ``sampling_seconds``), at any depth."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in numbers_only(obj).items() if not k.endswith("seconds")}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def assert_same_results(resumed: Path, straight: Path) -> None:
    assert without_timings(read_metrics(resumed)) == without_timings(read_metrics(straight))
    assert histories(resumed) == histories(straight) and histories(straight)
    npys = sorted(p.relative_to(straight) for p in straight.rglob("*.npy"))
    assert npys == sorted(p.relative_to(resumed) for p in resumed.rglob("*.npy"))
    for name in npys:
        np.testing.assert_array_equal(np.load(resumed / name), np.load(straight / name), err_msg=str(name))


def check_kill_safety(family: Family, tmp: Path) -> None:
    straight, killed = tmp / "straight", tmp / "killed"
    run_to_end(family.command(straight, tmp), tmp)

    # 1. mid-epoch: the first checkpoint is complete, epoch 2 is training.
    kill_when(family.command(killed, tmp), tmp, lambda: any(p.name == "1" for p in entries(killed)),
              "the first checkpoint")
    assert not (killed / "metrics.json").exists()
    first = complete_steps(killed)
    assert any(steps and max(steps) < 3 for steps in first.values()), first  # interrupted before the end

    # 2. mid-checkpoint-write: resumed, and killed while orbax writes a step (before its rename).
    kill_when(family.command(killed, tmp, "--resume"), tmp, lambda: bool(unfinished(killed)),
              "a checkpoint being written")
    assert not (killed / "metrics.json").exists()
    left = unfinished(killed)
    assert left, "the kill came after the step's rename: the write window was missed"

    # 3. resumed to the end: the straight run's numbers, exactly.
    run_to_end(family.command(killed, tmp, "--resume"), tmp)
    assert_same_results(killed, straight)


MNIST_VAE = ("--epochs", "3", "--iwae-k", "10", "--num-samples", "100")


@pytest.mark.slow
def test_vae_survives_kills(tmp_path):
    check_kill_safety(Family("vae_mnist", 4000, *MNIST_VAE), tmp_path)


@pytest.mark.slow
def test_conv_vae_with_batchnorm_survives_kills(tmp_path):
    # seed 003's CelebA VAE (BatchNorm in encoder and decoder) on 16 mocked faces, resized to 64x64.
    check_kill_safety(Family("vae_celeba", 16, "--epochs", "3", "--batch-size", "8", "--iwae-k", "4",
                             "--num-samples", "16"), tmp_path)


@pytest.mark.slow
def test_cvae_survives_kills(tmp_path, untrained_classifier):
    check_kill_safety(Family("cvae_mnist", 4000, *MNIST_VAE, "--classifier-dir", untrained_classifier), tmp_path)


@pytest.mark.slow
def test_ae_survives_kills(tmp_path, untrained_classifier):
    # An AE and then its VAE, each checkpointed in its own folder (ae/, vae/).
    check_kill_safety(Family("ae_mnist", 2000, "--preset", "seed003", "--epochs", "3", "--num-samples", "100",
                             "--classifier-dir", untrained_classifier), tmp_path)


@pytest.mark.slow
def test_gan_survives_kills(tmp_path, untrained_classifier):
    check_kill_safety(Family("gan_mnist", 4000, "--epochs", "3", "--num-samples", "100",
                             "--classifier-dir", untrained_classifier), tmp_path)


@pytest.mark.slow
def test_pixelrnn_survives_kills(tmp_path):
    check_kill_safety(Family("pixelrnn_mnist", 256, "--hidden", "16", "--epochs", "3", "--num-samples", "4"), tmp_path)


@pytest.mark.slow
def test_k_model_sweep_survives_kills(tmp_path):
    # Two beta-VAEs vmapped into one program, checkpointed together in sweep/.
    check_kill_safety(Family("ablations", 4000, "beta", "--values=0.5,1", *MNIST_VAE, "--no-score"), tmp_path)


@pytest.mark.slow
def test_a_hand_made_unfinished_checkpoint_is_skipped_on_resume(tmp_path):
    """What a kill in the write leaves, built by hand: epoch 2's temporary directory, complete but for
    a truncated file, beside epoch 1's checkpoint. --resume continues from epoch 1 and ends where the
    straight run ends."""
    family = Family("vae_mnist", 2000, *MNIST_VAE)
    straight, out = tmp_path / "straight", tmp_path / "out"
    run_to_end(family.command(straight, tmp_path), tmp_path)
    run_to_end(family.command(out, tmp_path, "--epochs", "1"), tmp_path)
    ckpts = out / "checkpoints"
    fake = ckpts / f"2{TMP_MARK}"
    shutil.copytree(ckpts / "1", fake)
    files = sorted((p for p in fake.rglob("*") if p.is_file() and p.stat().st_size > 0), key=lambda p: -p.stat().st_size)
    with open(files[0], "r+b") as f:  # the largest file (the parameters) half written
        f.truncate(files[0].stat().st_size // 2)
    (out / "metrics.json").unlink()
    run_to_end(family.command(out, tmp_path, "--resume"), tmp_path)
    assert_same_results(out, straight)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vae", "ae"])
def test_kills_in_the_first_write_and_at_random_moments_resume_exactly(name, tmp_path, untrained_classifier):
    """A kill in the very first checkpoint's write (nothing complete on disk yet), then three kills
    at random moments (seeded: a fresh start, the data, an epoch, a write, the scores or the plots),
    each followed by --resume; the last --resume ends where the straight run ends. The AE run trains
    two models one after another (ae/, then vae/), so its kills also fall between them."""
    family = {"vae": Family("vae_mnist", 4000, *MNIST_VAE),
              "ae": Family("ae_mnist", 2000, "--preset", "seed003", "--epochs", "3", "--num-samples", "100",
                           "--classifier-dir", untrained_classifier)}[name]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    t0 = time.monotonic()
    run_to_end(family.command(straight, tmp_path), tmp_path)
    wall = time.monotonic() - t0  # compiling included: the later runs find XLA's programs cached

    kill_when(family.command(killed, tmp_path), tmp_path, lambda: bool(unfinished(killed)), "the first checkpoint's write")
    assert not any(complete_steps(killed).values()) and unfinished(killed)

    rng = random.Random(0)
    for _ in range(3):
        with open(tmp_path / "killed.log", "w") as stderr:
            proc = subprocess.Popen(family.command(killed, tmp_path, "--resume"), cwd=REPO_ROOT, env=_env(tmp_path),
                                    stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            proc.wait(timeout=rng.uniform(0.2, 0.7) * wall)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        # killed, or ended by itself (then the next --resume finds every epoch done and only rescores)
        assert proc.returncode in (0, -signal.SIGKILL), (tmp_path / "killed.log").read_text()[-3000:]

    run_to_end(family.command(killed, tmp_path, "--resume"), tmp_path)
    assert_same_results(killed, straight)
