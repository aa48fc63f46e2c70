"""講座ノートブックを 1 本ずつ quick プロファイルで papermill 実行する（`course run` と同じ関数を使う）。

各ノートブックが最後まで通り、時間予算（helpers.runner.BUDGETS_S）の MARGIN 倍以内に終わることを確かめる。
遅いので notebook の印を付けてある（`pytest -m "not notebook"` で外せる）。
"""
from __future__ import annotations

import pytest

from helpers import runner

#: CI の機械は混んでいるので予算の 3 倍まで許す
MARGIN = 3
NOTEBOOKS = runner.list_notebooks(runner.default_notebooks_dir())


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_quick_profile_within_budget(path, tmp_path):
    number = path.name[:2]
    assert number in runner.BUDGETS_S, f"{path.name} の時間予算が helpers.runner.BUDGETS_S にありません"
    budget = runner.BUDGETS_S[number]

    [result] = runner.run_notebooks([path], tmp_path, profile="quick", device="auto", seed=0, progress=False)

    print(f"{path.name}: {result.seconds:.1f} 秒（予算 {budget} 秒、許容 {budget * MARGIN} 秒）")
    assert result.passed, f"{path.name} のセル {result.cell} で失敗: {result.error}（実行済みコピー: {result.output}）"
    assert result.seconds <= budget * MARGIN, f"{path.name} が {result.seconds:.1f} 秒かかった（予算 {budget} 秒）"
    # 02 の Ray Tune は quick では起動しない（起動だけで十数秒）。Ray の経路は tests/test_ray_tune.py が本物の Ray で確かめる
