"""講座ノートブックの構成を静的に確かめる（実行はしない。速い）。

共通の並び: タイトル（学習目標・所要時間・前提）→ setup セル → parameters セル → 環境セル (start) → 本文 →
元資料からの訂正 → 演習（解答例は折りたたみ）→ まとめ → 公式ドキュメント。保存出力は `course store` が作る。
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache

import nbformat
import papermill
import pytest

from helpers import runner

FOLDER = runner.default_notebooks_dir()
NOTEBOOKS = runner.list_notebooks(FOLDER)
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
CORRECTION_BOX = "**元資料からの訂正**"
PROGRESS_TEXT = re.compile(r"\d+%\|| \d+(?:\.\d+)?(?:it|s)/(?:s|it)\]")

each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


@lru_cache(maxsize=None)
def load(path):
    return nbformat.read(path, as_version=4)


def tagged(nb, tag):
    return [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]


def markdown_lines(nb):
    """Markdown セルの (セル番号, 行)。コードブロック（```）の中は除く。"""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced:
                yield i, line


def heading_cell(nb, title):
    """`## title…` の見出しがある最初のセル番号（なければ None）。"""
    return next((i for i, line in markdown_lines(nb) if re.match(rf"##\s+{re.escape(title)}", line)), None)


def test_notebook_set_is_numbered_without_gaps():
    stray = sorted(p.name for p in FOLDER.glob("*.ipynb") if not NAME.match(p.name))
    assert not stray, f"notebooks/ のノートブック名は NN_slug.ipynb（小文字英数字と _）にしてください: {stray}"
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(numbers) + 1)), f"番号は 01 から欠けなく続けてください: {numbers}"
    assert len(numbers) <= 10


@each_notebook
def test_title_cell(path):
    first = load(path).cells[0]
    assert first.cell_type == "markdown"
    assert re.match(rf"# {path.name[:2]} \S", first.source), "最初のセルは `# NN タイトル` で始める"
    for heading in ("学習目標", "所要時間", "前提"):
        assert re.search(rf"^##\s+{heading}", first.source, re.MULTILINE), f"最初のセルに `## {heading}` がない"


@each_notebook
def test_setup_parameters_and_environment_cells_in_order(path):
    nb = load(path)
    setup, parameters = tagged(nb, "setup"), tagged(nb, "parameters")
    assert setup and nb.cells[setup[0]].cell_type == "code", "setup タグのコードセルがない"
    assert len(parameters) == 1, f"parameters タグのセルはちょうど 1 つ（あるのは {len(parameters)} 個）"
    cell = nb.cells[parameters[0]]
    body = ast.parse(cell.source).body
    plain = [ast.unparse(node) for node in body if not isinstance(node, ast.AnnAssign)]
    assert not plain, f"parameters セルの代入には型を書く（papermill --help-notebook に型が出る）: {plain}"
    defaults = {node.target.id: node.value for node in body}
    assert {"profile", "device", "seed"} <= set(defaults), "parameters セルに profile, device, seed がない"
    # papermill は「=」が 2 つ以上ある行（コメントの中も数える）を読み飛ばし、--help-notebook に出さない
    inferred = papermill.inspect_notebook(str(path))
    assert list(inferred) == list(defaults), f"papermill が読めないパラメータがある: {sorted(set(defaults) - set(inferred))}"
    assert all(p["help"] for name, p in inferred.items() if name != "seed"), "パラメータの説明（行末のコメント）がない"
    # 保存出力と nbval は既定値で動くので、既定は quick / auto（§5）
    assert ast.literal_eval(defaults["profile"]) == "quick"
    assert ast.literal_eval(defaults["device"]) == "auto"
    assert isinstance(ast.literal_eval(defaults["seed"]), int)
    environment = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "start(" in c.source]
    assert environment, "start( を呼ぶ環境セルがない"
    assert setup[0] < parameters[0] < environment[0], "setup → parameters → 環境セル の順に並べる"


@each_notebook
def test_exercises_have_folded_solutions(path):
    nb = load(path)
    exercises, summary = heading_cell(nb, "演習"), heading_cell(nb, "まとめ")
    assert exercises is not None, "`## 演習` がない"
    solutions = tagged(nb, "solution")
    inside = [i for i in solutions if i > exercises and (summary is None or i < summary)]
    assert len(inside) >= 2, "`## 演習` の下に solution タグのセルが 2 つ以上必要"
    for i in solutions:
        cell = nb.cells[i]
        assert cell.source.startswith("# 解答例"), f"セル {i + 1}: 解答例のセルは `# 解答例` で始める"
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"セル {i + 1}: 解答例は折りたたむ"


@each_notebook
def test_closing_sections_in_order(path):
    nb = load(path)
    places = [heading_cell(nb, title) for title in ("演習", "まとめ", "公式ドキュメント")]
    assert None not in places, "`## 演習`, `## まとめ`, `## 公式ドキュメント` が全部必要"
    assert places == sorted(places), "演習 → まとめ → 公式ドキュメント の順に並べる"
    links = "".join(c.source for c in nb.cells[places[2]:] if c.cell_type == "markdown")
    assert "https://" in links, "`## 公式ドキュメント` にリンクがない"


@each_notebook
def test_corrections_are_under_their_heading(path):
    nb = load(path)
    section, boxes = None, 0
    for _, line in markdown_lines(nb):
        if line.startswith("## "):
            section = line[3:].strip()
        elif CORRECTION_BOX in line:
            boxes += 1
            assert section and section.startswith("元資料からの訂正"), f"訂正の囲みが `## {section}` の下にある: {line[:60]}"
    if heading_cell(nb, "元資料からの訂正") is not None:
        assert boxes, "`## 元資料からの訂正` の下に訂正の囲み（> **元資料からの訂正**: …）がない"


@each_notebook
def test_stored_outputs_come_from_one_clean_run(path):
    nb = load(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        "保存出力は `uv run course store --only NN` で上から順に 1 回だけ実行して作る"
        f"（実行番号: {counts}）"
    )
    assert any(c.outputs for c in code), "保存された出力がない"
    errors = [i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"エラー出力が保存されている（セル {errors}）"


@each_notebook
def test_no_run_metadata_or_progress_bars_stored(path):
    nb = load(path)
    assert "papermill" not in nb.metadata
    assert nb.metadata.get("kernelspec", {}).get("name") == runner.KERNEL_NAME
    for i, cell in enumerate(nb.cells, 1):
        assert not {"papermill", "execution"} & set(cell.metadata), f"セル {i} に実行時のメタデータが残っている"
        assert not runner.PAPERMILL_TAGS & set(cell.metadata.get("tags", [])), f"セル {i} は papermill が足したセル"
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert "application/vnd.jupyter.widget-view+json" not in data, f"セル {i} に進捗バーのウィジェットが残っている"
            text = output.get("text", "") + str(data.get("text/plain", ""))
            assert not PROGRESS_TEXT.search(text), f"セル {i} に進捗バーの出力（経過時間）が残っている"


@each_notebook
def test_some_output_is_checked_by_nbval(path):
    nb = load(path)
    checked = [nb.cells[i] for i in tagged(nb, "nbval-check-output")]
    assert any(c.cell_type == "code" and c.outputs for c in checked), (
        "出力が再現できるセルに nbval-check-output タグを付ける（出力のあるセルが少なくとも 1 つ必要）"
    )
