"""講座の Web サイト（mkdocs.yml）: `mkdocs build --strict` が通り、日本語の見出しに id と目次があり、
ヘッドレス Chromium で開くと日本語の本文と図が描かれ、日本語で検索できることを確かめる。

スクリーンショットは runs/screenshots/（環境変数 COURSE_SCREENSHOT_DIR で変えられる）に書き、パスをテストの出力に出す。
Chromium は Debian の chromium パッケージ（.ci/run が入れる）。CI（CI=true）でなければ、ないときは飛ばす。
"""
from __future__ import annotations

import functools
import html
import json
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from helpers import runner

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = runner.list_notebooks(runner.default_notebooks_dir())
SEARCH_TERM = "欠損値"
SCREENSHOTS = Path(os.environ.get("COURSE_SCREENSHOT_DIR", ROOT / "runs" / "screenshots"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )
    print(f"mkdocs build --strict: {time.perf_counter() - start:.1f} 秒")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def page(site: Path, notebook: Path) -> str:
    return (site / "notebooks" / notebook.stem / "index.html").read_text(encoding="utf-8")


def test_site_builds_strict_with_every_notebook(site):
    assert NOTEBOOKS, "notebooks/ にノートブックがない"
    for notebook in NOTEBOOKS:
        text = page(site, notebook)
        assert "jupyter-wrapper" in text, f"{notebook.name} が mkdocs-jupyter で描かれていない"
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "学ぶ順番" in home and "構成・制御" in home, "トップページに README のレイヤ表と学ぶ順番がない"
    for name in ("glossary", "instructor"):
        assert (site / name / "index.html").is_file()
    instructor = (site / "instructor" / "index.html").read_text(encoding="utf-8")
    assert "<!-- timings -->" not in instructor, "実行時間の表が差し込まれていない"
    assert "| 合計 |" not in instructor and "<td>合計</td>" in instructor, "実行時間の表に合計の行がない"
    assert re.search(r"コア）、Python 3\.\d+\.\d+ で測定", instructor), "実行時間をどのマシンで測ったかが書かれていない"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_japanese_headings_have_ids_and_toc(site, notebook):
    text = page(site, notebook)
    ids = {html.unescape(i) for i in re.findall(r'<h[1-6][^>]* id="([^"]+)"', text)}
    assert "学習目標" in ids and "演習" in ids, f"日本語の見出しに id がない（あるのは {sorted(ids)[:8]}…）"
    toc = re.search(r'<nav class="md-nav md-nav--secondary".*?</nav>', text, re.DOTALL)
    assert toc, "ページの目次がない"
    targets = [urllib.parse.unquote(html.unescape(h)) for h in re.findall(r'href="#([^"]+)"', toc.group(0))]
    assert "学習目標" in targets
    missing = [t for t in targets if t not in ids]
    assert not missing, f"目次のリンク先の見出しがない: {missing[:5]}"


# --- ヘッドレス Chromium ---

def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium がない（Debian: apt-get install -y chromium。.ci/run が入れる）"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "。CI では飛ばさない")
        pytest.skip(message)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    """サイトを配る HTTP サーバーと、日本語フォント（matplotlib-fontja の IPAexGothic）を見せた Chromium の呼び出し。"""
    chromium = _chromium()
    import matplotlib_fontja

    home = tmp_path_factory.mktemp("chromium")
    fonts = home / "fonts.conf"
    fonts.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        "<include ignore_missing=\"yes\">/etc/fonts/fonts.conf</include>"
        f"<dir>{Path(matplotlib_fontja.__file__).parent / 'fonts'}</dir>"
        f"<cachedir>{home / 'cache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(fonts), "HOME": str(home)}
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    japanese = subprocess.run(["fc-list", ":lang=ja", "family"], env=env, capture_output=True, text=True).stdout
    assert "IPAexGothic" in japanese, "Chromium に見せる日本語フォントが fontconfig に載っていない"

    def run(path: str, *args: str) -> str:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--lang=ja",
            f"--user-data-dir={home / 'profile'}", "--virtual-time-budget=15000", *args, base + path,
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def evaluate(path: str, expression: str, timeout: float = 60) -> str:
        """ページを開き、expression が空でない文字列を返すまで待ってその値を返す（DevTools プロトコル）。"""
        import websocket  # websocket-client（jupyter-server の依存として入っている）

        profile = home / "devtools"
        shutil.rmtree(profile, ignore_errors=True)
        process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", base + path],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while not (profile / "DevToolsActivePort").is_file():
                assert time.monotonic() < deadline, "Chromium の DevTools が起動しない"
                time.sleep(0.2)
            port = (profile / "DevToolsActivePort").read_text().split()[0]
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10).read())
            ws = websocket.create_connection(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"], timeout=10, suppress_origin=True)
            try:
                value = ""
                while not value and time.monotonic() < deadline:
                    time.sleep(0.5)
                    ws.send(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": True}}))
                    reply = json.loads(ws.recv())
                    value = reply.get("result", {}).get("result", {}).get("value") or ""
                return value
            finally:
                ws.close()
        finally:
            process.terminate()
            process.wait(timeout=30)

    run.evaluate = evaluate
    yield run
    server.shutdown()
    server.server_close()


def _screenshot(browser, path: str, name: str) -> Path:
    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / name
    out.unlink(missing_ok=True)
    browser(path, "--window-size=1280,1800", f"--screenshot={out}")
    assert out.is_file(), f"スクリーンショットができていない: {out}"
    with Image.open(out) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    print(f"スクリーンショット: {out}（{out.stat().st_size} バイト、{len(colours)} 色）")
    assert len(colours) > 50, f"{out} がほぼ一色（描かれていない）"
    return out


def _notebook_with(term: str) -> Path:
    found = [p for p in NOTEBOOKS if term in p.read_text(encoding="utf-8")]
    assert found, f"「{term}」を含むノートブックがない"
    return found[0]


def test_home_page_renders_japanese(browser):
    _screenshot(browser, "", "home.png")
    dom = browser("", "--dump-dom")
    assert "ノートブック" in dom and "機械学習研究" in dom


def test_notebook_page_renders_japanese_text_and_a_figure(browser):
    notebook = next((p for p in NOTEBOOKS if "image/png" in p.read_text(encoding="utf-8")), None)
    assert notebook, "図（image/png の出力）のあるノートブックがない"
    _screenshot(browser, f"notebooks/{notebook.stem}/", f"{notebook.stem}.png")
    dom = browser(f"notebooks/{notebook.stem}/", "--dump-dom")
    assert "学習目標" in dom
    assert re.search(r'<img[^>]+src="data:image/png;base64,', dom), f"{notebook.name} のページに図がない"


def test_japanese_search_finds_the_notebook(browser):
    """検索はページの JavaScript（web worker の lunr と TinySegmenter）が動かすので、DevTools プロトコルで待って読む。"""
    notebook = _notebook_with(SEARCH_TERM)
    listing = browser.evaluate(
        f"?q={urllib.parse.quote(SEARCH_TERM)}",
        "document.querySelector('.md-search-result__list')?.innerHTML || ''",
    )
    assert f"notebooks/{notebook.stem}/" in listing, f"「{SEARCH_TERM}」の検索結果に {notebook.name} がない: {listing[:300]}"
