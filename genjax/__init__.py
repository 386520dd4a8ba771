"""genjax: classic image generative models as clean, fast, functional JAX/Flax code.

The public API, one recipe per model family (build, train, evaluate, sample, save/load)::

    import genjax
    vae = genjax.VAE.from_preset("seed002").fit(images, epochs=5)   # your uint8 or [0, 1] images
    samples = vae.sample(16, key=0)                                   # (16, H, W, C) in [0, 1]
    vae.save("my_vae"); same = genjax.load("my_vae")

* :class:`VAE` (MLP, convolutional, conditional; Bernoulli, MSE or discretized-logistic decoder),
  :class:`Autoencoder` (plain or denoising), :class:`PixelRNN` (exact likelihood, compiled
  sampler), :class:`GAN` (MLP GAN, DCGAN): each from a preset (``from_preset``) or a config;
* :func:`load`: the model of any run directory (every CLI script's ``--out``, ``fit(out=...)``,
  ``save``);
* :class:`Scorer`: the evaluator's sample-quality scores (FID, precision/recall, ...) on MNIST.

The pipeline underneath, one subpackage per stage: ``data`` -> ``models`` -> ``objectives`` (one
module per family) -> ``training`` (a pure step; its epoch, sharding and sweep wrappers) -> ``runs``
(checkpoints, resume, files, the CLI) -> ``evaluation`` (classifier, evaluator, plots) -> ``recipes``
(one per family) -> ``studies`` (experiments of several recipes); see docs/design.md.
"""

from genjax.evaluation.scorer import Scorer
from genjax.presets import AEConfig, GANConfig, PixelRNNConfig, VAEConfig
from genjax.recipes.autoencoder import Autoencoder
from genjax.recipes.gan import GAN
from genjax.recipes.load import load
from genjax.recipes.pixelrnn import PixelRNN
from genjax.recipes.vae import VAE

__version__ = "0.1.0"

__all__ = ["AEConfig", "Autoencoder", "GAN", "GANConfig", "PixelRNN", "PixelRNNConfig", "Scorer", "VAE", "VAEConfig",
           "__version__", "load"]
