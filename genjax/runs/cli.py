"""Command-line plumbing shared by the experiment scripts.

Bad input becomes a :class:`~genjax.errors.UsageError`: one line on stderr that
names the fix, exit status 2, no traceback, nothing written (:func:`check_writable`
creates no directory: a run refused on bad input leaves none behind).
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
from pathlib import Path
from typing import Callable

from genjax.errors import RunStopped, UsageError


def add_data_dir_flag(p: argparse.ArgumentParser) -> None:
    """``--data-dir``, with the search order of :func:`genjax.data.resolve_data_dir` as its help."""
    p.add_argument("--data-dir", help="TFDS data dir (default $TFDS_DATA_DIR, else ../shared/tensorflow_datasets "
                                      "beside the repository, else TFDS's ~/tensorflow_datasets)")


class Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as a UsageError instead of its usage dump,
    and shows the description (the script's docstring) as written."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        words = message.split()  # `--values -1,2` reads "argument --values: expected one argument"
        if message.endswith(": expected one argument") and len(words) == 5 and words[1].startswith("--"):
            message += f" (a value that starts with '-' goes after '=': {words[1][:-1]}=-1)"
        raise UsageError(f"{message} (see `{self.prog} --help`)")


MAX_SEED = 2**32 - 1


def _number(kind: type, name: str, low, inclusive: bool = True, high=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {text!r}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number, got {text!r}")
        if value < low or (not inclusive and value == low):
            bound = f"at least {low}" if inclusive else f"greater than {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{name} must be at most {high}, got {text}")
        return value

    return parse


def seed(name: str):
    """A seed: an integer in [0, 2**32). A JAX key holds 32 bits of it; larger or negative
    seeds would silently alias others (``key(2**32) == key(0)``) or fail deep inside JAX."""
    return _number(int, name, 0, high=MAX_SEED)


def positive_int(name: str):
    return _number(int, name, 1)


def non_negative_int(name: str):
    return _number(int, name, 0)


def positive_float(name: str):
    return _number(float, name, 0.0, inclusive=False)


def non_negative_float(name: str):
    return _number(float, name, 0.0)


def widths(name: str):
    def parse(text):
        try:
            values = tuple(int(w) for w in text.split(","))
        except ValueError:
            values = ()
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(f"{name} must be comma-separated positive widths like 200,200, got {text!r}")
        return values

    return parse


def check_writable(out: Path) -> Path:
    """Prove that ``out`` can be written, before any work, creating nothing: a probe file is
    written and removed in ``out`` or, where ``out`` does not exist yet, in its nearest existing
    folder. The run creates ``out`` when it starts writing (:class:`genjax.runs.run.Run`), so a run
    refused before that leaves no directory behind."""
    out = Path(out).expanduser().resolve()
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"cannot write to --out {out}: {existing} is a file, not a directory; choose a directory")
    try:
        probe = existing / f".write-test-{socket.gethostname()}-{os.getpid()}"  # one per process
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to --out {out}: {e.strerror or e}; choose a directory you can write")
    return out


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call ``main``; a UsageError prints one line and returns 2, a RunStopped one line and 1;
    XLA running out of memory (sizes too large for this machine) one line and 2."""
    try:
        return main(argv)
    except (UsageError, RunStopped) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    except Exception as e:
        if type(e).__name__ not in ("JaxRuntimeError", "XlaRuntimeError") or "RESOURCE_EXHAUSTED" not in str(e):
            raise
        print(f"error: out of memory ({str(e).splitlines()[0][:200]}): choose a smaller model, --batch-size or "
              "--num-samples", file=sys.stderr)
        return 2


def script(doc: str, prog: str, add_flags: Callable, run: Callable) -> tuple[Parser, Callable]:
    """(parser, main(argv)) of a script that is not a training run: ``doc`` its --help text,
    ``add_flags(parser)`` its flags, ``run(args) -> exit code`` what it does with them."""
    parser = Parser(prog=prog, description=doc.strip())
    add_flags(parser)
    return parser, lambda argv=None: run(parser.parse_args(argv))

