"""実行環境の準備: 乱数の固定、デバイス選択、Colab 判定、プロジェクトのルート、日本語フォント、
バージョン表。すべてのノートブックの冒頭で使う（ノートブック 01 で紹介）。
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import random
import sys
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from helpers.errors import CourseError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
#: バージョン表に載せる配布パッケージ
CORE_PACKAGES = (
    "hydra-core", "omegaconf", "optuna", "joblib", "mlflow", "torch", "numpy", "scipy",
    "scikit-learn", "pandas", "matplotlib", "seaborn", "umap-learn", "papermill",
)


class DeviceError(CourseError, RuntimeError):
    """要求されたデバイスが使えないときの例外。"""


def in_colab() -> bool:
    """Google Colab の上で動いているか。"""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


@lru_cache(maxsize=1)
def project_root() -> Path:
    """リポジトリのルート（conf/config.yaml がある場所）。

    環境変数 LIBURARY_ROOT が最優先。なければ helpers パッケージの位置と作業フォルダから上へ探す。
    """
    env = os.environ.get("LIBURARY_ROOT")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parent.parent, Path.cwd(), *Path.cwd().parents]
    for c in candidates:
        if (c / "conf" / "config.yaml").is_file():
            return c.resolve()
    raise FileNotFoundError(
        "講座のルート（conf/config.yaml を含むフォルダ）が見つかりません。"
        "リポジトリの中で実行するか、環境変数 LIBURARY_ROOT にそのパスを設定してください。"
    )


def seed_everything(seed: int, deterministic: bool = True, *, with_torch: bool = True) -> None:
    """random・NumPy・PyTorch の乱数を固定する。deterministic=True なら決定的アルゴリズムを要求する。

    NumPy は新しいコードでは `np.random.default_rng(seed)` を渡すのが基本で、ここでは
    古い API（np.random.*）を使うライブラリのために大域状態も固定する。
    with_torch=False なら torch を import しない（import に数秒かかるので、torch を使わない処理のため）。
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if not with_torch:
        return
    try:
        import torch
    except ImportError:  # torch なしでも動くように
        return
    torch.manual_seed(seed)
    if deterministic:
        # CUDA の決定的な行列積に必要（torch のドキュメント "Reproducibility"）
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(requested: str = "auto", *, strict: bool = True) -> str:
    """"auto" | "cpu" | "cuda" を実際のデバイス名に解決する。

    cuda を要求したのに GPU がないとき、strict=True なら DeviceError（日本語の説明つき）を送出し、
    strict=False なら警告を出して "cpu" を返す。講座の既定は strict（黙って遅い CPU で走らないため）。
    """
    if requested not in DEVICES:
        raise DeviceError(f"device は {list(DEVICES)} のどれかにしてください（受け取った値: {requested!r}）。")
    if requested == "cpu":  # 確かめることがないので torch を import しない
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    if requested == "cuda" and not has_cuda:
        msg = (
            "device=cuda が指定されましたが、この環境では GPU (CUDA) が使えません。"
            "device=auto か device=cpu にしてください。Colab では「ランタイム → ランタイムのタイプを変更 → GPU」を選びます。"
        )
        if strict:
            raise DeviceError(msg)
        warnings.warn(msg + "（CPU で続行します）", stacklevel=2)
        return "cpu"
    return requested


def setup_japanese_fonts(theme: bool = True) -> str:
    """seaborn のテーマを適用してから日本語フォント (IPAexGothic) を設定し、フォント名を返す。

    `sns.set_theme()` はフォント設定を上書きするので、必ずテーマの後にフォントを設定する。
    """
    import matplotlib
    import matplotlib_fontja  # noqa: F401  (import するとフォントが登録される)

    if theme:
        import seaborn as sns

        sns.set_theme(style="whitegrid", context="notebook")
    matplotlib_fontja.japanize()
    matplotlib.rcParams["axes.unicode_minus"] = False
    return matplotlib.rcParams["font.family"][0]


def versions_table(extra: tuple[str, ...] = ()):
    """Python と主要パッケージのバージョン表（pandas.DataFrame。各ノートブックの冒頭で表示する）。"""
    import pandas as pd  # CLI の起動を軽くするため遅延 import

    rows = [("python", platform.python_version())]
    for name in (*CORE_PACKAGES, *extra):
        try:
            rows.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "（未インストール）"))
    return pd.DataFrame(rows, columns=["package", "version"]).set_index("package")


def machine_info() -> dict:
    """測定した環境の記録用: OS、CPU の型番とコア数、Python の版（実行時間の JSON に一緒に書く）。"""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = models[0] if models else cpu
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version()}


def describe_device(device: str) -> str:
    """デバイスの説明（GPU 名など）を 1 行で返す。"""
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({os.cpu_count()} コア)"


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """講座共通の tqdm 進捗バー（ノートブックではウィジェット、端末ではテキスト）。

    enabled=False なら表示しない。環境変数 TQDM_DISABLE=1（`course store` が設定する）でも消えるので、
    保存される出力に毎回変わる経過時間が残らない。
    """
    from tqdm.auto import tqdm

    # tqdm.notebook は TQDM_DISABLE を見ないので、ここで環境変数も確かめる
    if not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true"):
        kwargs["disable"] = True
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


@contextmanager
def limit_threads(n: int | None):
    """この中だけ PyTorch と OpenMP/BLAS（HistGradientBoosting など）の CPU スレッド数を n にする（None なら変えない）。

    小さな計算では、2 コアを他のプロセスと取り合うとスレッド同士の待ち合わせで何倍も遅くなる。
    そういう共有マシンでは n=1 が速くて安定する（ノートブック 08 で扱う）。
    """
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")  # まだ import されていなければ torch は使われないので、重い import をしない
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)
