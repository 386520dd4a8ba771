"""The run lifecycle every experiment shares: flags, run directory, resume, fit, metrics.json.

An experiment script holds only what is specific to its model (config, model,
loss, evaluation, pictures) and calls these pieces in order::

    parser = run.parser(__doc__, "python -m experiments.NAME", DEFAULT_OUT, PRESETS, "seed002")
    run.preset_flag(parser, "--hidden", PRESETS, type=..., help="...")   # model flags

    def experiment(args) -> dict:
        config = run.config_from_args(args, PRESETS)
        r = run.Run(args, config, resumable=("epochs", ...))
        ...                                                        # data, model, epoch_fn
        state, history = r.fit(state, epoch_fn, data, run_key, evaluate, steps_per_epoch)
        metrics = {**r.summary(history, mesh), ...}                # evaluation
        if r.writes_files: ...                                     # pictures, samples.npy
        return r.finish(metrics)                                   # metrics.json, written last

    if __name__ == "__main__":
        sys.exit(run.main(parser, experiment))

What :class:`Run` guarantees:

* a run directory never mixes two runs: a fresh run (no ``--resume``) empties
  the directory of an earlier genjax run first (marked by ``.genjax-run``) and
  refuses a non-empty directory that is not one;
* ``--resume`` continues only a checkpoint made with the same config (the
  ``resumable`` fields may change), with no fewer epochs than it holds, and whose
  step count matches its history;
* nothing is removed or written before every check has passed; a non-finite loss
  stops with one line and exit status 1, keeping the last good checkpoint;
* ``metrics.json`` is written last, atomically, by the main process only, so its
  presence means a finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from genjax import data
from genjax.devices import data_mesh, is_main_process, sync_processes
from genjax.errors import UsageError
from genjax.runs import checkpoint, cli
from genjax.runs.files import write_json_atomic
from genjax.runs.fit import fit

MARKER = ".genjax-run"  # marks a directory as a genjax run directory (safe to empty for a fresh run)


PRESET_HELP = ("named settings (architecture, loss, optimizer, pixels, epochs): seedNNN reproduces source notebook "
               "NNN of ../shared/seeds/, the others are genjax's own; the flags below override single settings")


def parser(doc: str, prog: str, default_out: Path, presets: dict, default_preset: str,
           aliases: tuple[str, ...] = ()) -> cli.Parser:
    """An argument parser with the flags every experiment shares; ``doc`` (the
    script's docstring) is its description, shown whole by ``--help``. ``aliases``
    are old names of ``--preset`` (e.g. ``--model``), accepted and not shown."""
    p = cli.Parser(prog=prog, description=doc.strip())
    p.add_argument("--preset", dest="preset", default=default_preset, choices=tuple(presets),
                   help=f"{PRESET_HELP} (default {default_preset})")
    for alias in aliases:
        p.add_argument(alias, dest="preset", choices=tuple(presets), help=argparse.SUPPRESS)
    preset_flag(p, "--epochs", presets, type=cli.non_negative_int("--epochs"), help="epochs in total")
    p.add_argument("--seed", type=cli.seed("--seed"), default=0,
                   help="random seed: the same seed gives the same numbers on the same backend (default 0)")
    p.add_argument("--out", type=Path, default=default_out, help=f"run directory (default {default_out})")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (--epochs may grow)")
    preset_flag(p, "--batch-size", presets, type=cli.positive_int("--batch-size"),
                help="images per step, split over all devices")
    preset_flag(p, "--lr", presets, type=cli.positive_float("--lr"), help="learning rate")
    cli.add_data_dir_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host run: call jax.distributed.initialize() (cluster settings from the environment)")
    return p


def preset_flag(p: argparse.ArgumentParser, flag: str, presets: dict, help: str, aliases: dict | None = None,
                **kwargs) -> None:
    """A flag overriding the config field of the same name; its help lists each preset's value.
    ``aliases``: old spellings, accepted and not shown, each with the argparse settings it takes
    (e.g. ``{"--recon": {"type": ...}}``)."""
    field = flag.lstrip("-").replace("-", "_")
    for alias, settings in (aliases or {}).items():
        p.add_argument(alias, dest=field, help=argparse.SUPPRESS, **settings)
    values = {name: getattr(preset, field) for name, preset in presets.items()}
    shown = {name: ",".join(map(str, v)) if isinstance(v, tuple) else "unset" if v is None else v
             for name, v in values.items()}
    if len(set(map(str, shown.values()))) == 1:
        default = f"default {next(iter(shown.values()))}"
    else:
        default = "default: the preset's, " + ", ".join(f"{n} {v}" for n, v in shown.items())
    p.add_argument(flag, help=f"{help} ({default})", **kwargs)


def config_from_args(args: argparse.Namespace, presets: dict):
    """The preset named by ``--preset`` with every flag that was given (not None)
    replacing the config field of the same name, and ``--seed``."""
    if args.preset not in presets:
        raise UsageError(f"unknown preset {args.preset!r}: choose one of {', '.join(presets)}")
    base = presets[args.preset]
    fields = {f.name for f in dataclasses.fields(base)} - {"preset"}
    overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return dataclasses.replace(base, **overrides)


def as_json(obj) -> Any:
    """``obj`` (a config dataclass or plain data) as the JSON value it round-trips to."""
    return json.loads(json.dumps(dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj))


class Run:
    """One experiment run in one directory: preparing it, resuming, fitting, metrics.json."""

    def __init__(self, args: argparse.Namespace, config, resumable: tuple[str, ...] = ("epochs",)):
        self.t_start = time.perf_counter()
        self.config = config
        self.out = cli.check_writable(args.out)
        self.resume = args.resume
        self.progress = not args.no_progress
        self.resumable = tuple(resumable)
        self.writes_files = is_main_process()
        self._prepared = False  # the run directory is checked (and emptied, for a fresh run) once

    # -- the run directory -------------------------------------------------------------------

    def _start_fresh(self) -> None:
        """Empty ``out`` of an earlier genjax run and mark it as this run's (main process)."""
        if not self.writes_files:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        entries = [p for p in self.out.iterdir() if not p.name.startswith(".write-test-")]
        if entries and not (self.out / MARKER).exists():
            raise UsageError(f"--out {self.out} is not empty and holds no genjax run ({MARKER} is missing): "
                             "choose a new or empty directory")
        for p in entries:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        (self.out / MARKER).write_text(json.dumps({"config": as_json(self.config)}) + "\n")

    def _restore(self, ckpt: checkpoint.Checkpointer, state, steps_per_epoch: int):
        """(state, history) from the last checkpoint, after checking it fits this run."""
        meta = ckpt.read_meta()
        saved = {k: v for k, v in meta["config"].items() if k not in self.resumable}
        now = {k: v for k, v in as_json(self.config).items() if k not in self.resumable}
        if saved != now:
            diff = ", ".join(f"{k}: {saved.get(k)} -> {now.get(k)}" for k in now if saved.get(k) != now.get(k))
            raise UsageError(f"--resume with settings that differ from the checkpoint in {ckpt.directory} ({diff}); "
                             "rerun with the original flags, or drop --resume to start afresh")
        done = len(meta["history"])
        if self.config.epochs < done:
            raise UsageError(f"--resume --epochs {self.config.epochs}: the checkpoint in {ckpt.directory} has "
                             f"already trained {done} epochs; ask for {done} or more")
        state, meta = ckpt.restore(state)
        history = meta["history"]
        steps = int(jax.device_get(state.step))
        if [row["epoch"] for row in history] != list(range(1, done + 1)) or steps != done * steps_per_epoch:
            raise UsageError(f"the checkpoint in {ckpt.directory} is inconsistent ({steps} steps taken, history of "
                             f"{done} epochs of {steps_per_epoch} steps): drop --resume to start afresh")
        return state, history

    def fit(self, state, epoch_fn: Callable, data, run_key: jax.Array, evaluate: Callable,
            steps_per_epoch: int, name: str | None = None):
        """Train to ``config.epochs`` with :func:`genjax.runs.fit.fit`, checkpointing into
        ``out/checkpoints``; fresh or resumed as asked. Returns (state, history).

        A run that trains several programs one after another (a study's groups of
        models) gives each a ``name``: its checkpoints and ``history.csv`` go into
        ``out/name``, and each resumes from its own checkpoint."""
        where = self.out / name if name else self.out
        ckpt_dir = where / "checkpoints"
        ckpt = None
        if self.resume and ckpt_dir.is_dir():
            ckpt = checkpoint.Checkpointer(ckpt_dir)
            if ckpt.latest_epoch() is None:
                ckpt.close()
                ckpt = None
        history = []
        if ckpt is not None:
            state, history = self._restore(ckpt, state, steps_per_epoch)
            print(f"resuming {ckpt_dir} after epoch {len(history)}", file=sys.stderr)
            if self.writes_files:
                (self.out / "metrics.json").unlink(missing_ok=True)  # never a stale result beside a live run
        else:
            if self.resume:
                print(f"no checkpoint in {ckpt_dir}: starting from scratch", file=sys.stderr)
            if not self._prepared and not (self.resume and name and any(self.out.glob("*/checkpoints"))):
                self._start_fresh()
            if self.writes_files:
                where.mkdir(parents=True, exist_ok=True)
            sync_processes("genjax: run directory ready")
            ckpt = checkpoint.Checkpointer(ckpt_dir)
        self._prepared = True
        meta = {"config": as_json(self.config)}
        try:
            return fit(state, epoch_fn, data, run_key, self.config.epochs, evaluate, ckpt, meta, where,
                       history, self.progress)
        finally:
            ckpt.close()

    # -- results -----------------------------------------------------------------------------

    def summary(self, history: list[dict], mesh) -> dict:
        """The fields every metrics.json starts with."""
        times = [row["seconds"] for row in history]
        return {"preset": self.config.preset, "seed": self.config.seed, "epochs": self.config.epochs,
                "devices": mesh.size, "backend": jax.default_backend(),
                "seconds_per_epoch": float(np.median(times[1:] if len(times) > 1 else times)) if times else None,
                "first_epoch_seconds": times[0] if times else None}

    def finish(self, metrics: dict, history: list[dict]) -> dict:
        """Add the run's identity and history, and write ``metrics.json`` (last, atomically, main process)."""
        metrics = {**metrics, "out": str(self.out), "config": as_json(self.config), "history": history,
                   "wall_seconds": round(time.perf_counter() - self.t_start, 2)}
        if self.writes_files:
            write_json_atomic(self.out / "metrics.json", metrics)
        return metrics


def load_data(name: str, data_dir, batch_size: int):
    """(train, test, mesh): the dataset's splits in memory and a mesh over every device,
    after checking that ``batch_size`` can be split over the devices and fits the data."""
    train, test = data.load_dataset(name, data_dir)
    mesh = data_mesh()
    if batch_size % mesh.size:
        raise UsageError(f"--batch-size {batch_size} is not divisible by the {mesh.size} devices; "
                         f"choose a multiple of {mesh.size}")
    if batch_size > len(train):
        raise UsageError(f"--batch-size {batch_size} exceeds the {len(train)} training images")
    return train, test, mesh


def last_test_metrics(history: list[dict], evaluate: Callable, state) -> dict:
    """The final parameters' test metrics: the last epoch's (same parameters, same
    evaluation key), or a fresh evaluation when no epoch was trained."""
    if history:
        return {k.removeprefix("test_"): v for k, v in history[-1].items() if k.startswith("test_")}
    return {k: float(v) for k, v in jax.device_get(evaluate(state)).items()}


def main(p: argparse.ArgumentParser, experiment: Callable[[argparse.Namespace], dict], argv=None) -> int:
    """Parse the flags, start multi-host JAX if asked, run ``experiment(args)``, print
    its metrics; bad input exits 2 with one line, a stopped run 1."""

    def run_once(argv):
        args = p.parse_args(argv)
        if args.distributed:
            jax.distributed.initialize()
        metrics = experiment(args)
        print(json.dumps({k: v for k, v in metrics.items() if k not in ("config", "history")}, indent=2))
        print(f"results in {metrics['out']}")
        return 0

    return cli.run_main(run_once, argv)
