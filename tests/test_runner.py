"""`uv run course run / store`（helpers/cli.py, helpers/runner.py）のテスト。

tmp_path に作る小さなノートブックで確かめる（torch を import しないのでカーネルは 1〜2 秒で起動する）。
"""
from __future__ import annotations

import csv
import json
import os
import re
from datetime import datetime

import nbformat
import pytest

from helpers import cli, runner

PARAMETERS = 'profile = "quick"  # quick | full\ndevice = "auto"  # auto | cpu | cuda\nseed = 0'


def write_notebook(path, cells):
    """cells: (種類, ソース, タグ) の並び。種類は "md" か "code"。"""
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = dict(runner.KERNELSPEC)
    nbformat.write(nb, path)
    return path


def read_summary(out):
    with open(out / "summary.csv", encoding="utf-8") as f:
        return {row["notebook"]: row for row in csv.DictReader(f)}


def outputs_text(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture
def three_notebooks(tmp_path):
    """01 と 03 は成功、02 は 3 番目のセルで失敗する。"""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "01_ok.ipynb", [("md", "# 01", ()), ("code", "print('one')", ())])
    write_notebook(
        folder / "02_broken.ipynb",
        [("md", "# 02", ()), ("code", "x = 1", ()), ("code", "raise ValueError('壊れた入力\\n2 行目は表に出さない')", ())],
    )
    write_notebook(folder / "03_ok.ipynb", [("code", "print('three')", ())])
    return folder


def test_run_injects_only_defined_parameters_and_writes_copies_and_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # CI の設定。カーネルでは JupyterLab と同じインライン表示に戻す
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "01_all.ipynb", [("code", PARAMETERS, ["parameters"]), ("code", "import os\nprint(profile, device, seed, os.environ['MPLBACKEND'])", ())])
    write_notebook(
        folder / "02_nodevice.ipynb",
        [("code", 'profile = "quick"\nseed = 0', ["parameters"]), ("code", "print(profile, seed, 'device' in globals())", ())],
    )
    source_bytes = (folder / "01_all.ipynb").read_bytes()
    out = tmp_path / "out"

    argv = ["run", "--notebooks-dir", str(folder), "--out", str(out), "--profile", "full", "--device", "cpu", "--seed", "7"]
    assert cli.main(argv) == 0

    first = nbformat.read(out / "01_all.ipynb", as_version=4)
    second = nbformat.read(out / "02_nodevice.ipynb", as_version=4)
    assert outputs_text(first) == "full cpu 7 module://matplotlib_inline.backend_inline\n"
    assert outputs_text(second) == "full 7 False\n"  # device は parameters セルにないので渡さない
    injected = [c.source for c in second.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "device" not in injected[0]
    assert (folder / "01_all.ipynb").read_bytes() == source_bytes  # 元のノートブックは変えない

    rows = read_summary(out)
    assert {name: row["status"] for name, row in rows.items()} == {"01_all.ipynb": "passed", "02_nodevice.ipynb": "passed"}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["parameters"] == {"profile": "full", "device": "cpu", "seed": 7}
    assert summary["machine"]["cpu_count"] == os.cpu_count() and summary["machine"]["cpu"]  # どのマシンで測ったか
    assert datetime.fromisoformat(summary["measured_at"]).tzinfo is not None
    assert [r["notebook"] for r in summary["results"]] == ["01_all.ipynb", "02_nodevice.ipynb"]
    assert all(r["seconds"] > 0 for r in summary["results"])
    assert "成功 2 / 失敗 0 / 未実行 0" in capsys.readouterr().out


def test_failed_notebook_is_reported_with_cell_and_error_and_the_run_goes_on(three_notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "--notebooks-dir", str(three_notebooks), "--out", str(out)]) == 1

    rows = read_summary(out)
    assert [rows[n]["status"] for n in ("01_ok.ipynb", "02_broken.ipynb", "03_ok.ipynb")] == ["passed", "failed", "passed"]
    broken = rows["02_broken.ipynb"]
    assert broken["cell"] == "3"  # 元のノートブックの 3 番目のセル（Markdown も数える）
    assert broken["error"] == "ValueError: 壊れた入力"
    assert (out / "02_broken.ipynb").exists()  # トレースバックは実行済みコピーに残る
    table = capsys.readouterr().out
    assert re.search(r"02_broken\.ipynb\s+失敗\s+[\d.]+\s+3\s+ValueError: 壊れた入力", table)
    assert "Traceback" not in table and "2 行目" not in table
    assert "成功 2 / 失敗 1 / 未実行 0" in table


def test_fail_fast_stops_after_the_first_failure(three_notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "--notebooks-dir", str(three_notebooks), "--out", str(out), "--fail-fast"]) == 1

    rows = read_summary(out)
    assert rows["02_broken.ipynb"]["status"] == "failed"
    assert rows["03_ok.ipynb"]["status"] == "skipped"
    assert not (out / "03_ok.ipynb").exists()
    assert "未実行 1" in capsys.readouterr().out


def test_cell_timeout_is_reported_as_a_failure_of_that_cell(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = write_notebook(folder / "01_slow.ipynb", [("md", "# 01", ()), ("code", "import time\ntime.sleep(60)", ())])
    [result] = runner.run_notebooks([path], tmp_path / "out", timeout=1, progress=False)
    assert result.status == "failed"
    assert result.cell == 2
    assert result.error.startswith("CellTimeoutError")
    assert result.seconds < 30


@pytest.mark.parametrize(
    ("only", "message"),
    [("05", "--only のノートブック 05 は"), ("1,x", "--only にはノートブックの番号を")],
)
def test_bad_only_exits_2_with_a_japanese_message_before_running(three_notebooks, tmp_path, capsys, only, message):
    out = tmp_path / "out"
    assert cli.main(["run", "--notebooks-dir", str(three_notebooks), "--out", str(out), "--only", only]) == 2
    err = capsys.readouterr().err
    assert message in err and "ノートブックは実行していません" in err
    assert not out.exists()


def test_only_selects_in_number_order(three_notebooks):
    chosen = runner.select_notebooks(three_notebooks, "3, 1")
    assert [p.name for p in chosen] == ["01_ok.ipynb", "03_ok.ipynb"]


def test_empty_notebooks_folder_exits_2(tmp_path, capsys):
    assert cli.main(["store", "--notebooks-dir", str(tmp_path)]) == 2
    assert "講座ノートブック（NN_名前.ipynb）がありません" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_bad_cell_timeout_is_rejected(monkeypatch, value):
    monkeypatch.setenv(runner.CELL_TIMEOUT_ENV, value)
    with pytest.raises(runner.RunnerArgumentError, match="COURSE_CELL_TIMEOUT"):
        runner.cell_timeout()


def test_cell_timeout_comes_from_flag_then_env_then_default(monkeypatch):
    monkeypatch.delenv(runner.CELL_TIMEOUT_ENV, raising=False)
    assert runner.cell_timeout() == runner.DEFAULT_CELL_TIMEOUT_S
    monkeypatch.setenv(runner.CELL_TIMEOUT_ENV, "42")
    assert runner.cell_timeout() == 42.0
    assert runner.cell_timeout(5) == 5.0


def test_device_cuda_without_gpu_exits_2_before_running(three_notebooks, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("GPU がある環境では cuda を拒否しない")
    out = tmp_path / "out"
    assert cli.main(["run", "--notebooks-dir", str(three_notebooks), "--out", str(out), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "GPU (CUDA) が使えません" in err and "ノートブックは実行していません" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_store_writes_normalised_outputs_in_place_and_a_second_store_changes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "0")  # 呼び出し側の設定にかかわらず STORE_ENV がカーネルに届く
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "7")  # 呼び出し側の MLflow の実験はカーネルに届かない（KERNEL_UNSET）
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = write_notebook(
        folder / "01_store.ipynb",
        [
            ("md", "# 01 保存のテスト", ()),
            ("code", PARAMETERS, ["parameters"]),
            ("code", "import os\nprint(profile, device, seed)   \n\n", ()),  # 行末と末尾の空白は store が落とす
            ("code", "print(os.environ['TQDM_DISABLE'], os.environ['PYTHONHASHSEED'], os.environ.get('MLFLOW_EXPERIMENT_ID'))",
             ["nbval-check-output"]),
            ("code", "{'x': 1}", ()),
        ],
    )
    assert cli.main(["store", "--notebooks-dir", str(folder)]) == 0
    assert os.environ["MLFLOW_EXPERIMENT_ID"] == "7", "store の後は呼び出し側の環境変数を元に戻す"
    first = path.read_bytes()
    nb = nbformat.read(path, as_version=4)

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3, 4]
    assert outputs_text(nb) == "quick auto 0\n1 0 None\n"  # 既定のパラメータで実行し、STORE_ENV がカーネルに届く
    assert code[-1].outputs[0]["data"]["text/plain"] == "{'x': 1}"
    assert code[1].source == "import os\nprint(profile, device, seed)"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert "papermill" not in nb.metadata
    assert not any({"papermill", "execution"} & set(c.metadata) for c in nb.cells)
    assert not any(c.metadata.get("tags") == [] for c in nb.cells)
    assert code[2].metadata["tags"] == ["nbval-check-output"]
    assert nb.metadata["kernelspec"] == runner.KERNELSPEC
    assert re.fullmatch(r"\d+\.\d+", nb.metadata["language_info"]["version"])
    assert first.startswith(b'{\n "cells": [\n  {\n') and first.endswith(b"}\n")  # Jupyter と同じ indent 1

    assert cli.main(["store", "--notebooks-dir", str(folder)]) == 0
    assert path.read_bytes() == first
    assert "成功 1 / 失敗 0" in capsys.readouterr().out


def test_store_does_not_overwrite_a_failing_notebook(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = write_notebook(folder / "01_fails.ipynb", [("code", "print('before')", ()), ("code", "1 / 0", ())])
    before = path.read_bytes()
    assert cli.main(["store", "--notebooks-dir", str(folder)]) == 1
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["01_fails.ipynb"]  # 一時ファイルも残さない
    captured = capsys.readouterr()
    assert re.search(r"01_fails\.ipynb\s+失敗\s+[\d.]+\s+2\s+ZeroDivisionError: division by zero", captured.out)
    assert "書き換えていません" in captured.err


def test_normalize_removes_run_metadata_and_fixes_kernel_info():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1  \ny = 2\n"), nbformat.v4.new_markdown_cell("改行  \n次の行\n\n")]
    nb.cells[0].metadata.update(papermill={"duration": 1.0}, execution={"iopub.status.busy": "2026"}, tags=[])
    nb.metadata.update(papermill={"duration": 3.0}, kernelspec={"name": "other"}, language_info={"name": "python", "version": "3.12.7"})
    runner.normalize(nb)
    assert nb.cells[0].metadata == {}
    assert nb.cells[0].source == "x = 1\ny = 2"
    assert nb.cells[1].source == "改行  \n次の行"  # Markdown の行末 2 空白（改行の記法）は残す
    assert "papermill" not in nb.metadata
    assert nb.metadata["kernelspec"] == runner.KERNELSPEC
    assert nb.metadata["language_info"]["version"] == "3.12"


def test_help_documents_the_cuda_rule_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # 折り返し幅は端末で変わる
    assert "torch.cuda.is_available()" in text and "終了コード 2" in text
    assert "2 = 引数の誤り" in text


def test_error_is_one_line_without_colour_codes():
    assert runner._one_line("ValueError", "\x1b[31m悪い値\x1b[0m\n詳しい説明") == "ValueError: 悪い値"
    # 1 行目が「…:」で終わるなら、理由の書かれた次の行までを 1 行にする
    assert runner._one_line("ConfigError", "設定の合成に失敗しました:\n  seed は 0 以上\n続き") == (
        "ConfigError: 設定の合成に失敗しました: seed は 0 以上"
    )
    assert runner._one_line("DeadKernelError", "") == "DeadKernelError"


def test_coalesce_streams_merges_adjacent_chunks_of_one_stream():
    from nbformat.v4 import new_output

    from helpers.runner import coalesce_streams

    outputs = [
        new_output("stream", name="stdout", text="version_base ="),
        new_output("stream", name="stdout", text=" 1.3\n"),
        new_output("stream", name="stderr", text="警告\n"),
        new_output("stream", name="stdout", text="次\n"),
        new_output("display_data", data={"text/plain": "x"}),
        new_output("stream", name="stdout", text="後\n"),
    ]
    merged = coalesce_streams(outputs)
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in merged] == [
        ("stream", "stdout", "version_base = 1.3\n"),
        ("stream", "stderr", "警告\n"),
        ("stream", "stdout", "次\n"),
        ("display_data", None, None),
        ("stream", "stdout", "後\n"),
    ]
