"""`recdistill data ...` subcommands: ``stats`` and ``download`` (thin: they call the API)."""

from __future__ import annotations

import argparse
import json


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="dataset name (citeulike, citeulike-bd, ...) or a file path")
    p.add_argument("--data-dir", default=None, help="raw data directory (default: $RECDISTILL_DATA)")


def _stats(args: argparse.Namespace) -> int:
    from recdistill.data import dataset_stats, load_dataset
    from recdistill.data.catalog import dropped_in_words

    options = {"seed": args.seed, "cache": not args.no_cache}
    for k in (
        "min_user_interactions",
        "k_core",
        "n_candidates",
        "format",
        "user_col",
        "item_col",
        "time_col",
    ):
        v = getattr(args, k)
        if v is not None:
            options[k] = v
    ds = load_dataset(args.name, data_dir=args.data_dir, **options)
    stats = dataset_stats(ds)
    if args.json:
        print(json.dumps(stats, indent=2, default=str))
        return 0
    rows = [
        ("dataset", stats["name"]),
        ("users", f"{stats['users']:,}"),
        ("items", f"{stats['items']:,}"),
        ("interactions", f"{stats['interactions']:,}"),
        ("train", f"{stats['train']:,}"),
        ("valid", f"{stats['valid']:,}"),
        ("test", f"{stats['test']:,}"),
        ("sparsity", f"{100 * stats['sparsity']:.4f}%"),
        ("candidates/user", f"{stats['candidates_per_user']}"),
    ]
    for k in ("duplicates_dropped", "users_dropped", "split"):
        if k in stats:
            rows.append((k.replace("_", " "), str(stats[k])))
    dropped = dropped_in_words(ds)
    if dropped:
        rows.append(("dropped", dropped))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from recdistill.data.catalog import resolve_data_dir
    from recdistill.data.download import download

    for path in download(args.name, resolve_data_dir(args.data_dir), timeout=args.timeout):
        print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data stats`` and ``data download``."""
    data = sub.add_parser("data", help="datasets: statistics and downloads")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True

    st = dsub.add_parser("stats", help="users, items, interactions, split sizes, sparsity")
    _add_common(st)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--min-user-interactions", type=int, default=None)
    st.add_argument("--k-core", type=int, default=None)
    st.add_argument("--n-candidates", type=int, default=None)
    st.add_argument("--format", default=None, help="reader for a file path (default: from the name)")
    st.add_argument("--user-col", default=None)
    st.add_argument("--item-col", default=None)
    st.add_argument("--time-col", default=None)
    st.add_argument("--no-cache", action="store_true", help="neither read nor write the split cache")
    st.set_defaults(func=_stats)

    dl = dsub.add_parser(
        "download", help="fetch a dataset's raw file from its public source (sha256-checked)"
    )
    _add_common(dl)
    dl.add_argument("--timeout", type=float, default=60.0)
    dl.set_defaults(func=_download)
