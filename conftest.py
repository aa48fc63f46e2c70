"""pytest の共通設定。

nbval（notebooks/ の保存出力を再実行して比べる）のカーネルにも `course store` と同じ環境変数
（TQDM_DISABLE=1 など、helpers.runner.STORE_ENV）を渡し、保存時と同じ条件で再実行させる。
nbval の項目には notebook の印を付けるので、`pytest -m "not notebook"` で遅いテストをまとめて外せる。
"""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell

from helpers.runner import kernel_env


def pytest_configure(config):
    # --nbval-sanitize-with の相対パスは、どこから pytest を起動してもリポジトリのルートから解決する
    path = getattr(config.option, "nbval_sanitize_with", None)
    if path and not Path(path).is_absolute():
        config.option.nbval_sanitize_with = str(config.rootpath / path)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if isinstance(item, IPyNbCell):
            item.add_marker(pytest.mark.notebook)
            notebook = item.parent  # IPyNbFile: setup() でカーネルを起動する
            if not getattr(notebook, "_course_env", False):
                notebook.setup = _in_store_env(notebook.setup)
                notebook._course_env = True


def _in_store_env(setup):
    @functools.wraps(setup)
    def wrapped():
        with kernel_env():  # 起動するカーネルがこの環境変数を受け継ぐ
            setup()

    return wrapped
