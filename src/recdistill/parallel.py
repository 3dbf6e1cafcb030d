"""Data parallelism on PyTorch's own engine (``torch.distributed``, launched with ``torchrun``).

Nothing here holds state: every function asks ``torch.distributed`` whether a process group is
initialised (by :func:`init_from_env` under ``torchrun``, or by the caller of the Python API).
Without one, or with one process, every function is the identity and single-process results
are unchanged.

What is split, and how (each process holds the whole model and the whole training matrix):

- training: every process builds the same global batch (same generator, same seed), takes its
  contiguous block of the batch's rows (:func:`block`) and backpropagates its share of the
  batch's loss; :func:`average_gradients` sums the gradients over processes (one flat
  ``all_reduce``), so every process takes the same optimiser step (data parallelism as in
  ``DistributedDataParallel``; the embedding tables' gradients are dense);
- rank refreshes and evaluation: rows (users, or items on the item side) are split into
  contiguous blocks of whole chunks (:func:`block` with ``align`` = the chunk size, so every chunk
  is the same chunk as in one process and scores the same bits); each process fills its rows of
  zero-initialised outputs and :func:`all_sum_` adds them up. The outputs are integers (ranks,
  drawn indices) or zeros elsewhere, so the sum is exact: evaluation ranks, and so metrics, are
  those of one process to the last digit;
- random draws: each process draws its rows with its own stream (:func:`rank_generator`,
  derived from the shared generator and the process's rank), so a run is deterministic for a
  given number of processes and seed, and the draws follow the same distributions as in one
  process;
- files: only rank 0 writes (:func:`is_main`; ``recdistill.atomic`` skips writes elsewhere) and
  only rank 0 prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist

from recdistill.errors import RecdistillError

__all__ = [
    "all_sum_",
    "all_sum_numpy",
    "average_gradients",
    "block",
    "broadcast_parameters",
    "init_from_env",
    "is_main",
    "rank_generator",
    "rank_seed",
    "world",
]


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or no process group)."""
    return world()[0] == 0


def init_from_env() -> bool:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) initialise the default process
    group (gloo for CPU tensors, NCCL for CUDA ones when CUDA is available) and return True;
    otherwise do nothing and return False. A group the caller initialised is kept."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise RecdistillError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r}: expected an integer") from None
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise RecdistillError("this PyTorch build has no torch.distributed; run without torchrun")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local < torch.cuda.device_count():  # more processes than GPUs: CPU runs still work
            torch.cuda.set_device(local)
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    return True


def block(n: int, rank: int | None = None, size: int | None = None, align: int = 1) -> tuple[int, int]:
    """This process's contiguous block ``[start, end)`` of ``n`` rows: the ``ceil(n / align)``
    groups of ``align`` rows are dealt out as evenly as possible (the first processes get one more
    when they do not divide), so block edges fall on multiples of ``align``."""
    if rank is None or size is None:
        rank, size = world()
    if align < 1:
        raise RecdistillError(f"align={align}: expected an integer >= 1")
    groups = -(-n // align)
    per, extra = divmod(groups, size)
    g0 = rank * per + min(rank, extra)
    g1 = g0 + per + (1 if rank < extra else 0)
    return min(g0 * align, n), min(g1 * align, n)


def _comm_device(t: torch.Tensor) -> torch.device:
    """Where a collective on ``t`` runs: its own device, except CPU tensors under a NCCL-only group."""
    if t.device.type == "cpu" and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return t.device


def all_sum_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over processes, in place (every process gets the sum); returns ``t``."""
    if world()[1] == 1:
        return t
    dev = _comm_device(t)
    if dev == t.device:
        dist.all_reduce(t)
    else:
        tmp = t.to(dev)
        dist.all_reduce(tmp)
        t.copy_(tmp)
    return t


def all_sum_numpy(a: np.ndarray) -> np.ndarray:
    """:func:`all_sum_` of a numpy array (in place; returns it)."""
    if world()[1] > 1:
        all_sum_(torch.from_numpy(a))  # shares a's memory
    return a


def rank_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for this process from ``seed`` and ``keys`` (e.g. an epoch), different per
    rank (numpy's SeedSequence hashing)."""
    rank = world()[0]
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), rank, *(int(k) for k in keys)])
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))


def rank_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """With one process, ``generator`` itself. With several, a new generator on the same device
    seeded from one draw of ``generator`` (the same draw in every process, which keeps the shared
    streams in step) and this process's rank, so the processes' draws are independent."""
    if generator is None or world()[1] == 1:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(generator.device).manual_seed(rank_seed(seed))


def _grads(params: Iterable[torch.nn.Parameter]) -> list[torch.Tensor]:
    out = []
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif p.grad.is_sparse:
            raise RecdistillError(
                "sparse embedding gradients are not supported with several processes; use the "
                "dense tables (the default) under torchrun"
            )
        out.append(p.grad)
    return out


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over processes in one flat ``all_reduce`` (a parameter
    without a gradient counts as zeros). Each process must have scaled its loss by its share of
    the global batch, so the sum is the global batch's gradient."""
    if world()[1] == 1:
        return
    grads = _grads(params)
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    all_sum_(flat)
    pos = 0
    for g in grads:
        g.copy_(flat[pos : pos + g.numel()].view_as(g))
        pos += g.numel()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (same start everywhere)."""
    if world()[1] == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dev = _comm_device(t)
        tmp = t.data if dev == t.device else t.data.to(dev)
        dist.broadcast(tmp, 0)
        if tmp is not t.data:
            t.data.copy_(tmp)
