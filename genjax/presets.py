"""Run configurations: one frozen dataclass, and the seeds' settings as presets.

A preset reproduces one PyTorch notebook exactly (architecture, activation,
loss, optimizer, learning rate, pixels, epochs, batch size); command-line flags
override single fields with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses

from genjax.errors import UsageError


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """A VAE on images (:mod:`genjax.objectives.vae`): the seeds' MLP VAEs (``architecture="mlp"``), their
    convolutional VAEs (a key of :data:`genjax.models.conv_vae.SEED_ARCHITECTURES`) and the
    conditional VAE (``num_classes`` > 0). ``likelihood`` ``bernoulli`` on float pixels is the
    seeds' own loss (``BCELoss(reduction="sum")`` + KL, summed over the batch; Adam is invariant to
    that scale, so the mean over images here trains the same); ``discretized_logistic`` (signed
    pixels) makes -ELBO and IWAE code lengths, reported in bits/dim."""

    preset: str = "custom"
    architecture: str = "mlp"  # "mlp", or a key of genjax.models.conv_vae.SEED_ARCHITECTURES
    hidden: tuple[int, ...] = (400,)  # "mlp" only: the encoder's hidden widths (the decoder mirrors them)
    latent_dim: int = 20
    activation: str = "relu"  # "mlp" only: relu | leaky_relu | gelu | tanh
    likelihood: str = "bernoulli"  # bernoulli | mse | discretized_logistic
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    pixels: str = "float"  # float | threshold | stochastic; signed (the discretized logistic's)
    epochs: int = 10
    batch_size: int = 128
    beta: float = 1.0
    kl_warmup_epochs: int = 0
    num_classes: int = 0  # > 0: a conditional VAE, q(z|x, y) and p(x|z, y) with a one-hot label y
    dataset: str = "mnist"
    train_on_test: bool = False  # seed 004: trains on train + test (ConcatDataset); its test split is training data
    seed: int = 0
    iwae_k: int = 1000
    num_samples: int = 10000
    interpolation: str = "linear"  # linear | slerp
    # JAX PRNG: "rbg" (XLA's RngBitGenerator) is markedly cheaper per step on the CPU than the
    # default threefry; both are deterministic for a given seed and backend.
    prng: str = "rbg"


PRESETS = {
    # Seed 000: 784-400-20, GELU, sigmoid decoder, MSE(sum) + KL, AdamW 1e-3, float pixels.
    "seed000": VAEConfig("seed000", hidden=(400,), latent_dim=20, activation="gelu", likelihood="mse",
                         optimizer="adamw", pixels="float", epochs=10),
    # Seed 002: 784-200-200-20, LeakyReLU(0.2), Bernoulli decoder, BCE + KL, Adam 1e-3, x > 0.5.
    "seed002": VAEConfig("seed002", hidden=(200, 200), latent_dim=20, activation="leaky_relu",
                         likelihood="bernoulli", pixels="threshold", epochs=20),
    # Seed 003: 784-400-20, ReLU, BCE + KL, Adam 1e-3, float pixels (ToTensor, no binarization).
    "seed003": VAEConfig("seed003", hidden=(400,), latent_dim=20, activation="relu", likelihood="bernoulli",
                         pixels="float", epochs=10),
}


def get_preset(name: str) -> VAEConfig:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


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
    hidden: int  # MLP: hidden units; DCGAN: channels of G's last and D's first convolution
    optimizer: str  # adam | adamw, the same for G and D
    lr: float
    b1: float
    epochs: int = 10
    batch_size: int = 128
    g_loss: str = "non_saturating"  # non_saturating | saturating
    d_norm: str = "batch"  # DCGAN: D's normalization after its 2nd convolution and hidden layer: batch | layer | none
    fc_hidden: int = 0  # DCGAN: units of a fully connected hidden layer in G and in D (InfoGAN's 1024); 0: none
    g_lr: float | None = None  # G's learning rate where it differs from D's (``lr``)
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
    # DCGAN (Radford et al.): z 100, BatchNorm in G and D, Adam(2e-4, beta1 0.5); a hidden layer of 1024
    # in G and D makes them InfoGAN's MNIST networks (FID 4.8-6.8 over three seeds, 30.0 without; README).
    "dcgan": GANConfig("dcgan", "dcgan", 100, 64, "adam", 2e-4, 0.5, fc_hidden=1024),
}


@dataclasses.dataclass(frozen=True)
class AEConfig:
    """A deterministic autoencoder (genjax.objectives.autoencoder), plain or denoising (``noise`` > 0)."""

    preset: str
    model: str  # mlp | conv | fully_conv
    hidden: tuple[int, ...]  # mlp: hidden widths (the decoder mirrors them); conv: channels of each stride-2 conv
    latent_dim: int  # fully_conv: fixed by the last feature map (2 x 2 x 96 = 384 for seed 001)
    likelihood: str  # bernoulli (binary cross-entropy) | mse, summed over pixels, averaged over images
    optimizer: str
    lr: float
    epochs: int
    batch_size: int = 128
    dataset: str = "mnist"
    pixels: str = "float"  # x/255, the seeds' ToTensor
    noise: float = 0.0  # denoising: std of the Gaussian added to the input (clipped to [0, 1]); 0 = plain AE
    seed: int = 0
    num_samples: int = 10000  # N(0, I) decodes scored by the evaluator (MNIST)
    vae_preset: str = "seed003"  # the VAE (PRESETS) compared with it, given this AE's latent size
    prng: str = "rbg"


AE_PRESETS = {
    # Seed 003: 784-400(ReLU)-20, 20-400(ReLU)-784(sigmoid); its criterion F.mse_loss; Adam 1e-3.
    "seed003": AEConfig("seed003", "mlp", (400,), 20, "mse", "adam", 1e-3, 10),
    # Seed 004: Conv 16, 32 (3x3, stride 2) -> Linear 2; BCELoss(sum) / batch, Adam 1e-3, batch 128, 10 epochs.
    "seed004": AEConfig("seed004", "conv", (16, 32), 2, "bernoulli", "adam", 1e-3, 10),
    # Seed 001: CIFAR-10 3x32x32 -> Conv 12, 24, 48, 96 (4x4, stride 2) = 96x2x2 -> back; the seed gives no
    # training loop: MSE ("usually Mean Squared Error" in its text), Adam 1e-3 as its VAE, batch 128.
    "seed001": AEConfig("seed001", "fully_conv", (12, 24, 48, 96), 384, "mse", "adam", 1e-3, 10, dataset="cifar10"),
}


@dataclasses.dataclass(frozen=True)
class AEApplicationsConfig:
    """Seed 001's uses of an AE on MNIST: denoising (one DAE per noise level, beside the plain AE)
    and anomaly detection (one AE and one VAE per digit, trained on that digit alone)."""

    preset: str
    ae_preset: str = "seed003"  # AE_PRESETS: the autoencoder of both studies
    vae_preset: str = "seed003"  # PRESETS: the VAE of the anomaly comparison (784-400-20, as seed003's AE)
    likelihood: str = "mse"  # the AE's reconstruction term
    noise: tuple[float, ...] = (0.1, 0.3, 0.5)  # the DAEs' noise levels (a plain AE, noise 0, is always trained)
    digits: tuple[int, ...] = tuple(range(10))  # anomaly detection: one "normal" digit per pair of models
    tasks: tuple[str, ...] = ("denoising", "anomaly")
    epochs: int = 10  # every model's; a digit's ~6,000 images are ~47 steps an epoch
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    prng: str = "rbg"


AE_APPLICATION_PRESETS = {
    "seed001": AEApplicationsConfig("seed001"),
}


CONV_VAE_MNIST_PRESETS = {
    # Seed 003's ConvVAE (28x28 fixed: see genjax.models.conv_vae), latent 128; its vae_loss (BCE + KL), Adam
    # 1e-3, batch 128, 10 epochs; pixels x/255 > 0.5 (seed002's binarization, not the seed's ToTensor), so
    # -ELBO and IWAE are likelihood bounds, comparable with seed002's MLP VAE. IWAE k = 100: the decoder's
    # convolutions over k x 10,000 latents then take a quarter to a third of the 10 epochs' training (about
    # four times the training at k = 1000, one flag away: --iwae-k 1000).
    "seed003": VAEConfig("seed003", "seed003", latent_dim=128, pixels="threshold", epochs=10, iwae_k=100),
    # Seed 004: Conv 32, 64 (3x3, stride 2) -> fc 16 -> latent 2; BCE(sum) + KL per image on ToTensor pixels,
    # Adam 1e-3, batch 128, 30 epochs on MNIST train + test (70,000 images).
    "seed004": VAEConfig("seed004", "seed004", latent_dim=2, epochs=30, train_on_test=True),
}

CIFAR10_VAE_PRESETS = {
    # Seed 001's VAE: 3072-128-(2x16), ReLU, sigmoid; BCELoss(sum) + KL, Adam 1e-3, ToTensor pixels; its
    # train() runs 1 epoch and prints every 2000 mini-batches, the loader of "the previous chapters"
    # (PyTorch's CIFAR-10 tutorial: batch 4).
    "seed001": VAEConfig("seed001", "mlp", hidden=(128,), latent_dim=16, epochs=1, dataset="cifar10", batch_size=4,
                         iwae_k=100, num_samples=1000),
    # Seed 001's TODO, a convolutional VAE on CIFAR-10 (genjax.models.conv_vae "seed001_cifar"), trained by
    # the seed's train() as above.
    "seed001_conv": VAEConfig("seed001_conv", "seed001_cifar", latent_dim=16, epochs=1, dataset="cifar10", batch_size=4,
                              iwae_k=100, num_samples=1000),
}

CELEBA_VAE_PRESETS = {
    # Seed 003's CelebAVAE: 64x64 (centre crop 148, resize 64), Conv 32-256 with BatchNorm, latent 256; the
    # seed trains it nowhere: its MNIST loop's loss (BCE + KL), Adam 1e-3, batch 128, 10 epochs.
    "seed003_celeba": VAEConfig("seed003_celeba", "seed003_celeba", latent_dim=256, epochs=10, dataset="celeb_a",
                                iwae_k=100, num_samples=1000),
}


CVAE_PRESETS = {
    # The conditional VAE: seed 002's network, pixels and optimizer, an 8-dimensional latent, 50 epochs.
    # The label must be what decides the digit. Measured (experiments.cvae_mnist, seed 0), the share of
    # prior samples classified as the digit asked for: latent 20, 20 epochs (seed 002's own) 77%, its z
    # also carrying the class; latent 4, 20 epochs 97.8% but FID 98 (little variety); latent 10, 50
    # epochs 94.6% (2,000 samples); latent 8, 50 epochs 96.8%, FID 24.9.
    "cvae": dataclasses.replace(PRESETS["seed002"], preset="cvae", latent_dim=8, epochs=50, num_classes=10),
}
