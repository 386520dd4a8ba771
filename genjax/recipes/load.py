"""``genjax.load(run_dir)``: the trained model of whatever family wrote a run directory.

A run directory (every CLI script's ``--out``, ``Recipe.fit(out=...)``, ``Recipe.save``) holds a
model card, ``model.json``: the family, its config, the image shape and the checkpoint folder.
The model is rebuilt from the card and its last checkpoint restored: the parameters are the
trained ones, bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

from genjax.recipes.autoencoder import Autoencoder
from genjax.recipes.base import MODEL_CARD, Recipe, config_from_json
from genjax.recipes.gan import GAN
from genjax.recipes.pixelrnn import PixelRNN
from genjax.recipes.vae import VAE

FAMILIES: dict[str, type[Recipe]] = {cls.family: cls for cls in (VAE, Autoencoder, PixelRNN, GAN)}


def load(run_dir: str | Path) -> Recipe:
    """The trained model in ``run_dir`` (a :class:`~genjax.VAE`, :class:`~genjax.Autoencoder`,
    :class:`~genjax.PixelRNN` or :class:`~genjax.GAN`), ready to sample and evaluate."""
    run_dir = Path(run_dir)
    card_path = run_dir / MODEL_CARD
    if not card_path.is_file():
        if not run_dir.is_dir():
            raise ValueError(f"{run_dir} is not a directory: pass the --out directory of a run")
        raise ValueError(f"{run_dir} holds no {MODEL_CARD}: not a finished genjax run, or one written before "
                         "genjax saved model cards (rerun it, or resume it with --resume)")
    try:
        card = json.loads(card_path.read_text())
        family = FAMILIES[card["family"]]
        config = config_from_json(family.config_class, card["config"])
        recipe = family(config, card["image_shape"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{card_path} is not a model card this genjax can read ({e})") from None
    checkpoints = (run_dir / card.get("checkpoints", "checkpoints")).resolve()
    if not checkpoints.is_dir():  # checked here: orbax would create it
        raise ValueError(f"{run_dir} has a {MODEL_CARD} but no {checkpoints.name}/: the run never finished an epoch")
    return recipe.restore(checkpoints)


__all__ = ["FAMILIES", "load"]
