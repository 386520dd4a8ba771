"""Train the MNIST digit classifier that the sample-quality evaluator scores with.

    python -m experiments.mnist_classifier                 # 3 epochs, into the cache the evaluator reads
    python -m experiments.mnist_classifier --epochs 5 --out DIR

Fits the DigitCNN (genjax/models/digit_cnn.py) on the 60,000 MNIST training
images with the library's generic step (cross-entropy, Adam), prints its test
accuracy and saves params.msgpack + info.json (SHA-256 of the parameters, test
accuracy, settings) into --out, only if the test accuracy is at least 0.99.
Then score samples with `python -m experiments.score_samples runs/NAME/samples.npy`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from genjax.evaluation import classifier
from genjax.runs import cli


def build_parser() -> cli.Parser:
    p = cli.Parser(prog="python -m experiments.mnist_classifier", description=__doc__.strip())
    defaults = classifier.ClassifierConfig()
    p.add_argument("--epochs", type=cli.non_negative_int("--epochs"), default=defaults.epochs,
                   help=f"epochs over the training set (default {defaults.epochs})")
    p.add_argument("--seed", type=cli.seed("--seed"), default=defaults.seed, help=f"random seed (default {defaults.seed})")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where to save it (default: {classifier.DEFAULT_DIR_TEXT}, where the evaluator looks)")
    cli.add_data_dir_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no per-epoch lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = cli.check_writable(args.out or classifier.default_dir())
    config = classifier.ClassifierConfig(epochs=args.epochs, seed=args.seed)
    _, accuracy, seconds = classifier.train_and_save(out, config, args.data_dir, progress=not args.no_progress)
    print(json.dumps({"out": str(out), "test_accuracy": accuracy, "train_seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
