"""Colab 対応の確かめ: setup セル・「Open in Colab」バッジ・GPU 指定（scripts/sync_notebook_headers.py が書く）と、
Colab をできるだけ真似た環境での実行（遅い。colab_sim の印）。

Colab の真似: 新しい仮想環境（Python 3.11）に、講座のロックとは別の torch（ローカルの CPU ホイール 2.13.0+cpu）と
別の numpy をあらかじめ入れ、ノートブックを papermill でその環境のカーネルで実行する。setup セルが
一時的な git リポジトリ（作業ツリーのコピーにタグを付けたもの）から講座を取得して依存を入れ、torch と numpy が
入れ替わっていないことを確かめる。Colab は Python 3.12 だが、ここには cp312 の CPU 版 torch がないので 3.11 で真似る。
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat
import pytest

from helpers import colab, runner

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "sync_notebook_headers.py"
NOTEBOOKS = runner.list_notebooks(runner.default_notebooks_dir())
#: 真似る Colab にあらかじめ入れる torch（環境変数 COURSE_SIM_TORCH_WHEEL で差し替えられる）と numpy
TORCH_WHEEL = Path(os.environ.get("COURSE_SIM_TORCH_WHEEL", "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"))
SIM_NUMPY = "2.0.2"
SIM_NOTEBOOKS = ("01", "04")

each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])

sys.path.insert(0, str(SCRIPT.parent))
import sync_notebook_headers as sync  # noqa: E402


def test_pinned_ref_follows_project_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert colab.REPOSITORY_REF == f"v{version}", "helpers/colab.py の REPOSITORY_REF は v + pyproject の version にする"


def test_colab_install_keeps_torch_and_numpy():
    names = [colab._name(r) for r in colab.colab_requirements(ROOT)]
    assert "torch" not in names and "numpy" not in names
    assert {"hydra-core", "omegaconf", "matplotlib-fontja", "papermill"} <= set(names)
    pins = colab.constraints()
    assert f"torch=={importlib.metadata.version('torch')}" in pins
    assert f"numpy=={importlib.metadata.version('numpy')}" in pins


def test_setup_cell_is_valid_python_and_fast_outside_colab():
    source = sync.setup_source()
    ast.parse(source)
    assert colab.REPOSITORY_URL in source and colab.REPOSITORY_REF in source
    env = {k: v for k, v in os.environ.items() if k != "COURSE_COLAB_SIMULATE"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", source], cwd=ROOT, env=env, check=True)
    assert time.perf_counter() - start < 5, "Colab の外では setup セルは何もしない（速い）はず"


def test_sync_script_is_idempotent_on_a_copy(tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(ROOT / sync.TIMINGS.parent, tmp_path / sync.TIMINGS.parent)  # 「所要時間」の秒数の元
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path)], check=True, capture_output=True)
    first = {p.name: p.read_bytes() for p in [*tmp_path.glob("notebooks/*.ipynb"), tmp_path / "README.md"]}
    check = subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path)], check=True, capture_output=True)
    assert first == {p.name: p.read_bytes() for p in [*tmp_path.glob("notebooks/*.ipynb"), tmp_path / "README.md"]}
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    for path in sorted(tmp_path.glob("notebooks/[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert colab.colab_url(f"notebooks/{path.name}") in readme
        assert nb.cells[0].source.splitlines()[2] == colab.colab_badge(f"notebooks/{path.name}")
        # 元のノートブックの出力は消さない（setup セル以外）
        original = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        kept = [c.get("outputs") for c in original.cells if "setup" not in c.metadata.get("tags", [])]
        assert kept == [c.get("outputs") for c in nb.cells if "setup" not in c.metadata.get("tags", [])]


# --- 実際のノートブックの冒頭（リードが sync スクリプトを実行して store したあとに通る） ---

@each_notebook
def test_notebook_header_is_synced(path):
    nb = nbformat.read(path, as_version=4)
    [setup] = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    assert setup.source == sync.setup_source(), "setup セルが古い: uv run python scripts/sync_notebook_headers.py"
    assert colab.colab_badge(f"notebooks/{path.name}") in nb.cells[0].source, "Open in Colab のバッジがない・古い"
    wants_gpu = path.name[:2] in sync.GPU_NOTEBOOKS
    assert (nb.metadata.get("accelerator") == "GPU") is wants_gpu
    assert (nb.metadata.get("colab", {}).get("gpuType") == sync.GPU_TYPE) is wants_gpu
    seconds = sync.measured_seconds(ROOT)[path.name]
    assert f"で約 {round(seconds)} 秒" in nb.cells[0].source, f"所要時間が {sync.TIMINGS} の実測（{seconds} 秒）と違う"


def test_readme_colab_links_are_synced():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Colab の真似（遅い） ---

def _sh(*command, **kwargs):
    return subprocess.run([str(c) for c in command], check=True, capture_output=True, text=True, **kwargs).stdout


def _source_repository(tmp_path: Path) -> Path:
    """作業ツリー（git が無視するものを除く）をコピーし、sync スクリプトを当て、固定した版のタグを付けた一時リポジトリ。"""
    src = tmp_path / "origin"
    files = _sh("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=ROOT).split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _sh(sys.executable, SCRIPT, "--root", src)
    git = ["git", "-C", src, "-c", "user.name=sim", "-c", "user.email=sim@example.invalid"]
    _sh(*git, "init", "--quiet")
    _sh(*git, "add", "-A")
    _sh(*git, "commit", "--quiet", "-m", "colab simulation")
    _sh(*git, "tag", colab.REPOSITORY_REF)
    return src


def _colab_like_python(tmp_path: Path) -> Path:
    """別の torch と numpy と ipykernel だけが入った、Colab に見立てた仮想環境の python。"""
    if not TORCH_WHEEL.is_file():
        message = f"Colab の真似に使う torch のホイール {TORCH_WHEEL} がない（COURSE_SIM_TORCH_WHEEL で指定できる）"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "。CI では飛ばさない")
        pytest.skip(message)
    venv = tmp_path / "colab-venv"
    _sh("uv", "venv", "--quiet", "--python", "3.11", venv)
    python = venv / "bin" / "python"
    _sh("uv", "pip", "install", "--quiet", "--python", python, TORCH_WHEEL, f"numpy=={SIM_NUMPY}", "ipykernel")
    kernel = tmp_path / "jupyter" / "kernels" / "colab-sim"
    kernel.mkdir(parents=True)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "colab-sim", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return python


def _versions(python: Path) -> dict[str, str]:
    code = "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in ('torch', 'numpy')}))"
    return json.loads(_sh(python, "-c", code))


@pytest.mark.notebook
@pytest.mark.colab_sim
@pytest.mark.timeout(1800)
def test_colab_simulation_runs_notebooks_without_replacing_torch(tmp_path, monkeypatch):
    import papermill

    python = _colab_like_python(tmp_path)
    preinstalled = _versions(python)
    assert preinstalled["torch"] != importlib.metadata.version("torch"), "講座のロックとは別の torch で真似る"
    src = _source_repository(tmp_path)
    content = tmp_path / "content"  # Colab の /content
    content.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("COURSE_COLAB_SIMULATE", "1")
    monkeypatch.setenv("COURSE_COLAB_DIR", str(content / "liburary-docs"))
    monkeypatch.setenv("COURSE_REPO_URL", src.as_uri())
    for name in ("VIRTUAL_ENV", "LIBURARY_ROOT", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    notebooks = [p for p in runner.list_notebooks(src / "notebooks") if p.name[:2] in SIM_NOTEBOOKS]
    assert [p.name[:2] for p in notebooks] == list(SIM_NOTEBOOKS), f"真似で実行するノートブックがない: {SIM_NOTEBOOKS}"
    with runner.kernel_env(runner.KERNEL_ENV):
        for path in notebooks:
            start = time.perf_counter()
            papermill.execute_notebook(
                str(path), str(tmp_path / path.name), parameters={"profile": "quick", "device": "auto"},
                kernel_name="colab-sim", cwd=str(content), progress_bar=False, execution_timeout=600,
            )
            print(f"Colab の真似: {path.name} {time.perf_counter() - start:.1f} 秒")
            executed = nbformat.read(tmp_path / path.name, as_version=4)
            shown = json.dumps([c.get("outputs", []) for c in executed.cells], ensure_ascii=False)
            assert preinstalled["torch"] in shown, f"{path.name} のバージョン表に Colab 側の torch が出ていない"
    assert _versions(python) == preinstalled, "setup セルが Colab の torch / numpy を入れ替えた"
    clone = content / "liburary-docs"
    assert _sh("git", "-C", clone, "describe", "--tags").strip() == colab.REPOSITORY_REF
