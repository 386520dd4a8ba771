"""Samples of several trained models side by side (``python -m experiments.sample_strip``): each run
directory loaded with :func:`genjax.load`, whatever family wrote it, and one row of its samples drawn
from the same key. The picture at the top of the README is one."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genjax import data
from genjax.errors import UsageError
from genjax.evaluation import plots
from genjax.recipes.autoencoder import Autoencoder
from genjax.recipes.base import Recipe
from genjax.recipes.load import load
from genjax.runs import cli

FIT_CODES = 10_000  # training images whose codes an autoencoder's fitted Gaussian is taken from


def label(recipe: Recipe) -> str:
    """A row's name: the family (with its architecture where it has several) and the preset."""
    c = recipe.config
    if recipe.family == "pixelrnn":
        return f"PixelRNN, hidden {c.hidden}"
    if recipe.family == "vae":
        name = "CVAE" if c.num_classes else "VAE" if c.architecture == "mlp" else "conv VAE"
    elif recipe.family == "gan":
        name = "DCGAN" if c.model == "dcgan" else "GAN"
    else:
        name = "AE, fitted z"
    return name if c.preset.lower() == name.lower() else f"{name} {c.preset}"


def draw(recipe: Recipe, n: int, seed: int, data_dir: Path | None = None) -> np.ndarray:
    """``n`` samples (n, H, W, C) in [0, 1] of a trained recipe from the key of ``seed``: a conditional
    VAE's classes in turn; an autoencoder's decodes of z ~ the Gaussian fitted to its codes of
    :data:`FIT_CODES` training images of its dataset (from N(0, I) it samples badly)."""
    if isinstance(recipe, Autoencoder):
        train, _ = data.load_dataset(recipe.config.dataset, data_dir)
        return recipe.sample(n, seed, fitted_to=train.images[:FIT_CODES])
    return recipe.sample(n, seed)


def loaded(run_dirs: list[Path]) -> list[Recipe]:
    """Every run directory as its trained model; the first that is not a finished run as a UsageError."""
    models = []
    for d in run_dirs:
        try:
            models.append(load(d))
        except ValueError as e:
            raise UsageError(str(e)) from None
    return models


def add_flags(p: argparse.ArgumentParser) -> None:
    """The run directories, --out, --per-row, --seed, --data-dir."""
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="the --out directories of finished runs")
    p.add_argument("--out", type=Path, default=Path("samples.png"), help="the PNG to write (default samples.png)")
    p.add_argument("--per-row", type=cli.positive_int("--per-row"), default=10, help="samples per model (default 10)")
    p.add_argument("--seed", type=cli.seed("--seed"), default=0, help="the samples' random seed (default 0)")
    cli.add_data_dir_flag(p)


def cli_run(args: argparse.Namespace) -> int:
    """Load every run, draw ``--per-row`` samples of each and write the picture."""
    if args.out.suffix.lower() != ".png" or args.out.is_dir():
        raise UsageError(f"--out {args.out}: name a .png file to write, e.g. --out samples.png")
    cli.check_writable(args.out.parent)
    models = loaded(args.runs)
    rows = [(label(m), draw(m, args.per_row, args.seed, args.data_dir)) for m in models]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plots.save_labelled_rows(args.out, rows, f"{args.per_row} samples of each model, seed {args.seed}")
    print(f"wrote {args.out}")
    return 0


def cli_script(doc: str, prog: str):
    """(parser, main) of the sample-strip script."""
    return cli.script(doc, prog, add_flags, cli_run)


__all__ = ["add_flags", "cli_run", "cli_script", "draw", "label", "loaded"]
