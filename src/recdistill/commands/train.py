"""`recdistill train | evaluate | profile | demo`: parse arguments, call the Python API."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from recdistill.config import add_training_flags, check_out_args, config_from_args
from recdistill.errors import RecdistillError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a base recommender (BPR, NeuMF, CDAE)")
    add_training_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run on the test (or valid) split")
    p.add_argument("run_dir")
    p.add_argument("--protocol", choices=["full", "sampled"], default="full")
    p.add_argument("--split", choices=["valid", "test"], default="test")
    p.add_argument("--ks", default=None, help="comma-separated cut-offs (default: the run's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("profile", help="parameters and time to produce every user's top-K list")
    p.add_argument("run_dir")
    p.add_argument("-k", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser(
        "demo",
        help="distil a teacher into a 10x smaller student on a real dataset, against the plain student",
    )
    p.add_argument("--data-dir", default=None, help="raw data folder (default: $RECDISTILL_DATA)")
    p.add_argument("--out", default="runs/demo", help="folder for the runs (default runs/demo)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, default=None, help="every run's epochs (a quick look)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="one epoch per run: checks that the demo runs end to end (CI runs it), not a result",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="retrain runs that already finished")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="runs in parallel processes, one thread each (default: 2 with 2 or more CPU cores)",
    )
    p.set_defaults(func=cmd_demo)


def _override_data_dir(cfg: Any, data_dir: str | None) -> Any:
    import dataclasses

    if data_dir is None:
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))


def cmd_train(args: argparse.Namespace) -> int:
    from recdistill.runs import train_run

    cfg = config_from_args(args)
    check_out_args(args)
    _, metrics = train_run(cfg, args.out, resume=args.resume, fresh=args.fresh, log=print)
    m = metrics["models"]["model"]
    proto = cfg.resolved_protocol()
    print(
        f"{cfg.model.name} ({m['n_parameters']:,} parameters), best epoch {m['best_epoch']}, "
        f"{proto} protocol, test: " + _fmt(m["test"][proto])
    )
    print(f"wrote {args.out}/ (model.pt, config.yaml, log.jsonl, metrics.json)")
    return 0


def _fmt(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "@" in k)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recdistill.eval import evaluate_model
    from recdistill.runs import check_device, load_config, load_dataset_for, load_run

    cfg = _override_data_dir(load_config(args.run_dir), args.data_dir)
    run = load_run(args.run_dir, dataset=load_dataset_for(cfg), device=check_device(args.device))
    ks = [int(k) for k in args.ks.split(",")] if args.ks else list(cfg.train.ks)
    result = {n: evaluate_model(m, run.dataset, args.protocol, args.split, ks) for n, m in run.models.items()}
    for n, met in result.items():
        print(f"{n}: {args.protocol}/{args.split}: {_fmt(met)}")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from recdistill.analysis.profile import profile_model
    from recdistill.runs import check_device, load_config, load_dataset_for, load_run

    cfg = _override_data_dir(load_config(args.run_dir), args.data_dir)
    run = load_run(args.run_dir, dataset=load_dataset_for(cfg), device=check_device(args.device))
    for n, m in run.models.items():
        p = profile_model(m, run.dataset, k=args.k, batch_size=args.batch_size)
        print(
            f"{n}: {p['model']} {p['n_parameters'] / 1e6:.2f}M parameters; top-{p['k']} lists of "
            f"{p['n_users']:,} users in {p['topk_time_s']:.2f} s on {p['device']} "
            f"({p['threads']} threads)"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from recdistill.experiment.demo import run_demo
    from recdistill.parallel import world

    if world()[1] > 1:
        raise RecdistillError("recdistill demo runs its runs itself; start it without torchrun")

    epochs = args.epochs
    if args.smoke:
        print("smoke run: one epoch per run, a check that the demo runs end to end, not a result")
        epochs = 1 if epochs is None else epochs
    run_demo(
        Path(args.out),
        data_dir=args.data_dir,
        device=args.device,
        seed=args.seed,
        epochs=epochs,
        fresh=args.fresh,
        jobs=args.jobs,
    )
    return 0
