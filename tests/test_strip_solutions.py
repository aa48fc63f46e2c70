"""`uv run course strip-solutions`: 解答例を消した配布用コピー（helpers/handout.py）。"""
from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from helpers import cli, handout, runner

NOTEBOOKS = runner.list_notebooks(runner.default_notebooks_dir())


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    exercise = nbformat.v4.new_code_cell("# 解答例\nprint(42)", execution_count=2)
    exercise.metadata.update({"tags": ["solution"], "jupyter": {"source_hidden": True}})
    exercise.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    lesson = nbformat.v4.new_code_cell("print(1)", execution_count=1)
    lesson.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 テスト"), lesson, nbformat.v4.new_markdown_cell("## 演習"), exercise]
    nbformat.write(nb, path)
    return nb


def test_command_writes_copies_without_solutions(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    original = _notebook(folder / "01_test.ipynb")
    before = (folder / "01_test.ipynb").read_bytes()

    assert cli.main(["strip-solutions", "--notebooks-dir", str(folder), "--out", str(tmp_path / "handout")]) == 0

    assert (folder / "01_test.ipynb").read_bytes() == before, "元のノートブックを書き換えた"
    copy = nbformat.read(tmp_path / "handout" / "01_test.ipynb", as_version=4)
    nbformat.validate(copy)
    lesson, exercise = copy.cells[1], copy.cells[3]
    assert lesson.source == original.cells[1].source and lesson.outputs == original.cells[1].outputs
    assert exercise.source == handout.PLACEHOLDER
    assert exercise.outputs == [] and exercise.execution_count is None
    assert "jupyter" not in exercise.metadata, "配布用コピーの解答欄は折りたたまない"
    assert exercise.metadata["tags"] == ["solution"]


def test_out_must_differ_from_the_notebooks_folder(tmp_path):
    _notebook(tmp_path / "01_test.ipynb")
    assert cli.main(["strip-solutions", "--notebooks-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "# 解答例" in (tmp_path / "01_test.ipynb").read_text(encoding="utf-8")


@pytest.mark.skipif(not NOTEBOOKS, reason="notebooks/ にノートブックがない")
def test_course_notebooks_lose_every_solution(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "helpers.cli", "strip-solutions", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for path in NOTEBOOKS:
        original = nbformat.read(path, as_version=4)
        copy = nbformat.read(tmp_path / path.name, as_version=4)
        solutions = [i for i, c in enumerate(original.cells) if "solution" in c.metadata.get("tags", [])]
        assert solutions, f"{path.name} に解答例のセルがない"
        for i in solutions:
            assert copy.cells[i].source == handout.PLACEHOLDER
        assert "# 解答例" not in "".join(c.source for c in copy.cells if c.cell_type == "code")
