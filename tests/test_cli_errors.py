"""Bad input to the CLI: exit status 2, one `error:` line, no traceback, nothing left behind
(no metrics.json, and no directory the run created)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAST, REPO_ROOT, broken_classifier_dir, cli_env, run_cli
from genjax.errors import RunStopped, UsageError

# Each case would train one short epoch if it were (wrongly) accepted.
BAD_ARGS = {
    "unknown preset": ["--preset", "seed999"],
    "unknown flag": ["--no-such-flag"],
    "negative epochs": ["--epochs", "-1"],
    "zero batch size": ["--batch-size", "0"],
    "zero iwae k": ["--iwae-k", "0"],
    "lr not a number": ["--lr", "abc"],
    "lr nan": ["--lr", "nan"],
    "negative lr": ["--lr", "-0.1"],
    "unknown pixel mode": ["--pixels", "bogus"],
    "zero latent dim": ["--latent-dim", "0"],
    "bad hidden widths": ["--hidden", "200,0"],
    "seed not an int": ["--seed", "x"],
    "batch larger than the training set": ["--batch-size", "60128"],
}


def _assert_usage_error(proc, out, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert not out.exists()  # it did not exist before the run


@pytest.mark.parametrize("args", BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_bad_flags_exit_2(tmp_path, args):
    out = tmp_path / "out"
    proc = run_cli(*args, "--epochs", "1", "--out", out, *FAST) if "--epochs" not in args else run_cli(
        *args, "--out", out, *FAST)
    _assert_usage_error(proc, out)


@pytest.mark.parametrize("args", [["--lr", "inf"], ["--beta", "inf"]], ids=["lr inf", "beta inf"])
def test_infinite_hyperparameters_exit_2(tmp_path, args):
    # An infinite learning rate or KL weight can only produce a non-finite loss.
    out = tmp_path / "out"
    proc = run_cli("--preset", "seed002", *args, "--epochs", "1", "--out", out, *FAST)
    _assert_usage_error(proc, out, args[0])


def test_out_below_a_regular_file_exits_2(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a directory")
    out = blocker / "sub"
    proc = run_cli("--epochs", "1", "--out", out, *FAST)
    _assert_usage_error(proc, out, "--out")
    assert blocker.read_text() == "a file, not a directory"


def test_empty_data_dir_without_network_exits_2_quickly(tmp_path):
    empty, out = tmp_path / "empty", tmp_path / "out"
    empty.mkdir()
    t0 = time.perf_counter()
    proc = run_cli("--epochs", "1", "--data-dir", empty, "--out", out, *FAST, timeout=120, offline=True)
    assert time.perf_counter() - t0 < 30
    _assert_usage_error(proc, out, "--data-dir")


# -- every script, in process: bad input refused before any training, nothing left behind --------

def call(module: str, *argv) -> int:
    """``python -m experiments.MODULE ARGV``, in this process (its exit status)."""
    from genjax.runs import cli, run

    script = importlib.import_module(f"experiments.{module}")
    argv = [str(a) for a in argv]
    if hasattr(script, "experiment"):
        return run.main(script.parser, script.experiment, argv)
    return cli.run_main(script.main, argv)


def assert_refused(capsys, code: int, *needles) -> str:
    """Exit status 2 and exactly one line on stderr, ``error: ...`` holding each of ``needles``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "goes after '='" not in lines[0] or "expected one argument" in lines[0], lines[0]
    return lines[0]


# (script, flags, a word the one line must hold). --out is NEW/out under a fresh tmp dir: after
# the refusal neither NEW nor anything in it may exist. "EMPTY" is an empty --data-dir.
SCRIPT_CASES = {
    "vae_mnist seed -1": ("vae_mnist", ["--seed", "-1"], "--seed"),
    "vae_mnist seed 2**64": ("vae_mnist", ["--seed", str(2**64)], "--seed"),
    "vae_mnist seed 2**32 (would alias seed 0)": ("vae_mnist", ["--seed", str(2**32)], "--seed"),
    "vae_mnist batch > training set (after --out)": ("vae_mnist", ["--batch-size", "60001"], "--batch-size"),
    "vae_mnist data missing (after --out)": ("vae_mnist", ["--data-dir", "EMPTY"], "mnist is not prepared"),
    "vae_mnist beta nan": ("vae_mnist", ["--beta", "nan"], "--beta"),
    "conv_vae_mnist batch > training set": ("conv_vae_mnist", ["--batch-size", "60001"], "--batch-size"),
    "conv_vae_mnist latent 0": ("conv_vae_mnist", ["--latent-dim", "0"], "--latent-dim"),
    "cvae_mnist digit 10": ("cvae_mnist", ["--digit", "10"], "--digit"),
    "gan_mnist g-lr 0": ("gan_mnist", ["--g-lr", "0"], "--g-lr"),
    "gan_mnist broken classifier": ("gan_mnist", ["--classifier-dir", "BROKEN"], "classifier"),
    "pixelrnn_mnist temperature nan": ("pixelrnn_mnist", ["--temperature", "nan"], "--temperature"),
    "pixelrnn_mnist batch > training set (after --out)": ("pixelrnn_mnist", ["--batch-size", "60001"], "--batch-size"),
    "ae_mnist noise -1": ("ae_mnist", ["--noise", "-1"], "--noise"),
    "ae_applications repeated digits": ("ae_applications", ["--digits", "1,1"], "--digits"),
    "ae_applications batch > training set (after --out)": ("ae_applications", ["--batch-size", "60001"],
                                                            "--batch-size"),
    "ae_cifar10 noise inf": ("ae_cifar10", ["--noise", "inf"], "--noise"),
    "ae_cifar10 data missing (after --out)": ("ae_cifar10", ["--data-dir", "EMPTY"], "cifar10 is not prepared"),
    "vae_cifar10 pixels unfit for likelihood": ("vae_cifar10", ["--likelihood", "discretized_logistic",
                                                                "--pixels", "float"], "--pixels"),
    "vae_cifar10 data missing (after --out)": ("vae_cifar10", ["--data-dir", "EMPTY"], "cifar10 is not prepared"),
    "vae_celeba data missing (after --out)": ("vae_celeba", ["--data-dir", "EMPTY"], "celeb_a is not prepared"),
    "mnist_classifier seed -1": ("mnist_classifier", ["--seed", "-1"], "--seed"),
    "mnist_classifier data missing (after --out)": ("mnist_classifier", ["--data-dir", "EMPTY"],
                                                    "mnist is not prepared"),
}


@pytest.mark.parametrize("case", SCRIPT_CASES.values(), ids=SCRIPT_CASES.keys())
def test_bad_input_to_every_script_leaves_nothing_behind(tmp_path, capsys, monkeypatch, case):
    module, flags, needle = case
    monkeypatch.setenv("GENJAX_OFFLINE", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = broken_classifier_dir(tmp_path / "broken")
    flags = [empty if f == "EMPTY" else broken if f == "BROKEN" else f for f in flags]
    code = call(module, *flags, "--epochs", "1", "--no-progress", "--out", tmp_path / "new" / "out")
    assert_refused(capsys, code, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty"] and not any(empty.iterdir())


def test_score_samples_bad_input(tmp_path, capsys):
    assert_refused(capsys, call("score_samples", tmp_path / "x.npy", "--seed", "-5"), "--seed")
    assert_refused(capsys, call("score_samples", tmp_path / "missing.npy"), "no such file")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_run_keeps_a_directory_that_existed(tmp_path, capsys):
    """Only what the run created goes: an empty --out made by the user stays, and so does one
    holding the user's files (refused as not empty, untouched)."""
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert_refused(capsys, call("vae_mnist", "--batch-size", "60001", "--epochs", "1", "--out", empty), "--batch-size")
    assert empty.is_dir() and not any(empty.iterdir())
    assert_refused(capsys, call("vae_mnist", "--epochs", "1", "--out", full), "not empty")
    assert [p.name for p in full.iterdir()] == ["notes.txt"] and (full / "notes.txt").read_text() == "mine"


# -- creating nothing before the run starts (genjax.runs.cli), without JAX ----------------------------

def test_check_writable_creates_nothing_and_refuses_what_cannot_be_written(tmp_path):
    from genjax.runs import cli

    out = tmp_path / "a" / "b" / "out"
    assert cli.check_writable(out) == out.resolve()
    assert list(tmp_path.iterdir()) == []  # neither a/, a/b/ nor a probe file
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        cli.check_writable(tmp_path / "file" / "out")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(UsageError, match="cannot write"):
            cli.check_writable(locked / "out")


def test_a_run_stopped_by_itself_keeps_its_checkpoints(tmp_path, capsys):
    from genjax.runs import cli

    def main(argv):
        (tmp_path / "out" / "checkpoints").mkdir(parents=True)
        raise RunStopped("loss turned NaN: kept the last good checkpoint")

    assert cli.run_main(main) == 1
    assert (tmp_path / "out" / "checkpoints").is_dir()
    assert capsys.readouterr().err.startswith("error: loss turned NaN")


def test_out_of_memory_is_one_line(capsys):
    from genjax.runs import cli

    class JaxRuntimeError(RuntimeError):  # the name XLA's error has
        pass

    def main(argv):
        raise JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 80000000000 bytes.\nmore")

    assert_refused(capsys, cli.run_main(main), "out of memory", "80000000000 bytes")
    with pytest.raises(JaxRuntimeError):  # any other runtime error is a bug: its traceback stays
        cli.run_main(lambda argv: (_ for _ in ()).throw(JaxRuntimeError("INTERNAL: a bug")))


# -- the error paths need only the base install ---------------------------------------------------

def _base_install(where: Path) -> Path:
    """A folder of links to the installed distributions that ``pip install genjax-models`` (no extras)
    brings: pyproject's ``dependencies`` and, recursively, what each of them requires."""
    import importlib.metadata as metadata
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    todo, seen = [(Requirement(d), ("",)) for d in deps], set()
    where.mkdir()
    while todo:
        req, extras = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras):
            continue
        key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)  # PackageNotFoundError: a declared dependency is not installed
        todo += [(Requirement(r), ("", *req.extras)) for r in dist.requires or []]
        site = Path(dist.locate_file(""))  # the folder it is installed in
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if (site / top).exists() and not (where / top).exists():
                (where / top).symlink_to(site / top)
    return where


def test_error_paths_need_only_the_base_install(tmp_path):
    """Without the extras (no TensorFlow, no importlib_resources unless declared), a missing dataset
    is still one line: TFDS's CelebA builder reaches importlib_resources through etils, undeclared."""
    base = _base_install(tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()
    script = f"""
import sys
from genjax.runs import run
for module in ("vae_celeba", "vae_cifar10", "vae_mnist"):
    m = __import__("experiments." + module, fromlist=["x"])
    code = run.main(m.parser, m.experiment, ["--data-dir", {str(empty)!r}, "--out", {str(tmp_path / "out")!r}])
    assert code == 2, (module, code)
try:
    import tensorflow
except ImportError:
    print("no tensorflow")
"""
    env = cli_env(offline=True)
    env["PYTHONPATH"] = f"{REPO_ROOT}{os.pathsep}{base}"
    proc = subprocess.run([sys.executable, "-S", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("no tensorflow")  # the extras really are out of reach
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") and "is not prepared" in line for line in errors), errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "site"]
