"""ノートブック冒頭の「環境セル」で呼ぶ `start()`（全ノートブック共通。ノートブック 01 で紹介）。

papermill の parameters（profile, device, seed …）を Hydra の上書きに変換して conf/ を合成するので、
型違い・範囲外・未知の値は重い処理の前に日本語のエラーになる。
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from helpers.config import compose_config
from helpers.env import (
    describe_device,
    in_colab,
    project_root,
    resolve_device,
    seed_everything,
    setup_japanese_fonts,
    versions_table,
)

log = logging.getLogger(__name__)


@dataclass
class NotebookContext:
    """start() の結果: 合成済みの設定と、実際に使うデバイスなど。"""

    cfg: DictConfig
    device: str
    root: Path
    font: str

    @property
    def profile(self) -> str:
        return self.cfg.profile_name

    @property
    def seed(self) -> int:
        return self.cfg.trainer.seed


def start(
    profile: str = "quick",
    device: str = "auto",
    seed: int = 0,
    overrides: list[str] | tuple[str, ...] = (),
    extra_packages: tuple[str, ...] = (),
    show: bool = True,
    uses_torch: bool = True,
) -> NotebookContext:
    """設定を合成・検査し、乱数を固定し、デバイスとフォントを準備して、バージョン表を表示する。

    uses_torch=False のノートブックは torch を import しない（数秒かかる）。デバイスは "cpu" とする。
    """
    cfg = compose_config([f"profile={profile}", f"trainer.device={device}", f"trainer.seed={seed}", *overrides])
    resolved = resolve_device(cfg.trainer.device) if uses_torch else "cpu"
    seed_everything(cfg.trainer.seed, deterministic=cfg.trainer.deterministic, with_torch=uses_torch)
    font = setup_japanese_fonts()
    ctx = NotebookContext(cfg=cfg, device=resolved, root=project_root(), font=font)
    if show:
        from IPython.display import display

        shown = describe_device(resolved) if uses_torch else "cpu（このノートブックは PyTorch を使わない）"
        print(f"profile = {ctx.profile} / device = {shown} / seed = {ctx.seed}")
        print(f"Colab = {in_colab()} / 日本語フォント = {font}")
        display(versions_table(extra_packages))
    return ctx
