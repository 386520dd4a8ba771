"""PyTorch re-creation of seed 000's PixelRNN, its training step and its ``sample()`` loop.

The speed baseline for genjax's PixelRNN, written as the notebook does it:
``nn.Embedding(3, H)``, ``nn.LSTM(H, H, batch_first=True)``, ``nn.Linear(H, 1)``;
inputs shifted right with START = 2; ``BCEWithLogitsLoss``; AdamW(lr=3e-4);
per batch: forward, loss, backward, step, zero_grad. ``sample()`` is the
notebook's Python loop over the 784 pixels, one ``nn.LSTM`` call per pixel.
torch is an optional benchmark dependency (``pip install torch==2.13.0``).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


class PixelRNN(nn.Module):
    def __init__(self, hidden_dim=512):
        super().__init__()
        self.embed = nn.Embedding(3, hidden_dim)
        self.rnn = nn.LSTM(hidden_dim, hidden_dim, batch_first=True)
        self.fc = nn.Linear(hidden_dim, 1)

    def forward(self, x):
        start_token = torch.full((x.shape[0], 1), 2, dtype=torch.long, device=x.device)
        x = torch.cat([start_token, x[:, :-1]], dim=1)
        x = self.embed(x)
        x, _ = self.rnn(x)
        return self.fc(x)


@torch.no_grad()
def sample(model, num_samples):
    """The notebook's sampler, verbatim but for the device."""
    model.eval()
    x = torch.full((num_samples, 1), 2, dtype=torch.long)
    h = c = None
    generated = []
    for _ in range(784):
        emb = model.embed(x)
        if h is None or c is None:
            out, (h, c) = model.rnn(emb)
        else:
            out, (h, c) = model.rnn(emb, (h, c))
        logits = model.fc(out)
        p = torch.sigmoid(logits).squeeze(-1)
        x = torch.bernoulli(p).long()
        generated.append(x)
    images = torch.stack(generated, dim=1)
    return images.view(num_samples, 28, 28).float()


def step_seconds(binary_images: np.ndarray, hidden: int = 512, batch_size: int = 128, steps: int = 3) -> dict:
    """Seconds per training step (the fastest of ``steps`` after one warm-up), on real binarized digits."""
    torch.manual_seed(0)
    model = PixelRNN(hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    criterion = nn.BCEWithLogitsLoss()
    model.train()
    x = torch.as_tensor(binary_images[:batch_size].reshape(batch_size, 784), dtype=torch.long)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        prob = model(x)
        loss = criterion(prob.view(-1), x.view(-1).float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss.item()
        times.append(time.perf_counter() - t)
    return {"seconds": min(times[1:]), "threads": torch.get_num_threads(), "torch_version": torch.__version__}


def sample_seconds(num_samples: int, hidden: int = 512, repeats: int = 2) -> float:
    torch.manual_seed(0)
    model = PixelRNN(hidden)
    sample(model, num_samples)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sample(model, num_samples)
        times.append(time.perf_counter() - t)
    return min(times)
