"""Data-parallel training under torchrun, and the deterministic sampling that makes it comparable to one process.

`torchrun --nproc_per_node=N -m drmoe_repro train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; `init_distributed` then
joins the process group (NCCL on GPUs, gloo on CPUs). Every process draws the same seeded permutation per epoch
and takes its share of each *global* batch, so N processes see exactly the images one process would, in the same
global batches (the paper's batch of 32 stays the global batch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun describes in the environment; a plain run is world size 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    return ctx


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Yields this process's share of each global batch, as (image index, epoch) pairs.

    The permutation of epoch e is drawn from a generator seeded with (seed, e), so it does not depend on the
    number of processes, on workers, or on where a resumed run restarted. The epoch travels with each index so
    that augmentations can be seeded per (seed, epoch, image) as well (see data.dataset).
    """

    def __init__(self, num_items: int, global_batch: int, seed: int, ctx: DistContext = DistContext(),
                 drop_last: bool = False):
        if global_batch % ctx.world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by {ctx.world_size} processes")
        if drop_last and num_items < global_batch:
            raise ValueError(f"drop_last with batch size {global_batch} leaves no full batch of the {num_items} "
                             "training images (Query2Label's and ADD-GCN's published schedules drop the last short "
                             "batch: set train.published_schedule: false, or train on more images)")
        self.num_items, self.global_batch, self.seed, self.ctx = num_items, global_batch, seed, ctx
        self.drop_last = drop_last  # drop an epoch's short last batch (Query2Label's and ADD-GCN's loaders do)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_items // self.global_batch
        return (self.num_items + self.global_batch - 1) // self.global_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        for start in range(0, len(self) * self.global_batch, self.global_batch):
            batch = order[start:start + self.global_batch]
            # A short last batch is topped up from the epoch's start so that no process is left without images
            # (every process must join each gradient all-reduce); one process never needs this.
            shortfall = -len(batch) % self.ctx.world_size
            batch = batch + order[:shortfall]
            yield [(i, self.epoch) for i in batch[self.ctx.rank::self.ctx.world_size]]
