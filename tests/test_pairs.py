"""The hash table behind :class:`recdistill.data.pairs.PairSet` against Python's set: random
keys, keys crowded into few slots (long probe runs that wrap past the table's end), the empty
set, and the pair set's answers against a brute-force membership."""

from __future__ import annotations

import torch

from recdistill.data.pairs import KeyTable, PairSet


def _check(keys: torch.Tensor, queries: torch.Tensor) -> None:
    table = KeyTable(keys)
    assert table.table.numel() >= 2 * keys.numel()  # load at most 1/2
    ref = set(keys.tolist())
    assert table.contains(queries.clone()).tolist() == [q in ref for q in queries.tolist()]
    assert bool(table.contains(keys.clone()).all())
    assert int((table.table != -1).sum()) == len(ref)  # each key stored once


def test_random_keys() -> None:
    g = torch.Generator().manual_seed(0)
    keys = torch.randint(10**9, (5000,), generator=g).unique()
    queries = torch.cat([torch.randint(10**9, (20000,), generator=g), keys[::3]])
    _check(keys, queries)


def test_colliding_keys_wrap_around() -> None:
    """Keys whose first slots coincide: 12 keys hashed to the last slot (their run wraps past
    the table's end to slot 0) and 8 hashed to slot 0, in a table of 20 keys."""
    probe = KeyTable(torch.arange(20))  # the table size of any 20 keys
    cand = torch.arange(400000)
    slots = probe._slot(cand)
    keys = torch.cat([cand[slots == probe.mask][:12], cand[slots == 0][:8]])
    assert keys.unique().numel() == 20
    table = KeyTable(keys)
    assert table.bits == probe.bits
    assert int((table._slot(keys) == probe.mask).sum()) == 12
    _check(keys, torch.cat([keys, cand[:5000]]))


def test_empty_and_single() -> None:
    _check(torch.empty(0, dtype=torch.int64), torch.arange(10))
    _check(torch.tensor([7]), torch.arange(10))


def test_pairset_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(1)
    rows, cols = torch.randint(30, (400,), generator=g), torch.randint(50, (400,), generator=g)
    ps = PairSet(rows, cols, 50)
    ref = set(zip(rows.tolist(), cols.tolist()))
    qr, qc = torch.randint(30, (3000,), generator=g), torch.randint(50, (3000,), generator=g)
    assert ps.contains(qr, qc).tolist() == [(r, c) in ref for r, c in zip(qr.tolist(), qc.tolist())]
