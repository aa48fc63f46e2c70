"""Google Colab で講座を動かす準備（すべてのノートブックの setup セルから使う。ノートブック 01 で紹介）。

Colab ではこのパッケージ自体がまだ import できないので、setup セルはリポジトリを取得したあと、
このファイルをスクリプトとして `python helpers/colab.py install ROOT` で実行する。
だからこのモジュールは標準ライブラリだけで書く。

方針: Colab にあらかじめ入っている torch と numpy（と Jupyter の部品）は入れ直さない。
それ以外の依存は pyproject.toml の範囲指定のまま入れ、すでに条件を満たすものはそのまま使う。
"""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

log = logging.getLogger(__name__)

#: 講座のリポジトリ（「Open in Colab」のリンクと Colab での取得先。公開先が変わったらここだけを直す）
REPOSITORY_URL = "https://github.com/liburary-docs/liburary-docs"
#: Colab が取得する版（git のタグ）。pyproject.toml の version と同じ「v + version」にする（tests/test_colab_setup.py が確かめる）
REPOSITORY_REF = "v0.1.0"
#: Colab でリポジトリを置く場所
COLAB_DIR = "/content/liburary-docs"
#: Colab が持っているので入れ直さない配布パッケージ（torch と numpy は今の版で固定する）
KEEP_INSTALLED = ("torch", "numpy")
#: Colab には要らない依存（Colab は自前のフロントエンドとカーネルを持つ。入れると Jupyter の部品が置き換わる）
SKIP_ON_COLAB = ("jupyterlab", "ipykernel", "ipywidgets")


def github_path(path: str) -> str:
    """リポジトリ内のファイル（例 notebooks/01_x.ipynb）の GitHub 上の URL（固定した版）。"""
    return f"{REPOSITORY_URL}/blob/{REPOSITORY_REF}/{path}"


def colab_url(path: str) -> str:
    """リポジトリ内のノートブックを Colab で開く URL（固定した版）。"""
    repo = REPOSITORY_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/{REPOSITORY_REF}/{path}"


def colab_badge(path: str) -> str:
    """「Open in Colab」バッジの Markdown 1 行。"""
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path)})"


def _name(requirement: str) -> str:
    """要求文字列（"hydra-core>=1.3,<1.4" など）から正規化した配布名を取り出す。"""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"依存の書き方が読めません: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def colab_requirements(root: Path) -> list[str]:
    """pyproject.toml の依存から、Colab で入れるもの（KEEP_INSTALLED と SKIP_ON_COLAB を除く）。"""
    project = tomllib.loads((Path(root) / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    skip = {_name(n) for n in (*KEEP_INSTALLED, *SKIP_ON_COLAB)}
    return [r for r in project["dependencies"] if _name(r) not in skip]


def constraints() -> list[str]:
    """いま入っている torch と numpy をその版に固定する制約（入っていないものは制約しない）。"""
    pins = []
    for name in KEEP_INSTALLED:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            log.warning("%s が入っていません（Colab なら入っているはずです）。固定せずに進みます。", name)
    return pins


def installer() -> list[str]:
    """パッケージを入れるコマンド: uv があれば `uv pip`（速い）、なければ pip。どちらもこの Python に入れる。"""
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--python", sys.executable]
    return [sys.executable, "-m", "pip", "install", "--quiet"]


def install(root: Path) -> None:
    """root のリポジトリを editable で入れ、足りない依存を入れる（torch と numpy は今の版のまま）。"""
    root = Path(root).resolve()
    if not (root / "pyproject.toml").is_file():
        raise FileNotFoundError(f"root に pyproject.toml がありません（受け取った root: {root}）。")
    before = {name: _version(name) for name in KEEP_INSTALLED}
    with tempfile.TemporaryDirectory(prefix="course-colab-") as tmp:
        pins = Path(tmp) / "constraints.txt"
        pins.write_text("\n".join(constraints()) + "\n", encoding="utf-8")
        command = [*installer(), "-c", str(pins), *colab_requirements(root)]
        log.info("足りない依存を入れます: %s", " ".join(command))
        subprocess.run(command, check=True)
        subprocess.run([*installer(), "--no-deps", "-e", str(root)], check=True)
    after = {name: _version(name) for name in KEEP_INSTALLED}
    if before != after:
        raise RuntimeError(f"torch / numpy の版が変わってしまいました: {before} → {after}")
    log.info("torch %s と numpy %s はそのまま使います。", after["torch"], after["numpy"])


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_gpu() -> str:
    """使える GPU の 1 行説明（なければ Colab での切り替え方）。torch を import する。"""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}（torch {torch.__version__}）"
    return f"GPU なし: CPU で動きます（torch {torch.__version__}）。Colab では「ランタイム → ランタイムのタイプを変更 → GPU」"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python helpers/colab.py", description="Colab で講座の依存を入れる。")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="ROOT のリポジトリと足りない依存を入れる").add_argument("root", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    os.environ.setdefault("UV_LINK_MODE", "copy")  # Colab の /content と uv のキャッシュは別のファイルシステム
    install(args.root)
    log.info("%s", describe_gpu())
    return 0


if __name__ == "__main__":
    # スクリプトとして実行すると helpers/ が sys.path の先頭に入り、config.py などが他のライブラリの import を隠しうる
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.exit(main())
