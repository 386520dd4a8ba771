"""Shared helpers: running the experiment CLI as a subprocess, and shared runs; the PyTorch
comparisons (marked ``torch``) skipped where PyTorch is not installed.

MNIST is read from the default data dir (../shared/tensorflow_datasets beside the
repository) and the default decoded-array cache, so decoding happens once per
machine; every CLI run writes into a pytest tmp directory.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # the existing tests import fake_mnist_sources by name
    sys.path.insert(0, str(TESTS_DIR))

# Keep every CLI run short: few importance samples, few prior samples, no bar.
FAST = ("--iwae-k", "10", "--num-samples", "100", "--no-progress")
# Fields that legitimately differ between otherwise identical runs.
TIMING_KEYS = {"seconds", "seconds_per_epoch", "first_epoch_seconds", "iwae_seconds", "wall_seconds", "out"}


def cli_env(devices: int | None = None, offline: bool = False) -> dict:
    env = dict(os.environ)
    if offline:
        env["GENJAX_OFFLINE"] = "1"  # act as if there were no network, even where there is
    env.pop("XLA_FLAGS", None)
    if devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        env["JAX_PLATFORMS"] = "cpu"  # fake devices are host (CPU) devices
    return env


def run_cli(*args, devices: int | None = None, timeout: float = 300, offline: bool = False,
            module: str = "experiments.vae_mnist") -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` from the repository root (by default the VAE experiment)."""
    cmd = [sys.executable, "-m", module, *map(str, args)]
    env = cli_env(devices, offline)
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def script_json_on_devices(script: str, devices: int, timeout: float = 600) -> dict:
    """Run ``python -c script`` with ``devices`` fake CPU devices; its last stdout line, parsed as JSON."""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=cli_env(devices),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def in_fresh_process(function: str, *args, timeout: float = 300):
    """``function(*args)`` in a new Python process of this interpreter, its result through JSON;
    ``function`` is ``"module:name"``, the module importable from tests/ or the repository root.
    For work that must not share the test process (tests/torch_side.py says why)."""
    script = ("import importlib, json, sys; module, name = sys.argv[1].split(':'); "
              "print(json.dumps(getattr(importlib.import_module(module), name)(*json.loads(sys.argv[2]))))")
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", script, function, json.dumps(args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    check_ok(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pytest_collection_modifyitems(config, items):
    """Tests marked ``torch`` compare against PyTorch, which the library does not need: skipped without it."""
    if importlib.util.find_spec("torch") is None:
        skip = pytest.mark.skip(reason="compares against PyTorch, not installed (CI installs a CPU build)")
        for item in items:
            if item.get_closest_marker("torch"):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_triton_in_the_test_process():
    """Importing triton where TensorFlow is loaded, as it is in the suite's process, is a segmentation
    fault (issue 30): PyTorch work that imports it (``torch.utils.flop_counter``, ``torch.compile``)
    runs through :func:`in_fresh_process`. A test run on its own, without TensorFlow, fails here."""
    already = "triton" in sys.modules
    yield
    assert already or "triton" not in sys.modules, \
        "the test imported triton (issue 30): run its PyTorch part through in_fresh_process"


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def read_metrics(out: Path) -> dict:
    return json.loads((Path(out) / "metrics.json").read_text())


def read_history(out: Path) -> list[dict]:
    with open(Path(out) / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def flag_help(text: str, flag: str) -> str:
    """The help of ``flag`` in ``--help`` output (whitespace collapsed)."""
    options = " ".join(text.split()).split("options:", 1)[1]
    return options.split(f" {flag} ", 1)[1].split(" --")[0]


def numbers_only(row: dict) -> dict:
    """A history row or metrics dict without timing fields (also inside its ``history``)."""
    clean = {k: v for k, v in row.items() if k not in TIMING_KEYS}
    if "history" in clean:
        clean["history"] = [numbers_only(r) for r in clean["history"]]
    return clean


@pytest.fixture(scope="session")
def seed002_two_epochs(tmp_path_factory) -> Path:
    """``--preset seed002 --epochs 2`` uninterrupted, 1 device (shared by several tests; do not modify)."""
    out = tmp_path_factory.mktemp("seed002_e2")
    check_ok(run_cli("--preset", "seed002", "--epochs", "2", "--out", out, *FAST))
    return out


@pytest.fixture(scope="session")
def seed002_one_epoch(tmp_path_factory) -> Path:
    """``--preset seed002 --epochs 1``, 1 device (shared; do not modify)."""
    out = tmp_path_factory.mktemp("seed002_e1")
    check_ok(run_cli("--preset", "seed002", "--epochs", "1", "--out", out, *FAST))
    return out


@pytest.fixture(scope="session")
def mnist():
    """(train, test) MNIST from the default data dir (decoded once per machine, then cached)."""
    from genjax import data

    return data.load_dataset("mnist")


@pytest.fixture(scope="session")
def quick_classifier(tmp_path_factory, mnist):
    """(directory, params, test accuracy): the evaluator's DigitCNN trained for 1 epoch on 12,000
    training images (about 97% accurate; the real one is `python -m experiments.mnist_classifier`)."""
    from genjax import data
    from genjax.evaluation import classifier

    train, test = mnist
    config = classifier.ClassifierConfig(epochs=1, batch_size=64)
    params, accuracy = classifier.train(config, data.ImageSet(train.images[:12000], train.labels[:12000]), test)
    return classifier.save(tmp_path_factory.mktemp("classifier"), params, accuracy, config), params, accuracy


def check_load_reproduces(out: Path, family: type, samples_file: str | Path, draw, **sample_kwargs) -> None:
    """``genjax.load(out)`` gives the run's trained model: of ``family``, and drawing from the
    run's own key (``draw(loaded)``) reproduces the samples the run saved in ``samples_file``."""
    import genjax

    model = genjax.load(out)
    assert type(model) is family and model.trained
    saved = np.load(out / samples_file)
    again = model.sample(len(saved), draw(model), **sample_kwargs)
    np.testing.assert_array_equal(again.reshape(saved.shape), saved)


def broken_classifier_dir(where: Path) -> Path:
    """A classifier directory whose files do not check out (a partial or altered cache)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "params.msgpack").write_bytes(b"not a classifier")
    (where / "info.json").write_text("{")
    return where
