"""Seed 001's uses of an autoencoder, on MNIST: denoising, and anomaly detection by reconstruction error.

    python -m experiments.ae_applications                          # both studies, 10 epochs a model
    python -m experiments.ae_applications --tasks anomaly --digits 0,1,7
    python -m experiments.ae_applications --tasks denoising --noise 0.2,0.4

Denoising: the AE (--ae-preset, default seed003: 784-400-20, --likelihood mse) is trained as a plain AE
and as a denoising AE at each --noise level sigma (input clip(x + sigma eps, 0, 1), a fresh
eps each step; target the clean x), all as one vmapped program (genjax.training.sweep) on the same
batches. At each level the test set is corrupted once (one fixed draw per image) and the
table gives the PSNR (dB, mean over images) of the noisy input, of the plain AE's output
and of that level's DAE's output, and the DAE's PSNR on clean input; its first row (sigma 0)
is the plain AE on clean input.

Anomaly detection: for each --digits d, an AE (--ae) and a VAE (--vae, default seed003:
784-400-20, BCE) are trained on the training images of d alone, then every test image is
scored by its reconstruction error, the per-pixel MSE of sigmoid(decode(code(x))) (the
VAE's code is its posterior mean); the table gives the ROC AUC of that score for the
other digits (anomalies) against d. Every model trains --epochs epochs (default 10; a
digit's ~6,000 images are ~47 steps an epoch) with the same seed and batch size; --lr is
the AE's, the VAE keeps its preset's.

Writes into --out: metrics.json (last), denoising.md/.csv, denoising.png (per level:
noisy input, plain AE, DAE, under the clean digits), anomaly.md/.csv, anomaly_ae.png
and anomaly_vae.png (error histograms, normal digit against the rest), and each model's
history.csv and checkpoints in denoising/, ae_digit_D/ and vae_digit_D/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.runs import run
from genjax.studies import ae_applications

parser, experiment = ae_applications.cli_script(__doc__, "python -m experiments.ae_applications",
                                                Path("runs/ae_applications"))


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
