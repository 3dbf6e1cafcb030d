"""Issue #6, the teacher question: logit statistics of BD's BPR teacher and student on citeulike-bd.

BPR learns only per-user score differences, so each model's per-user logit offset and scale are
arbitrary, while BD's ``BCE(σ(z^X/τ), σ(z^Y/τ))`` (Eq. 3) compares absolute logits. This script
measures, on the pre-trained seed-0 teacher and student (``runs/bd/<dataset>/{teacher,student}``):

1. per-user mean μ_u and std σ_u of each model's logits over the unobserved items ``I_u^-``;
2. on the items a refresh actually draws (BD's default settings, Eqs. 4-5), both models' logits
   and ranks, and the sign of the learner's BCE gradient ``(σ(z^X/τ) - σ(z^Y/τ))/τ``: the draws
   are items the other model ranks higher than the learner, so the intent is to raise the
   learner's logit (gradient < 0); the share that instead pushes it down is the mismatch;
3. the same sign with each model's logits standardised per user, ``(z - μ_u)/σ_u``;
4. how BD moved the teacher's logits and ranks of the S→T drawn items: the BD run's teacher and
   the λ = 0 control's teacher (same schedule, no distillation) against the pre-trained one;
5. the size of each pre-trained model's gradients of ``L_CF`` (BPR, one uniform negative) and of
   ``λ·L_BD`` on random batches of 1024 training interactions (the paper's λ = 0.5; raw and
   standardised Eq. 3).

Outputs ``results/bd_logits_<dataset>.json`` / ``.md`` and ``results/bd_logits_<dataset>.png``.

    python scripts/run_bd_logits.py [--bd-run bd-rd-labelonly0] [--control bd-lambda0] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from recdistill.atomic import atomic_json, atomic_text
from recdistill.distill.bd import BD, BDConfig, bd_refresh
from recdistill.models.base import Batch
from recdistill.ranking import RankEngine
from recdistill.ranking.order import rank_rows
from recdistill.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("run_bd", Path(__file__).with_name("run_bd.py"))
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)

QS = (0.1, 0.5, 0.9)
KEYS = ("sampling", "n_samples", "eps_t", "eps_e", "tau", "standardize")


def q(x: np.ndarray) -> dict[str, float]:
    """Mean and 10/50/90% quantiles."""
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), **{f"q{int(100 * p)}": float(np.quantile(x, p)) for p in QS}}


@torch.no_grad()
def analyse(
    models: dict, train: sp.csr_matrix, draws: dict[str, torch.Tensor], cfg: BDConfig, chunk: int = 256
) -> dict:
    """Per-user logit stats of every model and, on the draws, logits and ranks (chunks of users)."""
    n = train.shape[0]
    deg = np.diff(train.indptr)
    stats = {k: {"mu": np.zeros(n), "sd": np.zeros(n)} for k in models}
    s = cfg.n_samples
    at = {d: {k: {"z": [], "rank": []} for k in models} for d in draws}
    for start in range(0, n, chunk):
        users = np.arange(start, min(start + chunk, n))
        sub = train[users]
        rows = torch.from_numpy(np.repeat(np.arange(len(users)), np.diff(sub.indptr)))  # (nnz_B,)
        cols = torch.from_numpy(sub.indices.astype(np.int64))  # (nnz_B,)
        lo, hi = train.indptr[users[0]], train.indptr[users[-1] + 1]
        row_of = torch.from_numpy(np.repeat(np.arange(len(users)), deg[users]))  # (nnz_B,)
        ut = torch.from_numpy(users)
        for k, model in models.items():
            z = model.score_all(ut).double()  # (B, m)
            r = rank_rows(z.float(), rows, cols)[0]  # (B, m) int32, 0 = observed
            unobs = r > 0  # (B, m)
            cnt = unobs.sum(1)  # (B,)
            mu = torch.where(unobs, z, 0.0).sum(1) / cnt  # (B,)
            sd = (torch.where(unobs, (z - mu[:, None]) ** 2, 0.0).sum(1) / cnt).sqrt()  # (B,)
            stats[k]["mu"][users] = mu.numpy()
            stats[k]["sd"][users] = sd.numpy()
            for d, dr in draws.items():
                items = dr[lo:hi].long()  # (nnz_B, s)
                rr = row_of[:, None].expand(-1, s)  # (nnz_B, s)
                at[d][k]["z"].append(z[rr, items].numpy().ravel())
                at[d][k]["rank"].append(r[rr, items].numpy().ravel())
    for d in at:
        for k in at[d]:
            at[d][k] = {x: np.concatenate(v) for x, v in at[d][k].items()}
    return {"stats": stats, "at": at}


def grad_norms(
    models: dict,
    dataset,
    draws: dict,
    stats: dict,
    cfg: BDConfig,
    seed: int,
    n_batches: int = 20,
    batch_size: int = 1024,
) -> dict:
    """Mean L2 norms over random interaction batches of each model's gradients of ``L_CF`` and
    ``λ·L_BD`` (raw Eq. 3 and standardised), and the cosine between ``L_CF``'s and raw ``L_BD``'s."""
    train = sp.csr_matrix(dataset.train)
    train.sort_indices()
    users_all = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))  # (nnz,)
    rng = np.random.default_rng(seed)
    objs = {}
    for std in (False, True):  # one round of draws (nnz, s): every epoch uses it
        o = BD(
            models["T"],
            models["S"],
            dataset,
            dataclasses.replace(cfg, standardize=std, fresh_draws=False),
            seed=seed,
        )
        o.draws, o.stats = {k: v[None] for k, v in draws.items()}, stats
        objs[std] = o
    acc: dict = {}
    for _ in range(n_batches):
        idx = rng.choice(train.nnz, batch_size, replace=False)
        batch = Batch(
            users=torch.from_numpy(users_all[idx]),
            pos=torch.from_numpy(train.indices[idx].astype(np.int64)),
            neg=torch.from_numpy(rng.integers(0, train.shape[1], (batch_size, 1))),
            idx=torch.from_numpy(idx),
        )
        for name, key in (("teacher", "T"), ("student", "S")):
            model = models[key]
            params = [p for p in model.parameters() if p.requires_grad]
            grads = {}
            for t in ("cf", "bd_raw", "bd_std"):
                if t == "cf":
                    loss = model.base_loss(batch)
                else:
                    loss = cfg.weight(name) * objs[t == "bd_std"].distill_loss(name, batch, cfg.warmup_epochs)
                g = torch.autograd.grad(loss, params, allow_unused=True)
                grads[t] = torch.cat(
                    [(x if x is not None else torch.zeros_like(p)).reshape(-1) for x, p in zip(g, params)]
                )  # (n_params,)
                acc.setdefault(f"{name}_{t}", []).append(float(grads[t].norm()))
            cos = torch.nn.functional.cosine_similarity(grads["cf"], grads["bd_raw"], dim=0)
            acc.setdefault(f"{name}_cos_cf_bd", []).append(float(cos))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bd" / rb.DATASET))
    p.add_argument("--bd-run", default="bd-rd-labelonly0", help="BD run whose teacher is compared")
    p.add_argument("--control", default="bd-lambda0", help="its λ = 0 control")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    runs = Path(a.runs)
    dataset = rb.load_dataset_for(rb.cfg_for(a.data_dir, rb.DIMS["teacher"], 1, a.seed))
    train = sp.csr_matrix(dataset.train)
    train.sort_indices()
    models = {
        "T": load_run(runs / "teacher", dataset).model.eval(),
        "S": load_run(runs / "student", dataset).model.eval(),
    }
    bd_models = load_run(runs / a.bd_run, dataset).models
    ctrl_models = load_run(runs / a.control, dataset).models
    models.update(
        {
            "T_bd": bd_models["teacher"].eval(),
            "S_bd": bd_models["student"].eval(),
            "T_ctrl": ctrl_models["teacher"].eval(),
            "S_ctrl": ctrl_models["student"].eval(),
        }
    )
    cfg = BD.build_config(rb.bd_params_of(runs / a.bd_run))
    bd_cfg = dataclasses.asdict(cfg)
    gen = torch.Generator().manual_seed(a.seed)
    # the first refresh of the BD run: draws from the pre-trained models (one round: the first
    # epoch's), with the per-user (μ_u, σ_u) of T and S over I_u^- for the standardised loss
    engine = RankEngine(dataset.train, "cpu", chunk_size=cfg.chunk)
    ref = bd_refresh(
        engine, models["T"], models["S"], dataclasses.replace(cfg, fresh_draws=False, standardize=True), gen
    )
    draws = {n: d.index[0] for n, d in ref.draws.items()}  # {learner: (nnz, s)}
    stats = {"teacher": ref.stats_t, "student": ref.stats_s}
    res = analyse(models, train, draws, cfg)
    st, at = res["stats"], res["at"]
    tau = cfg.tau
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    users = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))  # (nnz,)
    u_draw = np.repeat(users, cfg.n_samples)  # (nnz*s,) user of each draw
    out: dict = {
        "dataset": rb.DATASET,
        "seed": a.seed,
        "commit": rb.commit(),
        "command": "python " + " ".join(["scripts/run_bd_logits.py"] + sys.argv[1:]),
        "bd_run": a.bd_run,
        "control": a.control,
        "bd_config": bd_cfg,
        "per_user": {k: {"mu": q(v["mu"]), "sd": q(v["sd"])} for k, v in st.items()},
    }
    # 1. per-user affine relation between T and S: correlation of μ_u, ratio of σ_u
    out["per_user"]["sd_ratio_T_over_S"] = q(st["T"]["sd"] / st["S"]["sd"])
    out["per_user"]["mu_diff_T_minus_S"] = q(st["T"]["mu"] - st["S"]["mu"])
    for m in models.values():
        m.train()
    out["grad_norms"] = grad_norms(models, dataset, draws, stats, cfg, a.seed)
    out["draws"] = {}
    for learner, (x, y) in (("teacher", ("T", "S")), ("student", ("S", "T"))):
        zx, zy = at[learner][x]["z"], at[learner][y]["z"]
        rx, ry = at[learner][x]["rank"], at[learner][y]["rank"]
        mux, sdx = st[x]["mu"][u_draw], st[x]["sd"][u_draw]
        muy, sdy = st[y]["mu"][u_draw], st[y]["sd"][u_draw]
        zxs, zys = (zx - mux) / sdx, (zy - muy) / sdy
        g_raw = (sig(zx / tau) - sig(zy / tau)) / tau  # d BCE / d z^X
        g_std = (sig(zxs / tau) - sig(zys / tau)) / tau / sdx
        d = {
            "n": int(zx.size),
            "rank_learner": q(rx),
            "rank_other": q(ry),
            "share_other_ranks_higher": float((ry < rx).mean()),
            "z_learner": q(zx),
            "z_other": q(zy),
            "z_other_minus_learner": q(zy - zx),
            "zstd_learner": q(zxs),
            "zstd_other": q(zys),
            "raw_share_pushed_down": float((g_raw > 0).mean()),
            "raw_mean_grad": float(g_raw.mean()),
            "std_share_pushed_down": float((g_std > 0).mean()),
            "std_mean_grad": float(g_std.mean()),
        }
        if learner == "teacher":
            d["share_top50_before"] = float((rx <= 50).mean())
            for tag in ("bd", "ctrl"):
                z_after, r_after = at[learner][f"T_{tag}"]["z"], at[learner][f"T_{tag}"]["rank"]
                mu_a = st[f"T_{tag}"]["mu"][u_draw]
                d[f"delta_z_{tag}"] = q(z_after - zx)
                d[f"delta_z_rel_mean_{tag}"] = q((z_after - mu_a) - (zx - mux))
                d[f"delta_rank_{tag}"] = q(r_after.astype(np.float64) - rx)
                d[f"share_rank_improved_{tag}"] = float((r_after < rx).mean())
                d[f"share_top50_{tag}"] = float((r_after <= 50).mean())
        out["draws"][learner] = d
    atomic_json(out, ROOT / "results" / f"bd_logits_{rb.DATASET}.json")
    atomic_text(render(out), ROOT / "results" / f"bd_logits_{rb.DATASET}.md")
    plot(st, at, cfg, ROOT / "results" / f"bd_logits_{rb.DATASET}.png")
    print(render(out))


def fmt(d: dict) -> str:
    return f"{d['mean']:.3g} [{d['q10']:.3g}, {d['q50']:.3g}, {d['q90']:.3g}]"


def render(o: dict) -> str:
    pu, dr = o["per_user"], o["draws"]
    names = {
        "T": "Teacher (pre-trained)",
        "S": "Student (pre-trained)",
        "T_bd": f"BD-Teacher ({o['bd_run']})",
        "S_bd": f"BD-Student ({o['bd_run']})",
        "T_ctrl": f"control Teacher ({o['control']})",
        "S_ctrl": f"control Student ({o['control']})",
    }
    lines = [
        f"# BD's logit scale: BPR teacher (dim 50) and student (dim 5) on {o['dataset']}",
        "",
        f"seed {o['seed']}; commit {o['commit']}; `{o['command']}`. Draws: one refresh of BD "
        f"({json.dumps({k: o['bd_config'][k] for k in KEYS})}) "
        "from the pre-trained models. Cells: mean [10%, 50%, 90% quantiles].",
        "",
        "## Per-user logit statistics over the unobserved items",
        "",
        "| model | μ_u (per-user mean) | σ_u (per-user std) |",
        "|---|---|---|",
    ]
    for k, n in names.items():
        lines.append(f"| {n} | {fmt(pu[k]['mu'])} | {fmt(pu[k]['sd'])} |")
    lines += [
        "",
        f"σ_u(T)/σ_u(S): {fmt(pu['sd_ratio_T_over_S'])}; μ_u(T) - μ_u(S): {fmt(pu['mu_diff_T_minus_S'])}.",
        "",
        "## On the drawn items (learner X follows Y)",
        "",
        "| | S→T: teacher learns | T→S: student learns |",
        "|---|---|---|",
    ]
    t, s = dr["teacher"], dr["student"]
    rows = [
        ("draws", "n", "{}"),
        ("rank by the learner", "rank_learner", None),
        ("rank by the other", "rank_other", None),
        ("share the other ranks higher", "share_other_ranks_higher", "{:.3f}"),
        ("z learner", "z_learner", None),
        ("z other", "z_other", None),
        ("z other - z learner", "z_other_minus_learner", None),
        ("standardised z learner", "zstd_learner", None),
        ("standardised z other", "zstd_other", None),
        ("raw BCE: share of draws pushing the learner's logit DOWN", "raw_share_pushed_down", "{:.3f}"),
        ("raw BCE: mean dL/dz learner", "raw_mean_grad", "{:+.4f}"),
        ("standardised BCE: share pushing DOWN", "std_share_pushed_down", "{:.3f}"),
        ("standardised BCE: mean dL/dz learner", "std_mean_grad", "{:+.4f}"),
    ]
    for label, k, f in rows:
        cell = (lambda v: fmt(v)) if f is None else (lambda v, f=f: f.format(v))
        lines.append(f"| {label} | {cell(t[k])} | {cell(s[k])} |")
    lines += [
        "",
        "## How BD moved the teacher on its S→T draws (against the pre-trained teacher)",
        "",
        "| | BD run | λ = 0 control |",
        "|---|---|---|",
    ]
    for label, k, f in (
        ("Δ z", "delta_z", None),
        ("Δ (z - μ_u)", "delta_z_rel_mean", None),
        ("Δ rank (negative = moved up)", "delta_rank", None),
        ("share of draws ranked higher after", "share_rank_improved", "{:.3f}"),
        ("share of draws in the teacher's top 50 after", "share_top50", "{:.4f}"),
    ):
        cell = (lambda v: fmt(v)) if f is None else (lambda v, f=f: f.format(v))
        lines.append(f"| {label} | {cell(t[k + '_bd'])} | {cell(t[k + '_ctrl'])} |")
    lines += [
        "",
        f"Share of the S→T draws in the pre-trained teacher's top 50: {t['share_top50_before']:.4f}.",
    ]
    g = o["grad_norms"]
    lines += [
        "",
        "## Gradient norms, random batches of 1024 interactions (pre-trained models, λ = 0.5)",
        "",
        "| learner | ‖∇ L_CF‖ | ‖∇ λ·L_BD‖ (Eq. 3) | ‖∇ λ·L_BD‖ standardised | cos(∇ L_CF, ∇ L_BD) |",
        "|---|---|---|---|---|",
    ]
    for n in ("teacher", "student"):
        lines.append(
            f"| {n} | {g[n + '_cf']:.3g} | {g[n + '_bd_raw']:.3g} | {g[n + '_bd_std']:.3g} | "
            f"{g[n + '_cos_cf_bd']:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(st: dict, at: dict, cfg: BDConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for k, c in (("T", "C0"), ("S", "C1")):
        axes[0].hist(st[k]["sd"], bins=60, alpha=0.6, color=c, label=f"σ_u {k}")
        axes[0].hist(st[k]["mu"], bins=60, alpha=0.3, color=c, histtype="step", lw=1.5, label=f"μ_u {k}")
    axes[0].set_title("per-user logit mean μ_u and std σ_u over I_u^-", fontsize=9)
    axes[0].legend(fontsize=7)
    rng = np.random.default_rng(0)
    for ax, learner, (x, y) in ((axes[1], "teacher", ("T", "S")), (axes[2], "student", ("S", "T"))):
        zx, zy = at[learner][x]["z"], at[learner][y]["z"]
        pick = rng.choice(zx.size, size=min(5000, zx.size), replace=False)
        ax.scatter(zy[pick], zx[pick], s=2, alpha=0.3)
        lim = [min(zx[pick].min(), zy[pick].min()), max(zx[pick].max(), zy[pick].max())]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel(f"z^{y} (label's model)", fontsize=8)
        ax.set_ylabel(f"z^{x} (learner)", fontsize=8)
        share = float(((1 / (1 + np.exp(-zx / cfg.tau))) > (1 / (1 + np.exp(-zy / cfg.tau)))).mean())
        ax.set_title(
            f"{'S→T' if learner == 'teacher' else 'T→S'} draws: above the diagonal the BCE "
            f"pushes the learner down ({share:.0%})",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
