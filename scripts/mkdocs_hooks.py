"""MkDocs のフック（mkdocs.yml の hooks: で読み込む）。講座の Web サイトを README とノートブックから組み立てる。

- notebooks/NN_*.ipynb をサイトのページに加える（docs/ に写さない。mkdocs-jupyter が保存出力のまま描く）。
- トップページ (index.md) を README.md から作る。サイトにないファイルへのリンクは GitHub（固定した版）へ向け直す。
- 講師向けページの <!-- timings --> を docs/timings/*.json（`uv run course run` の summary.json）の表に置き換える。
- mkdocs-jupyter の見出し id（slugify）が日本語を落とすので、pymdownx の slugify に差し替える
  （見出しの id と目次の両方。mkdocs.yml の toc も同じ slugify を使う）。
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import mkdocs.plugins
import mkdocs_jupyter.convert
import mkdocs_jupyter.plugin
import nbformat
import nbconvert.filters.strings
from markdown import Markdown
from markdown.extensions.toc import TocExtension
from mkdocs.structure.files import File, InclusionLevel
from pymdownx.slugs import slugify

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers import colab  # noqa: E402

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
TIMINGS_MARK = "<!-- timings -->"
SLUGIFY = slugify(case="lower")


def slug(text: str) -> str:
    """見出しの id（日本語を残し、小文字にし、空白を - にする）。"""
    return SLUGIFY(text, "-")


def _notebook_toc(fpath, toc_depth: int):
    """ノートブックの Markdown セルから目次と h1 のタイトルを作る（見出しの id は slug() と同じ）。

    mkdocs-jupyter の元の実装は nbconvert の Markdown 変換を経由し、見出しの中のインラインコードを落とすので使わない。
    """
    nb = nbformat.read(fpath, as_version=4)
    source = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    md = Markdown(extensions=["fenced_code", TocExtension(toc_depth=toc_depth, slugify=SLUGIFY)])
    md.convert(source)
    title = next((t["name"] for t in md.toc_tokens if t["level"] == 1), None)
    return md.toc_tokens, title


# mkdocs-jupyter は見出しの id を自前の slugify（ASCII 以外を捨てる）で作り、nbconvert がそれを %xx に符号化し、
# 目次は別の経路で作る。三つとも同じ slug にそろえる
mkdocs_jupyter.convert.slugify = slug
nbconvert.filters.strings._convert_header_id = lambda text: text.replace(" ", "-")
mkdocs_jupyter.plugin._get_nb_toc_tokens = _notebook_toc


def notebook_paths() -> list[Path]:
    return sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB))


def on_config(config):
    if not config.nav:
        config.nav = [
            {"ホーム": "index.md"},
            {"ノートブック": [f"notebooks/{p.name}" for p in notebook_paths()]},
            {"用語集": "glossary.md"},
            {"講師向け": "instructor.md"},
        ]
    return config


@mkdocs.plugins.event_priority(100)  # mkdocs-jupyter の on_files より先にノートブックを加える
def on_files(files, config):
    for path in notebook_paths():
        files.append(File(f"notebooks/{path.name}", str(ROOT), config.site_dir, config.use_directory_urls))
    files.append(File.generated(config, "index.md", content=home_page(), inclusion=InclusionLevel.INCLUDED))
    return files


def home_page() -> str:
    """README.md からトップページの Markdown を作る（リンクだけ書き換える）。"""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.sub(r"\]\((?!https?://|#|mailto:)([^)\s]+)\)", lambda m: f"]({_site_link(m.group(1))})", text)


def _site_link(target: str) -> str:
    """README の相対リンクを、サイトの中のページかリポジトリ（GitHub）へのリンクに直す。"""
    path, _, anchor = target.partition("#")
    if path.startswith("docs/"):
        return target.removeprefix("docs/")
    if path.startswith("notebooks/") and (ROOT / path).is_file():
        return target
    return colab.github_path(path) + (f"#{anchor}" if anchor else "")


def on_page_markdown(markdown, page, config, files):
    if TIMINGS_MARK in markdown:
        markdown = markdown.replace(TIMINGS_MARK, timings_table(ROOT / "docs" / "timings"))
    return markdown


def timings_table(folder: Path) -> str:
    """docs/timings/*.json（`course run` の summary.json をそのまま写したもの）から実行時間の表を作る。"""
    runs = [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]
    if not runs:
        return (
            "!!! warning \"まだ測っていません\"\n"
            "    `docs/timings/` に実測の summary.json がありません。下の「実行時間の測り方」の手順で作ってください。\n"
        )
    titles = {}
    for path in notebook_paths():
        first = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
        titles[path.name] = first.lstrip("# ").strip()
    names = sorted({r["notebook"] for _, run in runs for r in run["results"]} | set(titles))
    header = "| ノートブック | " + " | ".join(
        f"{stem}（{run['parameters']['profile']}, device={run['parameters']['device']}）" for stem, run in runs
    ) + " |"
    lines = [header, "|---|" + "---:|" * len(runs)]
    for name in names:
        cells = []
        for _, run in runs:
            result = next((r for r in run["results"] if r["notebook"] == name), None)
            if result is None:
                cells.append("—")
            elif result["status"] != "passed" or result["seconds"] is None:
                cells.append({"failed": "失敗", "skipped": "未実行"}.get(result["status"], result["status"]))
            else:
                cells.append(f"{result['seconds']:.0f} 秒")
        lines.append(f"| {titles.get(name, name)} | " + " | ".join(cells) + " |")
    totals = [sum(r["seconds"] or 0 for r in run["results"]) for _, run in runs]
    lines.append("| 合計 | " + " | ".join(f"{t:.0f} 秒" for t in totals) + " |")
    notes = [f"- {stem}: {run['measured_at'][:16].replace('T', ' ')} に {run['machine']['cpu']}"
             f"（{run['machine']['cpu_count']} コア）、Python {run['machine']['python']} で測定"
             for stem, run in runs if "machine" in run]
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
