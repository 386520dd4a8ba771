"""What every model family's recipe shares: build, train (in memory or into a run directory),
save, and the model card :func:`genjax.load` reads back.

A recipe is one model family's whole life cycle behind a small object: a frozen config
dataclass, the image shape it was built for and, once trained, its :class:`~genjax.training.step.TrainState`
and per-epoch history. A family supplies five pieces (its module, initial state, train step,
training data and test evaluation); this class turns them into the one compiled epoch and the
loop every entry point uses: the CLI scripts (``experiments/``), the benchmarks and the Python API.

Recipes are values: :meth:`Recipe.fit` returns a new, trained recipe and leaves the one it was
called on usable (the compiled epoch donates only a state it made itself).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Callable, ClassVar

import jax
import numpy as np
from numpy.typing import ArrayLike

from genjax import data, prng
from genjax.data import inputs
from genjax.devices import data_mesh, is_main_process, replicate
from genjax.errors import UsageError
from genjax.runs import run as run_lifecycle
from genjax.runs.checkpoint import Checkpointer
from genjax.runs.files import write_json_atomic
from genjax.runs.fit import fit as fit_epochs
from genjax.training.step import TrainState, fast_compiler_options, make_epoch, num_batches

MODEL_CARD = "model.json"  # family, config, image shape and checkpoint folder of a saved or trained model


def config_from_json(config_class: type, fields: dict):
    """A config dataclass from its JSON fields (lists back to tuples; unknown fields refused)."""
    known = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"{config_class.__name__} has no field {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return config_class(**values)


def write_model_card(directory: Path, family: str, config, image_shape, checkpoints: str = "checkpoints") -> None:
    """``directory/model.json``: what :func:`genjax.load` needs to rebuild the model."""
    write_json_atomic(Path(directory) / MODEL_CARD, {
        "family": family, "config": run_lifecycle.as_json(config),
        "image_shape": [int(n) for n in image_shape], "checkpoints": checkpoints})


@dataclasses.dataclass
class Prepared:
    """One recipe ready to train (:meth:`Recipe.prepare`)."""

    recipe: "Recipe"
    mesh: object
    state: TrainState
    epoch_fn: Callable  # epoch(state, train_data, key) -> (state, metrics); donates state
    train_data: dict
    run_key: jax.Array
    steps_per_epoch: int


class Recipe:
    """The shared part of every family's recipe (see the module docstring)."""

    family: ClassVar[str]
    config_class: ClassVar[type]
    presets: ClassVar[dict]
    default_preset: ClassVar[str]
    resumable: ClassVar[tuple[str, ...]] = ("epochs", "num_samples")  # fields a resumed run may change
    key_names: ClassVar[tuple[str, ...]] = ("init", "state", "eval", "draw")

    def __init__(self, config=None, image_shape: tuple[int, ...] | None = None, state: TrainState | None = None,
                 history: list[dict] | None = None, **fields):
        if config is None:
            config = self.presets[self.default_preset]
        if not isinstance(config, self.config_class):
            raise ValueError(f"config: expected a {self.config_class.__name__}, got {type(config).__name__}")
        try:
            self.config = dataclasses.replace(config, **fields) if fields else config
        except TypeError as e:
            names = ", ".join(f.name for f in dataclasses.fields(self.config_class))
            raise ValueError(f"{e}; the fields of {self.config_class.__name__} are {names}") from None
        self.image_shape = None if image_shape is None else tuple(int(n) for n in image_shape)
        self.state = state
        self.history = list(history or [])
        self._check_config()

    @classmethod
    def from_preset(cls, name: str | None = None, **fields):
        """The recipe of preset ``name`` (see ``presets``), with config ``fields`` replaced."""
        name = cls.default_preset if name is None else name
        if name not in cls.presets:
            raise ValueError(f"unknown {cls.__name__} preset {name!r}: choose one of {', '.join(cls.presets)}")
        return cls(cls.presets[name], **fields)

    def __repr__(self) -> str:
        trained = f"trained {len(self.history)} epochs" if self.state is not None else "untrained"
        return f"{type(self).__name__}({self.config.preset!r}, image_shape={self.image_shape}, {trained})"

    def _replace(self, **changes):
        new = object.__new__(type(self))
        new.__dict__.update({**self.__dict__, **changes})
        return new

    # -- what a family supplies ------------------------------------------------------------------

    def _check_config(self) -> None:
        """Refuse a config this family cannot build (``ValueError`` naming the field)."""

    def check_image_shape(self, shape: tuple[int, ...]) -> None:
        """Refuse images the architecture cannot take (``ValueError`` naming the fix)."""

    def init_state(self) -> TrainState:
        raise NotImplementedError

    def train_step(self, steps_per_epoch: int) -> Callable:
        raise NotImplementedError

    def train_data(self, train: data.ImageSet) -> dict:
        """The arrays the step reads per batch: ``{"image": uint8}`` (and labels where used)."""
        return {"image": train.images}

    def make_evaluate(self, test: data.ImageSet | None, mesh, steps_per_epoch: int = 1
                      ) -> Callable[[TrainState], dict]:
        """``evaluate(state) -> dict`` of test metrics (``{}`` without a test set); ``steps_per_epoch``
        tells the epoch from ``state.step`` (for metrics that change by epoch, e.g. a KL warm-up)."""
        return lambda state: {}

    def check_labels(self, images: np.ndarray, labels, name: str = "labels") -> np.ndarray | None:
        """The labels of ``images`` the family needs (None when it uses none)."""
        return None

    # -- shared ----------------------------------------------------------------------------------

    def keys(self) -> dict:
        """This run's keys from ``config.seed``: :func:`genjax.prng.run_keys` with the family's names."""
        return prng.run_keys(self.config.seed, self.config.prng, self.key_names)

    def with_image_shape(self, shape):
        """This recipe for images of ``shape`` (H, W, C), checked against the architecture."""
        shape = tuple(int(n) for n in shape)
        if self.image_shape is not None and self.image_shape != shape:
            raise ValueError(f"these images are {shape}, but the model was built for {self.image_shape}")
        self.check_image_shape(shape)
        return self._replace(image_shape=shape)

    @property
    def trained(self) -> bool:
        return self.state is not None

    def _need_state(self) -> TrainState:
        if self.state is None:
            raise ValueError(f"this {type(self).__name__} is not trained: call .fit(images) first, "
                             "or load a trained one with genjax.load(run_dir)")
        return self.state

    @property
    def params(self):
        """The trained parameters (a plain pytree)."""
        return self._need_state().params

    def image_set(self, images: ArrayLike, labels: ArrayLike | None = None, name: str = "images") -> data.ImageSet:
        """Checked user images (and labels) as an :class:`~genjax.data.ImageSet`."""
        x = inputs.as_images(images, name)
        return data.ImageSet(x, self.check_labels(x, labels, "labels" if name == "images" else f"{name}'s labels"))

    def fit(self, images: ArrayLike, labels: ArrayLike | None = None, *, epochs: int | None = None,
            test_images: ArrayLike | None = None, test_labels: ArrayLike | None = None,
            out: str | Path | None = None, resume: bool = False, progress: bool = True) -> Recipe:
        """Train from scratch (the config's seed) on ``images``: uint8 in [0, 255] or float in [0, 1],
        shaped (N, H, W) or (N, H, W, C). Returns the trained recipe; this one is left as it was.

        ``epochs`` replaces the config's. ``test_images`` (and ``test_labels``) are evaluated
        after each epoch (the ``history``). With ``out``, the run goes into that directory as the
        CLI's do: a checkpoint per epoch, ``history.csv`` and a model card, and ``resume=True``
        continues its last checkpoint (the same settings; ``epochs`` may grow)."""
        recipe = self if epochs is None else self._replace(config=dataclasses.replace(self.config, epochs=epochs))
        if recipe.config.epochs < 0:
            raise ValueError(f"epochs must be at least 0, got {recipe.config.epochs}")
        train = recipe.image_set(images, labels)
        test = None if test_images is None else recipe.image_set(test_images, test_labels, "test_images")
        run = None
        if out is not None:
            args = argparse.Namespace(out=Path(out), resume=resume, no_progress=not progress)
            run = run_lifecycle.Run(args, recipe.config, resumable=recipe.resumable)
        elif resume:
            raise ValueError("resume=True needs the run directory to resume: pass out=...")
        return recipe.train(train, test, run=run, progress=progress)

    def train(self, train: data.ImageSet, test: data.ImageSet | None = None, run=None, mesh=None,
              name: str | None = None, progress: bool = True, primary: bool = True,
              evaluate: Callable[[TrainState], dict] | None = None):
        """The one training path (the CLI scripts enter here with their :class:`genjax.runs.run.Run`):
        the initial state from the seed, the compiled epoch over ``mesh`` (every device by
        default), and :func:`genjax.runs.fit.fit`, checkpointed into ``run``'s directory when given
        (``name``: a subfolder, for a run that trains several models; ``primary``: its model card
        also at the run's top, for :func:`genjax.load`). ``evaluate`` replaces the family's test
        metrics (e.g. an anomaly detector's AUROC). Returns the trained recipe."""
        p = self.prepare(train, mesh)
        recipe, c, mesh = p.recipe, p.recipe.config, p.mesh
        evaluate = recipe.make_evaluate(test, mesh, p.steps_per_epoch) if evaluate is None else evaluate
        if run is None:
            state, history = fit_epochs(p.state, p.epoch_fn, p.train_data, p.run_key, c.epochs, evaluate,
                                        progress=progress)
        else:
            state, history = run.fit(p.state, p.epoch_fn, p.train_data, p.run_key, evaluate, p.steps_per_epoch,
                                     name=name)
            if run.writes_files:
                where = run.out / name if name else run.out
                write_model_card(where, recipe.family, c, recipe.image_shape)
                if name and primary:
                    write_model_card(run.out, recipe.family, c, recipe.image_shape, f"{name}/checkpoints")
        return recipe._replace(state=state, history=history)

    def place_data(self, train: data.ImageSet, mesh=None) -> tuple[Recipe, object, dict, int]:
        """(this recipe for ``train``'s image shape, the mesh, the training arrays on it, steps per
        epoch), after checking the batch size against the devices and the images."""
        mesh = data_mesh() if mesh is None else mesh
        recipe = self.with_image_shape(train.images.shape[1:])
        c = recipe.config
        if c.batch_size % mesh.size:
            raise UsageError(f"batch_size {c.batch_size} is not divisible by the {mesh.size} devices; "
                             f"choose a multiple of {mesh.size}")
        if c.batch_size > len(train):
            raise UsageError(f"batch_size {c.batch_size} exceeds the {len(train)} training images; "
                             "choose a smaller batch size")
        train_data = replicate({k: np.asarray(v) for k, v in recipe.train_data(train).items()}, mesh)
        return recipe, mesh, train_data, num_batches(len(train), c.batch_size)

    def prepare(self, train: data.ImageSet, mesh=None) -> Prepared:
        """Everything one compiled epoch needs, on ``mesh`` (every device by default): the initial
        state, the epoch (donating its state), the training arrays and the shuffling key. The
        benchmarks time this; :meth:`train` loops over it."""
        recipe, mesh, train_data, steps = self.place_data(train, mesh)
        epoch_fn = make_epoch(recipe.train_step(steps), recipe.config.batch_size, mesh,
                              compiler_options=fast_compiler_options(mesh))
        return Prepared(recipe, mesh, replicate(recipe.init_state(), mesh), epoch_fn, train_data,
                        recipe.keys()["run"], steps)

    def save(self, directory: str | Path) -> Path:
        """Write this trained model into ``directory`` (new or empty) so :func:`genjax.load` reads it
        back: its final state as a checkpoint, and the model card."""
        state = self._need_state()
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()):
            raise ValueError(f"{directory} is not empty: save into a new or empty directory")
        directory.mkdir(parents=True, exist_ok=True)
        config = run_lifecycle.as_json(self.config)
        if is_main_process():
            (directory / run_lifecycle.MARKER).write_text(json.dumps({"config": config}) + "\n")
        ckpt = Checkpointer(directory / "checkpoints", asynchronous=False)
        try:
            ckpt.save(max(1, len(self.history)), jax.device_get(state), {"config": config, "history": self.history})
        finally:
            ckpt.close()
        if is_main_process():
            write_model_card(directory, self.family, self.config, self.image_shape)
        return directory

    def restore(self, checkpoints: Path):
        """This recipe (image shape set) with the state of the last checkpoint in ``checkpoints``."""
        ckpt = Checkpointer(checkpoints)
        try:
            if ckpt.latest_epoch() is None:
                raise ValueError(f"{checkpoints} holds no checkpoint")
            state, meta = ckpt.restore(self.init_state())
        finally:
            ckpt.close()
        return self._replace(state=state, history=meta.get("history", []))


__all__ = ["MODEL_CARD", "Prepared", "Recipe", "config_from_json", "write_model_card"]
