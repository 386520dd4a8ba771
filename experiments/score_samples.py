"""Score MNIST samples: FID, class entropy, classifier score, precision/recall, memorization.

    python -m experiments.score_samples runs/vae_mnist/samples.npy runs/gan/samples.npy
    python -m experiments.score_samples runs/*/samples.npy --json     # one JSON object per file
    python -m experiments.score_samples runs/pixelrnn/samples.npy --pixels threshold   # a binary model

Each FILE is a .npy array of N x 28 x 28 (or N x 28 x 28 x 1, or N x 784) images
with values in [0, 1]. Everything is measured in the feature space of the digit
classifier trained by `python -m experiments.mnist_classifier` (see
genjax/evaluation/evaluator.py for the definitions): FID, precision and recall against the
10,000 MNIST test images, memorization against the 60,000 training images.
The real images are put in the pixel model the generator was trained on
(--pixels: float x/255 for greyscale models, threshold or stochastic for binary
ones, such as the PixelRNN), so a binary model is not charged for binarizing.
The table starts with three reference rows in the same pixels: 10,000 training
images against the test set (a perfect generator's floor; memorization against
the 50,000 training images not picked, about 1), one half of the test set
against the other (5,000 each) and 10,000 uniform-noise images (a ceiling).
FID needs N >= 10,000 for a headline number.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from genjax import data
from genjax.evaluation import classifier, evaluator
from genjax.evaluation.scorer import Scorer
from genjax.runs import cli


def build_parser() -> cli.Parser:
    p = cli.Parser(prog="python -m experiments.score_samples", description=__doc__.strip())
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        print(f"features: DigitCNN in {args.classifier_dir or classifier.default_dir()} (test accuracy {info['test_accuracy']:.4f}); FID, "
              f"precision, recall (k = {reference.k}) against the {len(test)} test images; memorization ratio: "
              f"median distance to the nearest of the {len(train)} training images over the test set's")
        print(f"references: MNIST in pixels {data.BINARIZATION[args.pixels]} (--pixels {args.pixels})")
        print(evaluator.format_table(rows))
        for name, s in rows:
            if s["note"]:
                print(f"note: {name}: {s['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
