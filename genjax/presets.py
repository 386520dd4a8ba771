"""Run configurations: one frozen dataclass, and the seeds' settings as presets.

A preset reproduces one PyTorch notebook exactly (architecture, activation,
loss, optimizer, learning rate, pixels, epochs, batch size); command-line flags
override single fields with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses

import optax

from genjax.errors import UsageError


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    preset: str
    hidden: tuple[int, ...]
    latent_dim: int
    activation: str  # relu | leaky_relu | gelu | tanh
    likelihood: str  # bernoulli | mse
    optimizer: str  # adam | adamw
    lr: float
    pixels: str  # float | threshold | stochastic
    epochs: int
    batch_size: int = 128
    beta: float = 1.0
    kl_warmup_epochs: int = 0
    dataset: str = "mnist"
    seed: int = 0
    iwae_k: int = 1000
    num_samples: int = 10000
    interpolation: str = "linear"  # linear | slerp
    # JAX PRNG: "rbg" (XLA's RngBitGenerator) is markedly cheaper per step on the CPU than the
    # default threefry; both are deterministic for a given seed and backend.
    prng: str = "rbg"


PRESETS = {
    # Seed 000: 784-400-20, GELU, sigmoid decoder, MSE(sum) + KL, AdamW 1e-3, float pixels.
    "seed000": VAEConfig("seed000", (400,), 20, "gelu", "mse", "adamw", 1e-3, "float", 10),
    # Seed 002: 784-200-200-20, LeakyReLU(0.2), Bernoulli decoder, BCE + KL, Adam 1e-3, x > 0.5.
    "seed002": VAEConfig("seed002", (200, 200), 20, "leaky_relu", "bernoulli", "adam", 1e-3, "threshold", 20),
    # Seed 003: 784-400-20, ReLU, BCE + KL, Adam 1e-3, float pixels (ToTensor, no binarization).
    "seed003": VAEConfig("seed003", (400,), 20, "relu", "bernoulli", "adam", 1e-3, "float", 10),
}


def get_preset(name: str) -> VAEConfig:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def make_optimizer(name: str, lr: float, b1: float = 0.9) -> optax.GradientTransformation:
    """PyTorch's defaults: Adam(betas=(b1, 0.999), eps=1e-8), b1 = 0.9 unless given (DCGAN: 0.5);
    AdamW adds weight_decay=0.01."""
    if name == "adam":
        return optax.adam(lr, b1=b1, b2=0.999, eps=1e-8)
    if name == "adamw":
        return optax.adamw(lr, b1=b1, b2=0.999, eps=1e-8, weight_decay=0.01)
    raise UsageError(f"unknown optimizer {name!r}: choose adam or adamw")


@dataclasses.dataclass(frozen=True)
class PixelRNNConfig:
    """The autoregressive LSTM of seed 000 on threshold-binarized MNIST."""

    preset: str
    hidden: int = 512
    layers: int = 1
    optimizer: str = "adamw"  # adam | adamw
    lr: float = 3e-4
    epochs: int = 10
    batch_size: int = 128
    dataset: str = "mnist"
    pixels: str = "threshold"  # the seed's binarization, x/255 > 0.5
    seed: int = 0
    num_samples: int = 10000
    temperature: float = 1.0
    prng: str = "rbg"


PIXELRNN_PRESETS = {
    # Seed 000: embedding(3, 512), LSTM(512, 512), Linear(512, 1); AdamW 3e-4, batch 128, 10 epochs.
    "seed000": PixelRNNConfig("seed000"),
}


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """A GAN on MNIST pixels in [0, 1] (x/255, as seed 000's ``ToTensor``)."""

    preset: str
    model: str  # mlp | dcgan
    latent_dim: int
    width: int  # MLP: hidden units; DCGAN: channels of G's last and D's first convolution
    optimizer: str  # adam | adamw, the same for G and D
    lr: float
    b1: float
    epochs: int = 10
    batch_size: int = 128
    g_loss: str = "non_saturating"  # non_saturating | saturating
    # The seed's loop never clears D's gradients after G's backward pass, so d/dD of G's loss
    # adds into D's next update; True reproduces that, False (default) is the intended algorithm.
    d_grad_leak: bool = False
    dataset: str = "mnist"
    pixels: str = "float"
    seed: int = 0
    num_samples: int = 10000
    prng: str = "rbg"


GAN_PRESETS = {
    # Seed 000: G 20-400(GELU)-784(sigmoid), D 784-400(GELU)-1; AdamW 1e-3 for both, batch 128, 10 epochs.
    "seed000": GANConfig("seed000", "mlp", 20, 400, "adamw", 1e-3, 0.9),
    # DCGAN (Radford et al.): z 100, BatchNorm in G, Adam(2e-4, beta1 0.5).
    "dcgan": GANConfig("dcgan", "dcgan", 100, 64, "adam", 2e-4, 0.5),
}
