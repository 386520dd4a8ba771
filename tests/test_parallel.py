"""Data parallelism on 8 fake CPU devices (a subprocess with XLA_FLAGS), against the 1-device run."""

from __future__ import annotations

import pytest

from conftest import FAST, check_ok, read_history, read_metrics, run_cli


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path, seed002_one_epoch):
    proc = run_cli("--preset", "seed002", "--epochs", "1", "--out", tmp_path, *FAST, devices=8)
    check_ok(proc)
    m8, m1 = read_metrics(tmp_path), read_metrics(seed002_one_epoch)
    assert m8["devices"] == 8 and m1["devices"] == 1
    # Same batches, same keys: only the order of float reductions differs, so the totals agree
    # closely; the recon/KL split of the total drifts a little more over ~470 steps.
    scale = 1e-3 * m1["test_neg_elbo"]
    for key in ("test_neg_elbo", "test_nll_iwae", "test_loss"):
        assert m8[key] == pytest.approx(m1[key], rel=1e-3), key
    for key in ("test_recon", "test_kl"):
        assert abs(m8[key] - m1[key]) < scale, key
    h8, h1 = read_history(tmp_path), read_history(seed002_one_epoch)
    assert len(h8) == len(h1) == 1
    for key in ("train_loss", "test_neg_elbo"):
        assert float(h8[0][key]) == pytest.approx(float(h1[0][key]), rel=1e-3), key
    for key in ("train_recon", "train_kl"):
        assert abs(float(h8[0][key]) - float(h1[0][key])) < scale, key
    assert m8["test_nll_iwae"] <= m8["test_neg_elbo"]


def test_batch_size_not_divisible_by_the_devices_is_refused(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("--preset", "seed002", "--epochs", "1", "--batch-size", "100", "--out", out, *FAST, devices=8)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "divisible" in errors[0] and "8" in errors[0], proc.stderr
    assert not (out / "metrics.json").exists()
