"""ワークショップの配布用コピー: 演習の解答例を消したノートブックを書く（`uv run course strip-solutions`）。

解答例のセル（タグ solution）の中身を「# 解答を書いてください」に置き換え、出力を消し、折りたたみを外す。
それ以外のセルと保存出力はそのまま残す。講師向けの使い方は docs/instructor.md。
"""
from __future__ import annotations

import logging
from pathlib import Path

import nbformat

from helpers.errors import CourseError

log = logging.getLogger(__name__)

SOLUTION_TAG = "solution"
PLACEHOLDER = "# 解答を書いてください"


class HandoutError(CourseError, ValueError):
    """配布用コピーの出力先の誤り。"""


def strip_solutions(nb: nbformat.NotebookNode) -> int:
    """nb の解答例のセルを空欄にする（その場で書き換える）。消したセルの数を返す。"""
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            cell.source = PLACEHOLDER
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.get("jupyter", {}).pop("source_hidden", None)
            if cell.metadata.get("jupyter") == {}:
                del cell.metadata["jupyter"]
            count += 1
    return count


def write_handouts(notebooks: list[Path], out_dir: Path) -> dict[str, int]:
    """notebooks の解答なしコピーを out_dir に書く。{ファイル名: 消したセルの数} を返す。"""
    out_dir = Path(out_dir)
    sources = {Path(p).resolve().parent for p in notebooks}
    if out_dir.resolve() in sources:
        raise HandoutError(f"--out には元のノートブックと別のフォルダを指定してください（受け取った値: {out_dir}）。")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        counts[path.name] = strip_solutions(nb)
        nbformat.write(nb, out_dir / path.name)
        log.info("%s: 解答例 %d セルを空欄にしました", path.name, counts[path.name])
    return counts
