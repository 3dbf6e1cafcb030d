"""Score sources for the rank engine: users x items score blocks, user side or item side.

A *score source* is any of:
- a ``Recommender`` (or any object with ``score_all(users (B,)) -> (B, n_items)``); if it also has
  ``score_items(items (C,)) -> (C, n_users)`` (all users' scores for a few items), the item side
  uses it; otherwise the item side calls ``score_all`` over all users in chunks and keeps a large
  block of item columns at a time (several full passes over the users; correct, but slower);
- a callable ``users (B,) -> (B, n_items)``;
- a dense tensor (n_users, n_items) of scores.

``torch.nn.Module`` sources are put in eval mode while scoring (dropout off, as when ranking for
evaluation) and restored afterwards; scoring runs under ``torch.no_grad()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Union

import torch
from torch import nn

from recdistill.errors import RecdistillError

ScoreSource = Union[nn.Module, Callable[[torch.Tensor], torch.Tensor], torch.Tensor]  # noqa: UP007

SIDES = ("user", "item")


def check_side(side: str) -> str:
    if side not in SIDES:
        raise RecdistillError(f"side={side!r}: expected 'user' or 'item'")
    return side


def source_device(model: Any, default: torch.device) -> torch.device:
    """The device a source computes on (tensors and modules: their own; callables: ``default``)."""
    if isinstance(model, torch.Tensor):
        return model.device
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    dev = getattr(model, "device", None)
    return dev if isinstance(dev, torch.device) else default


@contextlib.contextmanager
def scoring_mode(*models: Any) -> Iterator[None]:
    """Eval mode, no_grad and each model's ranking pass (``Recommender.scoring``: a model that
    prepares its scores, e.g. LightGCN's propagation, does it once) for the duration; the
    modules' train flags are restored."""
    mods = [m for m in models if isinstance(m, nn.Module)]
    flags = [m.training for m in mods]
    try:
        for m in mods:
            m.eval()
        with torch.no_grad(), contextlib.ExitStack() as passes:
            for m in mods:
                prepare = getattr(m, "scoring", None)
                if callable(prepare):
                    passes.enter_context(prepare())
            yield
    finally:
        for m, f in zip(mods, flags):
            m.train(f)


def _user_scores(model: Any, users: torch.Tensor) -> torch.Tensor:
    if isinstance(model, torch.Tensor):
        return model.index_select(0, users)  # (B, n_items)
    if hasattr(model, "score_all"):
        return model.score_all(users)  # (B, n_items)
    if callable(model):
        return model(users)  # (B, n_items)
    raise TypeError(
        f"cannot score with {type(model).__name__}: expected a Recommender, a callable "
        "users -> (B, n_items) scores, or a (n_users, n_items) tensor"
    )


def _checked(s: torch.Tensor, shape: tuple[int, int], what: str, device: torch.device) -> torch.Tensor:
    if not isinstance(s, torch.Tensor) or tuple(s.shape) != shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise RecdistillError(f"{what} returned {got}, expected shape {shape}")
    return s.to(device=device, dtype=torch.float32).contiguous()


def iter_scores(
    model: ScoreSource,
    side: str,
    rows: torch.Tensor,
    chunk: int,
    n_users: int,
    n_items: int,
    device: torch.device,
    fallback_bytes: int = 2**28,
) -> Iterator[torch.Tensor]:
    """Yield float32 score blocks for ``rows`` (int64, CPU) in chunks of ``chunk`` rows, on ``device``.

    side "user": (B, n_items) per block of users; side "item": (C, n_users) per block of items.
    ``fallback_bytes``: item side without ``score_items``: bytes of the column block kept between
    full passes of ``score_all`` over the users.
    """
    check_side(side)
    mdev = source_device(model, device)
    n_cols = n_items if side == "user" else n_users
    if side == "user" or isinstance(model, torch.Tensor) or hasattr(model, "score_items"):
        for s in range(0, rows.numel(), chunk):
            r = rows[s : s + chunk].to(mdev)  # (B,)
            if side == "user":
                out, what = _user_scores(model, r), "score_all(users)"
            elif isinstance(model, torch.Tensor):
                out, what = model.index_select(1, r).T, "scores[:, items]"  # (C, n_users)
            else:
                items_source: Any = model  # has score_items (checked above)
                out, what = items_source.score_items(r), "score_items(items)"  # (C, n_users)
            yield _checked(out, (r.numel(), n_cols), what, device)
        return
    # item side from score_all only: one pass over all users per block of `big` items
    big = max(1, fallback_bytes // (4 * n_users * chunk)) * chunk  # whole chunks per block
    users = torch.arange(n_users, device=mdev)  # (n,)
    user_chunk = max(1, 2**23 // n_items)
    for s in range(0, rows.numel(), big):
        items = rows[s : s + big].to(mdev)  # (C_big,)
        cols = torch.empty((items.numel(), n_users), dtype=torch.float32, device=device)  # (C_big, n)
        for u0 in range(0, n_users, user_chunk):
            su = _checked(
                _user_scores(model, users[u0 : u0 + user_chunk]),
                (min(user_chunk, n_users - u0), n_items),
                "score_all(users)",
                mdev,
            )
            cols[:, u0 : u0 + su.shape[0]] = su.index_select(1, items).T.to(device)  # (C_big, B)
        for c in range(0, items.numel(), chunk):
            yield cols[c : c + chunk]  # (C, n)
