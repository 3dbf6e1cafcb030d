"""``export_run``: a finished run's primary model as files a serving stack reads without recdistill.

- BPR (and any model with ``user_emb`` / ``item_emb`` whose score is their inner product):
  ``user_factors.npy`` (n_users, d) and ``item_factors.npy`` (n_items, d), float32, for an
  inner-product index (e.g. faiss ``IndexFlatIP``): ``scores = user_factors[u] @ item_factors.T``.
- Other models (NeuMF, CDAE): ``model.ts``, a TorchScript program ``users (B,) int64 -> scores
  (B, n_items)`` traced from the model's scoring; checked against the model on two batch sizes
  before it is written (a model whose scoring does not trace is refused in one line).
- Both: ``users.csv`` / ``items.csv`` (``index,id``: internal index -> raw id), the training items
  as CSR (``train_indptr.npy``, ``train_indices.npy``) so that a consumer can exclude them, and
  ``manifest.json`` (format, model, sizes, parameters, the dataset's name and fingerprint, the
  run's metrics, each file's sha256, and how to score).

The folder is written next to its target and moved into place when complete; an existing folder
is refused unless ``fresh``, and even then only an earlier export (a folder holding this module's
``manifest.json``) or an empty folder is replaced, once the new one is complete; a folder inside
the run, or holding it, is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recdistill.atomic import atomic_json, atomic_npy, atomic_text, atomic_write
from recdistill.errors import RecdistillError
from recdistill.models.base import Recommender
from recdistill.runs.store import Run, load_run

__all__ = ["EXPORT_VERSION", "check_target", "export_run", "is_factor_model"]

EXPORT_VERSION = 1


def is_factor_model(model: Recommender) -> bool:
    """Whether the model's score is ``user_emb[u] . item_emb[i]`` (BPR)."""
    return type(model).__name__ == "BPR" and hasattr(model, "user_emb") and hasattr(model, "item_emb")


class _Scorer(torch.nn.Module):
    """``users -> scores`` of a model, for tracing (the unchunked path where a model has one)."""

    def __init__(self, model: Recommender) -> None:
        super().__init__()
        self.model = model
        self.fn = getattr(model, "_score_all", model.score_all)

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return self.fn(users)


def _is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export's ``manifest.json`` (one this module wrote)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "export_version" in manifest and "files" in manifest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ids_csv(raw: np.ndarray, path: Path) -> None:
    text = pd.DataFrame({"index": np.arange(len(raw)), "id": raw}).to_csv(index=False)
    atomic_text(text, path)


@torch.no_grad()
def _torchscript(model: Recommender, path: Path, n_users: int) -> None:
    model = model.cpu().eval()
    scorer = _Scorer(model)
    example = torch.arange(min(4, n_users), dtype=torch.int64)
    try:
        with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; it still loads anywhere
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(scorer, (example,), check_trace=False)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is the same user-facing refusal
        raise RecdistillError(
            f"export: {type(model).__name__} does not trace to TorchScript ({type(exc).__name__}: {exc})"
        ) from None
    for b in (1, min(7, n_users)):
        users = torch.arange(b, dtype=torch.int64) * max(1, n_users // max(b, 1)) % n_users
        if not torch.allclose(traced(users), model.score_all(users), rtol=1e-5, atol=1e-6):
            raise RecdistillError(
                f"export: the TorchScript program of {type(model).__name__} does not reproduce its scores "
                f"for a batch of {b} users; this model cannot be exported as TorchScript"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        atomic_write(path, lambda f: torch.jit.save(traced, f))


def check_target(out: str | Path, run_dir: str | Path | None, fresh: bool) -> Path:
    """``out`` (absolute) if an export may be written there (see the module docstring), else a
    one-line error."""
    out = Path(out).absolute()
    if out.exists() and not fresh:
        raise RecdistillError(f"{out} exists: choose another --out, or --fresh to replace it")
    if out.exists() and not out.is_dir():
        raise RecdistillError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):
        raise RecdistillError(
            f"{out} is not an earlier export (no export manifest.json): --fresh replaces only an export; "
            "choose another --out"
        )
    if run_dir is not None:
        src, target = Path(run_dir).resolve(), out.resolve()
        if target == src or src in target.parents or target in src.parents:
            raise RecdistillError(f"--out {out}: inside the run {src} or holding it; choose another folder")
    return out


def export_run(
    run: str | Path | Run, out: str | Path, fresh: bool = False, run_dir: str | Path | None = None
) -> dict[str, Any]:
    """Write the run's primary model to the folder ``out`` (see the module docstring); returns
    the manifest. ``run``: a run directory or a loaded :class:`Run` (then ``run_dir``, if given,
    is its folder, which ``out`` may not be inside or hold)."""
    out = check_target(out, run if not isinstance(run, Run) else run_dir, fresh)
    r = run if isinstance(run, Run) else load_run(run)
    model, ds = r.model, r.dataset
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        stage.chmod(0o755)
    except OSError as exc:
        raise RecdistillError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    try:
        files: list[Path] = []
        if is_factor_model(model):
            fmt = "factors"
            for name, emb in (("user_factors.npy", model.user_emb), ("item_factors.npy", model.item_emb)):
                assert isinstance(emb, torch.nn.Embedding)
                atomic_npy(emb.weight.detach().cpu().float().numpy(), stage / name)
                files.append(stage / name)
            how = "scores = user_factors[u] @ item_factors.T (inner product)"
        else:
            fmt = "torchscript"
            _torchscript(model, stage / "model.ts", ds.n_users)
            files.append(stage / "model.ts")
            how = "scores = torch.jit.load('model.ts')(torch.tensor(users)) -> (B, n_items)"
        train = ds.train.tocsr()
        for name, arr in (("train_indptr.npy", train.indptr), ("train_indices.npy", train.indices)):
            atomic_npy(np.asarray(arr, dtype=np.int64), stage / name)
            files.append(stage / name)
        for name, raw in (("users.csv", ds.user_ids), ("items.csv", ds.item_ids)):
            _ids_csv(np.asarray(raw), stage / name)
            files.append(stage / name)
        metrics = (r.metrics or {}).get("models", {})
        manifest = {
            "export_version": EXPORT_VERSION,
            "format": fmt,
            "model": type(model).__name__.lower(),
            "init": {k: v for k, v in model.init_kwargs.items() if isinstance(v, (int, float, str, bool))},
            "n_users": ds.n_users,
            "n_items": ds.n_items,
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            "dataset": {"name": ds.name, "fingerprint": ds.fingerprint},
            "metrics": metrics,
            "score": how,
            "exclude": "a user u's training items: train_indices[train_indptr[u]:train_indptr[u + 1]]",
            "ids": "users.csv / items.csv: internal index (array rows, model inputs) -> raw id",
            "files": {p.name: _sha256(p) for p in files},
        }
        if fmt == "torchscript":
            manifest["memory"] = "the program scores whole batches at once: call it on chunks of users"
        atomic_json(manifest, stage / "manifest.json")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old)
        else:
            stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return manifest
