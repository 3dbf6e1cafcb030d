"""Config: defaults <- YAML <- flags <- --set; unknown keys and wrong types are errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from recdistill.config import (
    Config,
    add_training_flags,
    config_from_args,
    make_config,
    parse_dataclass,
    parse_set,
)


def test_defaults_and_resolved_protocol():
    cfg = make_config()
    assert isinstance(cfg, Config) and cfg.model.name == "bpr" and cfg.train.lr == 1e-3
    assert cfg.resolved_protocol() == "full" and cfg.resolved_monitor() == "H@50"
    dcd = make_config(sets=["data.name=citeulike-dcd"])
    assert dcd.resolved_protocol() == "sampled" and dcd.resolved_monitor() == "H@5"


def test_merge_order_yaml_then_flags_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: {name: neumf, dim: 16}\ntrain: {lr: 1e-2, epochs: 7, ks: [5, 10]}\n")
    cfg = make_config(f, {"train": {"epochs": 3}}, ["train.lr=0.5", "model.params.init_std=0.1"])
    assert cfg.model.name == "neumf" and cfg.model.dim == 16
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.5 and cfg.train.ks == (5, 10)
    assert cfg.model.params == {"init_std": 0.1}
    assert make_config(overrides=cfg.to_dict()) == cfg  # round trip through a dict


@pytest.mark.parametrize(
    "item, match",
    [
        ("train.lrr=1", "unknown config key 'train.lrr'"),
        ("trian.lr=1", "unknown config key 'trian'"),
        ("train.epochs=1.5", "train.epochs: expected int"),
        ("train.lr=fast", "train.lr: expected float"),
        ("train.progress=3", "train.progress: expected bool"),
        ("train.ks=[5, x]", r"train.ks\[1\]: expected int"),
        ("data=3", "data: expected a mapping"),
        ("train.eval_protocol=both", "auto|full|sampled"),
        ("train.epochs=0", "positive"),
        ("train.lr", "expected key=value"),
    ],
)
def test_bad_values_name_the_key(item, match):
    with pytest.raises(ValueError, match=match):
        make_config(sets=[item])


def test_yaml_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        make_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping of sections"):
        make_config(bad)
    bad.write_text("train: {epochz: 3}\n")
    with pytest.raises(ValueError, match="unknown config key 'train.epochz'"):
        make_config(bad)


def test_parse_set_values():
    assert parse_set("train.lr=1e-3") == {"train": {"lr": "1e-3"}}  # YAML 1.1; coerced later
    assert make_config(sets=["train.lr=1e-3"]).train.lr == 1e-3
    assert parse_set("model.dim=null") == {"model": {"dim": None}}
    assert parse_set("model.size=none") == {"model": {"size": None}}


def test_method_dataclass_for_distill_params():
    @dataclass(frozen=True)
    class Params:
        lam: float = 0.5
        n: int = 10

    cfg = make_config(sets=["distill.method=rrd", "distill.params.lam=0.1"])
    p = parse_dataclass(Params, cfg.distill.params, "distill.params")
    assert p == Params(lam=0.1, n=10)
    with pytest.raises(ValueError, match="unknown config key 'distill.params.lamb'"):
        parse_dataclass(Params, {"lamb": 1}, "distill.params")


def test_training_flags():
    parser = argparse.ArgumentParser()
    add_training_flags(parser)
    args = parser.parse_args(
        [
            "--dataset",
            "ml-100k",
            "--model",
            "cdae",
            "--dim",
            "12",
            "--lr",
            "0.01",
            "--epochs",
            "4",
            "--seed",
            "3",
            "--set",
            "train.patience=2",
            "--no-progress",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.data.name, cfg.model.name, cfg.model.dim, cfg.model.size) == ("ml-100k", "cdae", 12, None)
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.seed, cfg.train.patience) == (0.01, 4, 3, 2)
    assert cfg.train.progress is False
    args = parser.parse_args(["--size", "student"])
    assert config_from_args(args).model.size == "student"


def test_shipped_configs_parse():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert files
    from conftest import make_toy_dataset
    from recdistill.models import MODELS, build_model

    ds = make_toy_dataset()
    for f in files:
        cfg = make_config(f)
        assert cfg.model.name in MODELS, f
        build_model(cfg.model.name, ds, dim=2, **cfg.model.params)  # its params are the model's


# ---- configs are whole before anything runs (issue #11)
def test_train_and_model_values_are_checked_by_the_dataclasses_on_every_path(tmp_path):
    from recdistill.config import Config, ModelConfig, TrainConfig, load_yaml, parse_dataclass

    with pytest.raises(ValueError, match="train.eval_protocol"):
        TrainConfig(eval_protocol="bogus")
    with pytest.raises(ValueError, match="train.n_neg"):
        TrainConfig(n_neg=0)
    with pytest.raises(ValueError, match="model.size"):
        ModelConfig(size="huge")
    f = tmp_path / "config.yaml"
    f.write_text("train: {epochs: 0}\n")
    with pytest.raises(ValueError, match="train.epochs"):  # the path a saved run's config takes
        parse_dataclass(Config, load_yaml(f))


def test_protocol_and_sizes_come_from_the_dataset_description():
    from recdistill.config import Config, DataConfig
    from recdistill.data.catalog import DATASETS
    from recdistill.models import preset_family

    assert DATASETS.get("citeulike-dcd").protocol == "sampled"
    assert Config(data=DataConfig(name="citeulike-dcd")).resolved_protocol() == "sampled"
    assert Config(data=DataConfig(name="citeulike-bd")).resolved_protocol() == "full"
    assert (
        Config(data=DataConfig(name="my-log-dcd.csv")).resolved_protocol() == "full"
    )  # a file: no suffix rule
    assert preset_family("citeulike-dcd") == "dcd" and preset_family("runs/x-dcd.tsv") == "bd"


@pytest.mark.parametrize("method", ["bd", "rrd", "cd", "rd"])
def test_distill_params_go_through_the_strict_parser_before_any_data_is_loaded(method, capsys):
    from recdistill.cli import main

    # a dataset that does not exist: the parameter error must come first
    rc = main(
        [
            "distill",
            "--method",
            method,
            "--dataset",
            "no-such-dataset",
            "--out",
            "/nonexistent/x",
            "--teacher",
            "/nonexistent/t",
            "--set",
            "distill.params.no_such_key=1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "unknown config key 'distill.params.no_such_key'" in err and "Traceback" not in err


def test_bd_params_from_the_command_line_are_typed(capsys):
    from recdistill.cli import main

    rc = main(
        [
            "distill",
            "--method",
            "bd",
            "--dataset",
            "no-such-dataset",
            "--out",
            "/nonexistent/x",
            "--set",
            "distill.params.eps_t=1e-4",
            "--set",
            "distill.params.sampling=rank",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "sampling='rank'" in err  # eps_t parsed as a float; the bad choice named
