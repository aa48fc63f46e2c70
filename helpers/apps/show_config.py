"""conf/ を @hydra.main で合成し、設定の YAML と出力フォルダを表示する CLI アプリ（ノートブック 01 で紹介）。

    python -m helpers.apps.show_config data.label_fraction=0.05 profile=full

ノートブックの compose API（helpers.config.compose_config）と同じ conf/ とスキーマを使う。
範囲外の値は helpers.config.validate の日本語メッセージを表示して終了コード 1 で終わる。
"""
from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from helpers.config import VERSION_BASE, ConfigError, register_configs, validate
from helpers.env import project_root

register_configs()  # スキーマ base_config とリゾルバ ${project_root:} を @hydra.main より先に登録する


@hydra.main(version_base=VERSION_BASE, config_path=str(project_root() / "conf"), config_name="config")
def main(cfg: DictConfig) -> None:
    """合成済みの設定を検査し、YAML（このアプリの出力）と出力フォルダを標準出力に書く。"""
    try:
        validate(cfg)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    print(OmegaConf.to_yaml(cfg), end="")
    print(f"# output_dir: {HydraConfig.get().runtime.output_dir}")


if __name__ == "__main__":
    main()
