"""Bad input to the CLI: exit status 2, one `error:` line, no traceback, no metrics.json."""

from __future__ import annotations

import time

import pytest

from conftest import FAST, run_cli

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
    assert not (out / "metrics.json").exists()


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
