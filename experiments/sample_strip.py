"""Samples of trained models side by side, one row each: any run directories, any families.

    python -m experiments.sample_strip runs/vae runs/pixelrnn_h128 runs/gan --out samples.png
    python -m experiments.sample_strip runs/* --per-row 16 --seed 1

Each RUN_DIR is the --out directory of a finished run of any script (or of a model's
fit(out=...) or save() in Python); genjax.load rebuilds its model, and --per-row samples are
drawn from the key of --seed: a conditional VAE's digits 0, 1, 2, ... in turn; an autoencoder's
decodes of z ~ the Gaussian fitted to its codes of 10,000 training images. Writes the PNG --out.
"""

from __future__ import annotations

import sys

from genjax.runs import cli
from genjax.studies import sample_strip

parser, main = sample_strip.cli_script(__doc__, "python -m experiments.sample_strip")


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
