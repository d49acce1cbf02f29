"""NaN and Inf detection in the training loop that never makes the CPU wait for the step it just queued.

Testing `torch.isfinite(loss)` right after a step blocks the CPU until the GPU has finished that step, so the next
batch's decoding, augmentation and kernel launches cannot overlap with it, and the GPU idles while they are queued.
Instead each step's loss is copied to pinned host memory without blocking, and read one step later, once the next
step is queued; by then the copy has landed. A NaN thus stops the run one step after the step it appeared in, still
named in the message, and always before the end of the epoch, when `flush` runs ahead of the checkpoint: the last
good checkpoint is never overwritten with poisoned weights.
"""

from __future__ import annotations

import math
from collections import deque

import torch


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class LossWatch:
    """Checks each step's loss one step late. `last` is the newest checked value (for progress bars)."""

    def __init__(self, device: torch.device):
        self.on_gpu = device.type == "cuda"
        self.pending: deque[tuple[str, torch.Tensor, torch.cuda.Event | None]] = deque()
        self.last: float | None = None

    def push(self, loss: torch.Tensor, where: str) -> None:
        """Queue the loss of the step described by `where` ("step 12 (epoch 1)"), and check the step before it."""
        loss = loss.detach()
        if self.on_gpu:
            host = torch.empty(loss.shape, dtype=loss.dtype, pin_memory=True)
            host.copy_(loss, non_blocking=True)
            landed = torch.cuda.Event()
            landed.record()
            self.pending.append((where, host, landed))
        else:
            self.pending.append((where, loss, None))
        while len(self.pending) > 1:
            self._check(*self.pending.popleft())

    def flush(self) -> None:
        """Check every queued loss (before a checkpoint, or at the end of a timed window)."""
        while self.pending:
            self._check(*self.pending.popleft())

    def _check(self, where: str, host: torch.Tensor, landed: torch.cuda.Event | None) -> None:
        if landed is not None:
            landed.synchronize()  # waits for that step only; the one queued after it keeps the GPU busy
        value = host.item()
        if not math.isfinite(value):
            self.pending.clear()
            raise NonFiniteLossError(f"loss is {value} at {where}")
        self.last = value
