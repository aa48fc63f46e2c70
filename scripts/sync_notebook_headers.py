"""ノートブックの冒頭（setup セル・「Open in Colab」バッジ・Colab の GPU 指定・「所要時間」の秒数）と README の Colab リンクを書き直す。

リンクの元になる設定はひとつだけ: helpers/colab.py の REPOSITORY_URL と REPOSITORY_REF。
「所要時間」の「実行: CPU（quick プロファイル）で約 N 秒」の N は、docs/timings/cpu-quick.json（`course run` の実測）から書く。
リンクも秒数も手で書かず、設定や実測を変えたらこのスクリプトを実行する。何度実行しても同じ結果になる（冪等）。

    uv run python scripts/sync_notebook_headers.py            # notebooks/*.ipynb と README.md を書き直す
    uv run python scripts/sync_notebook_headers.py --check    # 書き直しが要るなら終了コード 1（何も書かない）
    uv run python scripts/sync_notebook_headers.py --root DIR # 別のチェックアウト（コピー）に対して実行

出力は消さない（setup セルの出力だけ空にする）。書き直したら `uv run course store` で出力を保存し直す。
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import colab  # noqa: E402

#: Colab で GPU を求めるノートブック（拡散モデルの学習 04 と総合演習 10）
GPU_NOTEBOOKS = ("04", "10")
GPU_TYPE = "T4"
BADGE = re.compile(r"^\[!\[Open In Colab\]\(.*$", re.MULTILINE)
README_START, README_END = "<!-- colab-links:start -->", "<!-- colab-links:end -->"
#: 「所要時間」の秒数の元（`uv run course run --profile quick --device cpu` の summary.json の写し）
TIMINGS = Path("docs") / "timings" / "cpu-quick.json"
RUN_TIME = re.compile(r"(- 実行: CPU（quick プロファイル）で約 )[0-9〜]+( 秒)")

SETUP_CELL = '''\
# セットアップ: Colab では講座のリポジトリを取得し、足りないパッケージを入れる（torch と numpy は Colab のものを使う）。
# 手元（uv run jupyter lab）では helpers が import できるか確かめるだけ。このセルは scripts/sync_notebook_headers.py が書く。
import importlib.util
import os
import subprocess
import sys

if "google.colab" in sys.modules or os.environ.get("COURSE_COLAB_SIMULATE") == "1":

    def _run(command):
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(done.stdout, end="")
        done.check_returncode()

    course_dir = os.environ.get("COURSE_COLAB_DIR", "{colab_dir}")
    if not os.path.isdir(course_dir):
        repo = os.environ.get("COURSE_REPO_URL", "{url}")
        _run(["git", "clone", "--quiet", "--depth", "1", "--branch", "{ref}", repo, course_dir])
    _run([sys.executable, os.path.join(course_dir, "helpers", "colab.py"), "install", course_dir])
    if course_dir not in sys.path:
        sys.path.insert(0, course_dir)
    os.environ["LIBURARY_ROOT"] = course_dir
    os.chdir(os.path.join(course_dir, "notebooks"))
if importlib.util.find_spec("helpers") is None:
    raise ModuleNotFoundError(
        "helpers が見つかりません。リポジトリのルートで `uv run jupyter lab` から開くか、`pip install -e .` してください。"
    )'''


def setup_source() -> str:
    """setup セルの本文（設定 helpers/colab.py から作る）。"""
    return SETUP_CELL.format(colab_dir=colab.COLAB_DIR, url=colab.REPOSITORY_URL, ref=colab.REPOSITORY_REF)


def notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def with_badge(title_cell: str, badge: str) -> str:
    """最初の Markdown セルのタイトル行の次にバッジの行を置く（あれば差し替える）。"""
    if BADGE.search(title_cell):
        return BADGE.sub(lambda _: badge, title_cell, count=1)
    title, _, rest = title_cell.partition("\n")
    return f"{title}\n\n{badge}\n" + (f"\n{rest.lstrip(chr(10))}" if rest.strip() else "")


def measured_seconds(root: Path) -> dict[str, float]:
    """ノートブック名 → quick プロファイルの実測の秒数（docs/timings/cpu-quick.json）。"""
    results = json.loads((root / TIMINGS).read_text(encoding="utf-8"))["results"]
    return {r["notebook"]: r["seconds"] for r in results if r["status"] == "passed"}


def with_run_time(title_cell: str, seconds: float | None, name: str) -> str:
    """「所要時間」の「実行: CPU（quick プロファイル）で約 N 秒」の N を実測にする。"""
    if seconds is None:
        raise SystemExit(f"{name}: {TIMINGS} に実測がありません（uv run course run --profile quick --device cpu で測る）。")
    if not RUN_TIME.search(title_cell):
        raise SystemExit(f"{name}: 最初のセルに「- 実行: CPU（quick プロファイル）で約 N 秒」の行がありません。")
    return RUN_TIME.sub(lambda m: f"{m.group(1)}{round(seconds)}{m.group(2)}", title_cell, count=1)


def sync_notebook(path: Path, root: Path) -> bool:
    """1 本を書き直す。変わったら True。"""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    setup = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    if len(setup) != 1 or setup[0].cell_type != "code":
        raise SystemExit(f"{path.name}: setup タグのコードセルがちょうど 1 つ必要です（見つかった数: {len(setup)}）。")
    if setup[0].source != setup_source():
        setup[0].source = setup_source()
        setup[0].outputs = []
    first = nb.cells[0]
    if first.cell_type != "markdown":
        raise SystemExit(f"{path.name}: 最初のセルはタイトルの Markdown セルにしてください。")
    first.source = with_badge(first.source, colab.colab_badge(path.relative_to(root).as_posix()))
    first.source = with_run_time(first.source, measured_seconds(root).get(path.name), path.name)
    if path.name[:2] in GPU_NOTEBOOKS:
        nb.metadata["accelerator"] = "GPU"
        nb.metadata.setdefault("colab", {})["gpuType"] = GPU_TYPE
    if nbformat.writes(nb) == before:
        return False
    with open(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    return True


def readme_block(root: Path) -> str:
    """README の Colab リンクの表（マーカーの間に入る本文）。"""
    rows = ["| # | ノートブック | Colab |", "|---|---|---|"]
    for path in notebooks(root):
        title = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0].lstrip("# ").strip()
        rel = path.relative_to(root).as_posix()
        gpu = "（GPU）" if path.name[:2] in GPU_NOTEBOOKS else ""
        rows.append(f"| {path.name[:2]} | {title.split(' ', 1)[-1]}{gpu} | [Colab で開く]({colab.colab_url(rel)}) |")
    return "\n".join(rows)


def sync_readme(root: Path) -> bool:
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md に {README_START} … {README_END} のマーカーがありません。")
    new = pattern.sub(lambda _: f"{README_START}\n{readme_block(root)}\n{README_END}", text, count=1)
    if new == text:
        return False
    readme.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="リポジトリのルート")
    parser.add_argument("--check", action="store_true", help="書き直しが要るかだけ調べる（要るなら終了コード 1）")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.check:
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp)
            shutil.copytree(root / "notebooks", copy / "notebooks")
            shutil.copytree(root / TIMINGS.parent, copy / TIMINGS.parent)
            shutil.copy(root / "README.md", copy / "README.md")
            stale = [p.name for p in notebooks(copy) if sync_notebook(p, copy)] + (["README.md"] if sync_readme(copy) else [])
        if stale:
            print("書き直しが必要: " + ", ".join(stale) + "（uv run python scripts/sync_notebook_headers.py）")
            return 1
        print("ノートブックの冒頭（所要時間の秒数を含む）と README の Colab リンクは最新です。")
        return 0
    changed = [p.name for p in notebooks(root) if sync_notebook(p, root)] + (["README.md"] if sync_readme(root) else [])
    print(("書き直した: " + ", ".join(changed)) if changed else "変更なし（すでに最新）")
    return 0


if __name__ == "__main__":
    sys.exit(main())
