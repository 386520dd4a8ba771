"""Seed 000's PixelRNN on threshold-binarized MNIST: exact test NLL, samples, completions.

    python -m experiments.pixelrnn_mnist --hidden 128 --epochs 4 --out runs/pixelrnn_h128   # CPU-sized
    python -m experiments.pixelrnn_mnist                    # the seed's run: hidden 512, 10 epochs
    python -m experiments.pixelrnn_mnist --epochs 12 --resume

An LSTM reads the 784 pixels in raster order (START token first) and predicts
each pixel from the ones before it, so log p(x) is exact. Writes into --out:
metrics.json (last; test NLL in nats per image and bits/dim), history.csv,
nll.png, samples.npy (N x 28 x 28 in {0, 1}), samples.png (8x8),
completions.png (the bottom half of test digits sampled from their top half)
and checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.presets import PIXELRNN_PRESETS as PRESETS
from genjax.recipes import pixelrnn as pixelrnn_recipe
from genjax.runs import run

parser, experiment = pixelrnn_recipe.cli_script(__doc__, "python -m experiments.pixelrnn_mnist",
                                                Path("runs/pixelrnn_mnist"), PRESETS, "seed000")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
