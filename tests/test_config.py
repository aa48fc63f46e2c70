"""conf/ の合成・上書き・不正値の拒否（helpers.config）。"""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from helpers.config import METHOD_NAMES, ConfigError, compose_config, validate
from helpers.env import project_root


def test_default_composition_is_quick_and_complete():
    cfg = compose_config()
    assert cfg.profile_name == "quick"
    assert cfg.data.name == "bikeshare"
    assert set(cfg.methods) == set(METHOD_NAMES)
    assert list(cfg.benchmark.methods) == list(METHOD_NAMES)
    assert cfg.search is None
    # リゾルバ ${project_root:} と補間が解決される
    assert cfg.paths.data_dir == str(project_root() / "data")
    assert OmegaConf.is_missing(cfg, "profile_name") is False


def test_profile_full_changes_benchmark_and_keeps_model_values():
    quick, full = compose_config(), compose_config(["profile=full"])
    assert list(full.benchmark.seeds) == [0, 1, 2, 3, 4]
    assert list(full.benchmark.label_fractions) == [0.05, 0.1]
    assert full.data.max_source_rows is None and quick.data.max_source_rows == 2000
    # quick は TabDDPM を小さくし、full は model/tabddpm.yaml の値のまま
    assert quick.methods.tabddpm.steps < full.methods.tabddpm.steps


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["data.label_fraction=0.05"], ("data", "label_fraction", 0.05)),
        (["experiment=bikeshare_5pct"], ("data", "label_fraction", 0.05)),
        (["experiment=synthetic_shift"], ("data", "name", "synthetic")),
        (["trainer.device=cpu"], ("trainer", "device", "cpu")),
    ],
)
def test_overrides_apply(overrides, key):
    cfg = compose_config(overrides)
    group, name, value = key
    assert cfg[group][name] == value


def test_group_option_can_be_swapped_at_a_package():
    cfg = compose_config(["model@methods.fehda=pooled"])
    assert cfg.methods.fehda.target_weight == cfg.methods.pooled.target_weight


def test_hparams_search_adds_search_node():
    cfg = compose_config(["hparams_search=cross_attention_optuna"])
    assert list(cfg.search.methods) == ["cross_attention"]
    assert cfg.search.n_trials >= 1
    assert "lr" in cfg.search.spaces.cross_attention
    # optuna.yaml の HGB 系の空間は YAML のアンカーで共有し、fehda は target_weight を足す
    cfg = compose_config(["hparams_search=optuna"])
    assert set(cfg.search.spaces.target_only) < set(cfg.search.spaces.fehda)


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["data.lrr=3"], ["data.lrr"]),                                # 未知のキー
        (["trainer.seed=abc"], ["trainer.seed"]),                      # 型違い
        (["methods.tabddpm.lr=-1"], ["methods.tabddpm.lr", "(0, ∞)"]),  # 負の学習率
        (["data.label_fraction=1.5"], ["data.label_fraction", "(0, 1]"]),
        (["data.label_fraction=0"], ["data.label_fraction", "(0, 1]"]),
        (["trainer.device=tpu"], ["trainer.device", "auto, cpu, cuda"]),
        (["benchmark.methods=[fehda,foo]"], ["benchmark.methods", "foo"]),
        (["benchmark.label_fractions=[0.1,2.0]"], ["benchmark.label_fractions", "2.0"]),
        (["profile=fast"], ["profile"]),                               # 未知のグループの選択肢
        (["methods.cross_attention.dropout=1.0"], ["methods.cross_attention.dropout", "[0, 1)"]),
    ],
)
def test_bad_values_are_rejected_with_the_key_named(overrides, fragments):
    with pytest.raises(ConfigError) as err:
        compose_config(overrides)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message


def test_validate_returns_dataclasses():
    obj = validate(compose_config())
    assert type(obj).__name__ == "Config"
    assert type(obj.methods.cross_attention).__name__ == "CrossAttentionConfig"


def test_all_problems_are_reported_together():
    with pytest.raises(ConfigError) as err:
        compose_config(["methods.tabddpm.lr=-1", "data.label_fraction=2"])
    assert "methods.tabddpm.lr" in str(err.value) and "data.label_fraction" in str(err.value)
