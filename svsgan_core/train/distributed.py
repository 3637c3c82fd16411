"""Data-parallel training under torchrun: NCCL on GPUs, gloo on the CPU.

G, D_I and D_V (D_V's windowed scorer) are wrapped in torch's DistributedDataParallel by `wrap`,
which averages gradients in buckets that overlap with backward. Since every loss is a mean over
samples, the update equals one process's on the combined batch. This module keeps what DDP does
not do: joining the process group torchrun describes (one node or several), one broadcast of the
buffers (DDP is told not to broadcast them every forward), sums of small statistics, and gathering
RNG states for checkpoints.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT).

    `device`: "cpu", "cuda" or None (CUDA when available). Without torchrun this is one process.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank, world, local, dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def wrap(module: torch.nn.Module, info: DistInfo, find_unused: bool = False,
         static_graph: bool = False) -> torch.nn.Module:
    """`module` in DistributedDataParallel when running under torchrun, else `module` itself.

    broadcast_buffers=False: the spectral-norm vectors advance identically on every process (the
    power iteration sees only the weights, which DDP keeps equal), so broadcasting them each forward
    would only cost time. gradient_as_bucket_view=True: gradients live in DDP's buckets, no copy.
    find_unused: some forwards leave parameters without gradient (G in first-frame mode, D_V
    scales whose window does not fit); static_graph: the same parameters are used every update.
    """
    if not info.enabled:
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None,
                                   broadcast_buffers=False, gradient_as_bucket_view=True,
                                   find_unused_parameters=find_unused, static_graph=static_graph)


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Start every process from rank 0's buffers (DDP syncs the parameters when it wraps a module)."""
    if not info.enabled:
        return
    for t in module.buffers():
        dist.broadcast(t.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_objects(obj, info: DistInfo) -> list:
    """Every process's `obj` (small, picklable: RNG states) on every process."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
