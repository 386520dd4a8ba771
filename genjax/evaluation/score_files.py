"""Scoring sample files against MNIST, with the floors beside them (``python -m experiments.score_samples``):
the evaluator of :mod:`genjax.evaluation.evaluator` through one :class:`~genjax.evaluation.scorer.Scorer`,
as a table or one JSON object per file."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from genjax import data
from genjax.evaluation import classifier, evaluator
from genjax.evaluation.scorer import Scorer
from genjax.runs import cli


def add_flags(p: argparse.ArgumentParser) -> None:
    """The files, --json, --pixels, --data-dir, --classifier-dir and --seed."""
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="samples.npy files to score")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per file and line instead of the table (no reference rows)")
    p.add_argument("--pixels", choices=data.UNIT_PIXEL_MODES, default="float",
                   help="how the real MNIST references are turned into pixels: use the pixel model the "
                        "generator was trained on (threshold for the PixelRNN and threshold-binarized VAEs, "
                        "stochastic for VAEs trained on Bernoulli draws, float for greyscale; default float)")
    cli.add_data_dir_flag(p)
    classifier.add_dir_flag(p)
    p.add_argument("--seed", type=cli.seed("--seed"), default=0, help="seed of the reference rows' draws (default 0)")


def score_files(args: argparse.Namespace) -> int:
    """Check every file, then score each against the references in ``--pixels``: the table (the
    floors first, at the sample count scored) or one JSON line per file."""
    samples = [(str(f), evaluator.load_samples(f)) for f in args.files]  # every file checked before any work
    scorer = Scorer(args.classifier_dir, data_dir=args.data_dir)
    train, test = data.load_dataset("mnist", args.data_dir)
    scorer = scorer.with_reference(train.images, test.images)
    info, reference = scorer.classifier_info, scorer.reference_for(args.pixels)
    n = min(evaluator.REFERENCE_ROWS, *(len(x) for _, x in samples))  # the floors at the sample count scored
    rows = [] if args.json else evaluator.reference_rows(scorer.params, reference, args.seed, n)
    for name, x in samples:
        t0 = time.perf_counter()
        s = scorer.score(x, args.pixels)
        s["seconds"] = round(time.perf_counter() - t0, 2)
        if args.json:
            print(json.dumps({"file": name, **s}), flush=True)
        rows.append((name, s))
    if not args.json:
        where = args.classifier_dir or classifier.default_dir()
        print(f"features: DigitCNN in {where} (test accuracy {info['test_accuracy']:.4f}); FID, precision, recall "
              f"(k = {reference.k}) against the {len(test)} test images; memorization ratio: median distance to the "
              f"nearest of the {len(train)} training images over the test set's")
        print(f"references: MNIST in pixels {data.BINARIZATION[args.pixels]} (--pixels {args.pixels})")
        print(evaluator.format_table(rows))
        for name, s in rows:
            if s["note"]:
                print(f"note: {name}: {s['note']}")
    return 0


def cli_script(doc: str, prog: str):
    """(parser, main) of the scoring script."""
    return cli.script(doc, prog, add_flags, score_files)


__all__ = ["add_flags", "cli_script", "score_files"]
