"""PyTorch baselines for the GAN benchmark (``benchmarks.gan_speed``).

* ``seed000``: seed 000's notebook GAN loop, faithfully: G 20-400 GELU-784 Sigmoid,
  D 784-400 GELU-1 Sigmoid, ``nn.BCELoss``, AdamW lr 1e-3 for both, batch 128,
  ``DataLoader(TensorDataset(x), batch_size=128, shuffle=True)`` over in-memory
  float32 pixels x/255. Per batch a D step then a G step on new noise, exactly as
  written: D's ``zero_grad`` comes *after* its step, so G's backward pass leaves
  its gradient in D's ``.grad`` and it adds into D's next update
  (``clear_d_grads=False``). ``clear_d_grads=True`` adds
  ``optimizer_discriminator.zero_grad()`` before D's backward: the intended
  algorithm (genjax's default, ``d_grad_leak=False``).
* ``dcgan``: a copy of genjax's DCGAN (:mod:`genjax.models.dcgan`) layer for layer,
  Adam(2e-4, betas (0.5, 0.999)) for both, ``BCEWithLogitsLoss``, the usual loop
  with D's gradients cleared. Like genjax's step (and the seed's loop), G's step
  draws new noise and runs G again. NCHW tensors either contiguous or
  ``torch.channels_last``.

torch is an optional benchmark dependency. Threads: ``os.cpu_count()`` unless given.

CLI: ``python -m benchmarks.torch_gan --model seed000 --epochs 2``
     ``python -m benchmarks.torch_gan --model dcgan --steps 20 [--channels-last]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BATCH_SIZE = 128


def _pixels(train_images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28[, 1]) -> float32 (N, 784) in [0, 1], once, before any timing."""
    raw = torch.from_numpy(np.asarray(train_images, dtype=np.uint8).reshape(-1, 784))
    return (raw.to(torch.float32) / 255.0).contiguous()


# ---------------------------------------------------------------- seed 000's MLP GAN


class Generator(nn.Module):
    def __init__(self, latent_dim=20, hidden_dim=400, output_dim=784):
        super().__init__()
        self.fc1 = nn.Linear(latent_dim, hidden_dim)
        self.act1 = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, output_dim)
        self.act2 = nn.Sigmoid()

    def forward(self, x):
        x = self.act1(self.fc1(x))
        return self.act2(self.fc2(x))


class Discriminator(nn.Module):
    def __init__(self, input_dim=784, hidden_dim=400):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.act1 = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, 1)
        self.act2 = nn.Sigmoid()

    def forward(self, x):
        x = self.act1(self.fc1(x))
        return self.act2(self.fc2(x))


def seed000_seconds_per_epoch(train_images: np.ndarray, epochs: int = 3, clear_d_grads: bool = False,
                              seed: int = 0, threads: int | None = None) -> dict:
    """Train ``epochs`` epochs of the notebook's GAN loop and time each one."""
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(seed)
    x_all = _pixels(train_images)
    loader = DataLoader(TensorDataset(x_all), batch_size=BATCH_SIZE, shuffle=True)
    generator, discriminator = Generator(), Discriminator()
    criterion = nn.BCELoss()
    optimizer_generator = torch.optim.AdamW(generator.parameters(), lr=1e-3)
    optimizer_discriminator = torch.optim.AdamW(discriminator.parameters(), lr=1e-3)
    generator.train()
    discriminator.train()

    epoch_seconds = []
    loss_d = loss_g = None
    for _ in range(epochs):
        start = time.perf_counter()
        for (x_real,) in loader:
            x_real = x_real.view(-1, 784)
            bs = x_real.shape[0]
            labels_real = torch.ones(bs, 1)
            labels_fake = torch.zeros(bs, 1)

            # Discriminator step
            y_real = discriminator(x_real)
            loss_discriminator_real = criterion(y_real, labels_real)
            z = torch.randn(bs, 20)
            x_fake = generator(z).detach()
            y_fake = discriminator(x_fake)
            loss_discriminator_fake = criterion(y_fake, labels_fake)
            loss_discriminator = loss_discriminator_real + loss_discriminator_fake
            if clear_d_grads:
                optimizer_discriminator.zero_grad()  # the intended algorithm; not in the notebook
            loss_discriminator.backward()
            optimizer_discriminator.step()
            optimizer_discriminator.zero_grad()

            # Generator step
            z = torch.randn(bs, 20)
            x_fake = generator(z)
            y_fake = discriminator(x_fake)
            loss_generator = criterion(y_fake, labels_real)
            loss_generator.backward()
            optimizer_generator.step()
            optimizer_generator.zero_grad()
        epoch_seconds.append(time.perf_counter() - start)
        loss_d, loss_g = loss_discriminator.item(), loss_generator.item()

    timed = epoch_seconds[1:] if epochs > 1 else epoch_seconds
    return dict(epoch_seconds=epoch_seconds, seconds_per_epoch=statistics.median(timed),
                clear_d_grads=clear_d_grads, last_d_loss=loss_d, last_g_loss=loss_g,
                torch_version=torch.__version__, threads=torch.get_num_threads())


# ---------------------------------------------------------------- genjax's DCGAN, copied


def _dcgan_init(module: nn.Module) -> None:
    """genjax's: weights N(0, 0.02), biases 0, BatchNorm scales N(1, 0.02) and shifts 0."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGenerator(nn.Module):
    """z (B, 100) -> [Linear ``hidden`` (no bias) -> BatchNorm1d, ReLU] -> Linear 7*7*2w (no bias)
    -> BatchNorm2d(2w), ReLU (on the (7, 7, 2w) map, as genjax) -> ConvT w (4, 2, 1, no bias)
    -> BatchNorm2d(w), ReLU -> ConvT 1 (4, 2, 1) -> Sigmoid: (B, 1, 28, 28)."""

    def __init__(self, latent_dim=100, width=64, channels=1, hidden=0, channels_last=False):
        super().__init__()
        self.width, self.channels_last = width, channels_last
        self.hidden = nn.Sequential(nn.Linear(latent_dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                                    nn.ReLU()) if hidden else nn.Identity()
        self.fc = nn.Linear(hidden or latent_dim, 7 * 7 * 2 * width, bias=False)
        self.bn0 = nn.BatchNorm2d(2 * width)  # momentum 0.1, eps 1e-5: genjax's
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.up2 = nn.ConvTranspose2d(width, channels, 4, 2, 1)
        self.apply(_dcgan_init)

    def forward(self, z):
        h = self.fc(self.hidden(z))
        if self.channels_last:  # genjax's (7, 7, 128) reshape is channels-last memory already
            h = h.view(-1, 7, 7, 2 * self.width).permute(0, 3, 1, 2)
        else:
            h = h.view(-1, 2 * self.width, 7, 7)
        h = torch.relu(self.bn0(h))
        h = torch.relu(self.bn1(self.up1(h)))
        return torch.sigmoid(self.up2(h))


def _d_norm(norm: str, features: int, image: bool) -> nn.Module:
    """D's normalization of ``features`` channels (``image``: on NCHW maps, else on vectors)."""
    if norm == "batch":
        return nn.BatchNorm2d(features) if image else nn.BatchNorm1d(features)
    return nn.LayerNorm(features, eps=1e-6) if norm == "layer" else nn.Identity()


class DCDiscriminator(nn.Module):
    """(B, 1, 28, 28) -> Conv w (4, 2, 1) -> LeakyReLU 0.2 -> Conv 2w (4, 2, 1, no bias) -> norm
    -> LeakyReLU 0.2 -> [Linear ``hidden`` (no bias) -> norm -> LeakyReLU 0.2] -> Linear 1: logits
    (B, 1). ``norm``: "batch", BatchNorm2d/1d in train mode (batch statistics, as genjax's D);
    "layer", a LayerNorm over each position's channels (eps 1e-6, Flax's); "none": biases, no norm."""

    def __init__(self, width=64, channels=1, norm="batch", hidden=0):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 4, 2, 1)
        self.conv2 = nn.Conv2d(width, 2 * width, 4, 2, 1, bias=norm == "none")
        self.layer_norm = norm == "layer"
        self.norm = _d_norm(norm, 2 * width, image=True)
        self.hidden = nn.Sequential(nn.Linear(7 * 7 * 2 * width, hidden, bias=norm == "none"),
                                    _d_norm(norm, hidden, image=False), nn.LeakyReLU(0.2)) if hidden else nn.Identity()
        self.fc = nn.Linear(hidden or 7 * 7 * 2 * width, 1)
        self.apply(_dcgan_init)

    def forward(self, x):
        h = self.conv2(nn.functional.leaky_relu(self.conv1(x), 0.2))
        if self.layer_norm:  # NCHW -> channels last and back (free for channels_last tensors)
            h = self.norm(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            h = self.norm(h)
        return self.fc(self.hidden(nn.functional.leaky_relu(h, 0.2).flatten(1)))


def dcgan_step_seconds(train_images: np.ndarray, steps: int = 60, warmup: int = 3, channels_last: bool = False,
                       seed: int = 0, threads: int | None = None, width: int = 64, d_norm: str = "batch",
                       hidden: int = 1024) -> dict:
    """Seconds per DCGAN training step (D step, then G step), over ``steps`` timed steps after
    ``warmup`` untimed ones, batches from a shuffling DataLoader as in the seed's loop; ``width``,
    ``d_norm`` and ``hidden`` as genjax's ``GANConfig`` (its ``dcgan`` preset by default)."""
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x_all = _pixels(train_images[:BATCH_SIZE * (steps + warmup)]).view(-1, 1, 28, 28)
    loader = DataLoader(TensorDataset(x_all), batch_size=BATCH_SIZE, shuffle=True, drop_last=True)
    gen = DCGenerator(width=width, hidden=hidden, channels_last=channels_last).to(memory_format=fmt)
    disc = DCDiscriminator(width, norm=d_norm, hidden=hidden).to(memory_format=fmt)
    criterion = nn.BCEWithLogitsLoss()
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen.train()
    disc.train()

    start, loss_d, loss_g = None, None, None
    for i, (real,) in enumerate(loader):
        if i == warmup:
            start = time.perf_counter()
        real = real.contiguous(memory_format=fmt)
        bs = real.shape[0]
        ones, zeros = torch.ones(bs, 1), torch.zeros(bs, 1)

        opt_d.zero_grad()
        fake = gen(torch.randn(bs, 100)).detach()
        loss_d = criterion(disc(real), ones) + criterion(disc(fake), zeros)
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad()
        loss_g = criterion(disc(gen(torch.randn(bs, 100))), ones)
        loss_g.backward()
        opt_g.step()
    seconds = time.perf_counter() - start
    return dict(seconds_per_step=seconds / steps, steps=steps, channels_last=channels_last,
                last_d_loss=loss_d.item(), last_g_loss=loss_g.item(),
                torch_version=torch.__version__, threads=torch.get_num_threads())


def main() -> None:
    from genjax.data import load_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["seed000", "dcgan"], default="seed000")
    parser.add_argument("--epochs", type=int, default=2, help="seed000: epochs (the first is not counted)")
    parser.add_argument("--clear-d-grads", action="store_true", help="seed000: the intended algorithm")
    parser.add_argument("--steps", type=int, default=20, help="dcgan: timed steps")
    parser.add_argument("--channels-last", action="store_true", help="dcgan: torch.channels_last tensors")
    parser.add_argument("--threads", type=int, help="torch threads (default os.cpu_count())")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    images = load_split("mnist", "train", args.data_dir).images
    if args.model == "seed000":
        result = seed000_seconds_per_epoch(images, args.epochs, args.clear_d_grads, threads=args.threads)
    else:
        result = dcgan_step_seconds(images, args.steps, channels_last=args.channels_last, threads=args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
