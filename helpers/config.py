"""conf/ の構造化設定（dataclass スキーマ）と、ノートブック用の compose・検査（ノートブック 01 で紹介）。

値は conf/*.yaml に書き、型と許される範囲はここに書く。OmegaConf は型と未知のキーを、
`validate()` は範囲と選択肢を検査し、誤りのあるキーを完全な名前（例: methods.tabddpm.lr）で示す。
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from helpers.errors import CourseError

VERSION_BASE = "1.3"
METHOD_NAMES = ("source_only", "target_only", "pooled", "fehda", "tabddpm", "cross_attention")


class ConfigError(CourseError, ValueError):
    """設定値の誤り（キー名と許される範囲を含む日本語メッセージ）。"""


# ---- 範囲と選択肢の宣言 -------------------------------------------------------------
def num(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
        hi_open: bool = False, default: Any = MISSING) -> Any:
    """数値フィールド。lo/hi は範囲、*_open=True なら端を含まない。"""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open)})


def choice(*values: str, default: Any = MISSING) -> Any:
    """選択肢から選ぶ文字列フィールド。"""
    return field(default=default, metadata={"choices": values})


def _describe_range(lo, hi, lo_open, hi_open) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-∞' if lo is None else lo}, {'∞' if hi is None else hi}{right}"


def _in_range(value: float, lo, hi, lo_open, hi_open) -> bool:
    if lo is not None and (value < lo or (lo_open and value == lo)):
        return False
    return not (hi is not None and (value > hi or (hi_open and value == hi)))


# ---- スキーマ -------------------------------------------------------------------------
@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    output_dir: str = MISSING
    mlflow_dir: str = MISSING


@dataclass
class SyntheticConfig:
    n_source: int = num(1)
    n_target: int = num(2)
    n_features: int = num(3)
    covariate_shift: float = num()
    concept_shift: float = num(0)
    noise: float = num(0)


@dataclass
class DataConfig:
    name: str = choice("bikeshare", "synthetic")
    label_fraction: float = num(0, 1, lo_open=True)
    target_test_fraction: float = num(0, 1, lo_open=True, hi_open=True)
    min_test_rows: int = num(1)
    max_source_rows: Optional[int] = num(1, default=None)
    synthetic: Optional[SyntheticConfig] = None


@dataclass
class TrainerConfig:
    device: str = choice("auto", "cpu", "cuda")
    seed: int = num(0)
    deterministic: bool = MISSING
    progress: bool = MISSING
    cpu_threads: Optional[int] = num(1, default=None)


@dataclass
class HGBConfig:
    """HistGradientBoostingRegressor を使う手法（ベースラインと FEHDA）。"""

    max_iter: int = num(1)
    learning_rate: float = num(0, 1, lo_open=True)
    max_leaf_nodes: int = num(2)
    min_samples_leaf: int = num(1)
    l2_regularization: float = num(0)


@dataclass
class WeightedHGBConfig(HGBConfig):
    target_weight: float = num(0, lo_open=True)


@dataclass
class TabDDPMConfig:
    timesteps: int = num(2)
    hidden: int = num(1)
    n_layers: int = num(1)
    steps: int = num(1)
    batch_size: Optional[int] = num(1, default=None)   # None なら CPU 1024 / CUDA 4096
    lr: float = num(0, lo_open=True)
    weight_decay: float = num(0)
    ema_decay: float = num(0, 1, hi_open=True)
    dropout: float = num(0, 1, hi_open=True)
    n_synthetic: int = num(1)
    synthetic_weight: float = num(0, lo_open=True)
    use_source: bool = MISSING
    num_threads: Optional[int] = num(1, default=None)   # CPU のスレッド数（None なら torch の既定）


@dataclass
class CrossAttentionConfig:
    d_model: int = num(1)
    d_key: int = num(1)
    top_m: int = num(1)
    n_epochs: int = num(1)
    batch_size: int = num(1)
    lr: float = num(0, lo_open=True)
    weight_decay: float = num(0)
    dropout: float = num(0, 1, hi_open=True)
    target_weight: float = num(0, lo_open=True)
    temperature: float = num(0, lo_open=True)
    val_fraction: float = num(0, 1, hi_open=True)
    patience: int = num(1)
    max_source_rows: Optional[int] = num(1, default=None)
    gbdt_blend: float = num(0, 1)
    cpu_threads: Optional[int] = num(1, default=None)


@dataclass
class MethodsConfig:
    source_only: HGBConfig = MISSING
    target_only: HGBConfig = MISSING
    pooled: WeightedHGBConfig = MISSING
    fehda: WeightedHGBConfig = MISSING
    tabddpm: TabDDPMConfig = MISSING
    cross_attention: CrossAttentionConfig = MISSING


@dataclass
class BenchmarkConfig:
    methods: list[str] = field(default_factory=lambda: list(METHOD_NAMES))
    seeds: list[int] = field(default_factory=lambda: [0])
    label_fractions: list[float] = field(default_factory=lambda: [0.1])
    reference: str = choice(*METHOD_NAMES, default="target_only")
    n_boot: int = num(1, default=1000)


@dataclass
class TrackingConfig:
    enabled: bool = MISSING
    tracking_uri: str = MISSING
    experiment_name: str = MISSING


@dataclass
class SearchConfig:
    """Optuna の探索（hparams_search グループ。helpers/search.py）。

    spaces は 手法名 → {パラメータ名 → {type, low, high, log, choices, when}}。探索するのは methods の手法だけ。
    """

    methods: list[str] = field(default_factory=list)
    n_trials: int = num(1)
    timeout: Optional[float] = num(0, lo_open=True, default=None)
    sampler: str = choice("tpe", "random", "cmaes", "gp")
    pruner: str = choice("none", "median", "hyperband")
    n_folds: int = num(2)
    storage: Optional[str] = None
    study_name: str = MISSING
    spaces: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    profile_name: str = choice("quick", "full")
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    search: Optional[SearchConfig] = None


def register_configs() -> None:
    """スキーマを Hydra の ConfigStore に登録し、リゾルバ ${project_root:} を登録する（何度呼んでもよい）。"""
    ConfigStore.instance().store(name="base_config", node=Config)
    if not OmegaConf.has_resolver("project_root"):
        from helpers.env import project_root

        OmegaConf.register_new_resolver("project_root", lambda: str(project_root()))


# ---- 検査 -----------------------------------------------------------------------------
def _walk(obj: Any, path: str) -> list[str]:
    """dataclass の木をたどり、範囲・選択肢から外れた値の説明を集める。"""
    problems: list[str] = []
    if not dataclasses.is_dataclass(obj):
        return problems
    for f in dataclasses.fields(obj):
        key = f"{path}.{f.name}" if path else f.name
        value = getattr(obj, f.name)
        if "range" in f.metadata and value is not None:
            if isinstance(value, bool) or not _in_range(value, *f.metadata["range"]):
                problems.append(f"{key}={value!r} は範囲外です（許される範囲: {_describe_range(*f.metadata['range'])}）")
        if "choices" in f.metadata and value is not None and value not in f.metadata["choices"]:
            problems.append(f"{key}={value!r} は使えません（選べる値: {', '.join(f.metadata['choices'])}）")
        problems += _walk(value, key)
    return problems


def validate(cfg: DictConfig) -> Config:
    """型・必須値・範囲・選択肢を検査し、Config オブジェクトを返す。誤りは ConfigError にまとめる。"""
    try:
        obj: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except Exception as e:  # OmegaConf の型エラー・欠損値
        raise ConfigError(f"設定を読み込めません: {e}") from e
    problems = _walk(obj, "")
    bench = obj.benchmark
    problems += [f"benchmark.methods の {m!r} は未知の手法です（選べる値: {', '.join(METHOD_NAMES)}）"
                 for m in bench.methods if m not in METHOD_NAMES]
    problems += [f"benchmark.label_fractions の {v} は範囲外です（許される範囲: (0, 1]）"
                 for v in bench.label_fractions if not 0 < v <= 1]
    problems += [f"benchmark.seeds の {s} は範囲外です（0 以上の整数）" for s in bench.seeds if s < 0]
    if obj.search is not None:
        problems += [f"search.methods の {m!r} は未知の手法です（選べる値: {', '.join(METHOD_NAMES)}）"
                     for m in obj.search.methods if m not in METHOD_NAMES]
        problems += [f"search.methods の {m!r} に探索空間 search.spaces.{m} がありません"
                     for m in obj.search.methods if m in METHOD_NAMES and not obj.search.spaces.get(m)]
        if not obj.search.methods:
            problems.append("search.methods が空です（探索する手法を 1 つ以上選んでください）")
    if obj.data.name == "synthetic" and obj.data.synthetic is None:
        problems.append("data.name=synthetic には data.synthetic の設定が必要です（data=synthetic を選んでください）")
    if problems:
        raise ConfigError("設定に誤りがあります:\n- " + "\n- ".join(problems))
    return obj


def compose_config(overrides: list[str] | tuple[str, ...] = (), *, config_name: str = "config",
                   check: bool = True) -> DictConfig:
    """ノートブックから conf/ を compose API で合成する（@hydra.main と同じ conf/ を使う）。

    不正な上書き（未知のキー・型違い・範囲外）は ConfigError（日本語）になる。
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from helpers.env import project_root

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base=VERSION_BASE):
            cfg = compose(config_name=config_name, overrides=list(overrides))
    except Exception as e:  # Hydra の合成エラー（未知のキー・型違い・未知のグループ）
        detail = f"{e}\n{e.__cause__}" if e.__cause__ else str(e)
        raise ConfigError(f"設定の合成に失敗しました（上書き: {list(overrides)}）:\n{detail}") from e
    if check:
        validate(cfg)
    return cfg
