"""helpers.env と helpers.notebook.start（乱数・デバイス・フォント・バージョン表）。"""
from __future__ import annotations

import random
import tempfile
import warnings

import numpy as np
import pytest
import torch

from helpers.config import ConfigError
from helpers.env import (
    DeviceError,
    project_root,
    resolve_device,
    seed_everything,
    setup_japanese_fonts,
    versions_table,
)
from helpers.errors import CourseError
from helpers.notebook import start


def test_seed_everything_repeats_all_generators():
    def draw():
        seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert draw() == draw()


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(DeviceError, match="auto, cpu, cuda|'auto', 'cpu', 'cuda'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="GPU がある環境では cuda が使える")
def test_cuda_without_gpu_is_a_clear_error_or_warning():
    with pytest.raises(DeviceError, match="GPU"):
        resolve_device("cuda")
    with pytest.warns(UserWarning, match="CPU で続行"):
        assert resolve_device("cuda", strict=False) == "cpu"


def test_course_errors_render_without_traceback():
    err = DeviceError("説明")
    assert isinstance(err, CourseError)
    assert err._render_traceback_() == ["\x1b[31mDeviceError\x1b[0m: 説明"]


def test_project_root_has_conf():
    assert (project_root() / "conf" / "config.yaml").is_file()


def test_versions_table_lists_core_packages():
    table = versions_table()
    for name in ("python", "hydra-core", "torch", "pandas", "mlflow"):
        assert name in table.index
    assert not table["version"].str.contains("未インストール").loc[["torch", "numpy"]].any()


def test_japanese_text_renders_without_missing_glyphs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert setup_japanese_fonts() == "IPAexGothic"
    fig, ax = plt.subplots()
    ax.set_title("欠損値とドメイン適応（平日 → 週末）")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing" は UserWarning
        fig.savefig(tmp_path / "ja.png")
    plt.close(fig)


def test_start_validates_parameters_before_work():
    ctx = start(profile="quick", device="cpu", seed=3, show=False)
    assert (ctx.device, ctx.profile, ctx.seed) == ("cpu", "quick", 3)
    with pytest.raises(ConfigError, match="trainer.seed"):
        start(seed="abc", show=False)
    with pytest.raises(ConfigError, match="profile"):
        start(profile="fast", show=False)


def test_limit_threads_sets_and_restores_torch_and_openmp():
    from threadpoolctl import threadpool_info

    from helpers.env import limit_threads

    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    with limit_threads(None):
        assert torch.get_num_threads() == before


def test_torch_is_not_imported_when_nothing_needs_it():
    """torch の import は数秒かかる。torch を使わないノートブックと手法では import しない（新しいプロセスで確かめる）。"""
    code = """
import sys
from pathlib import Path

from helpers.config import compose_config
from helpers.benchmark import run_and_track
from helpers.env import resolve_device
from helpers.notebook import start

assert resolve_device("cpu") == "cpu"
ctx = start(device="auto", show=False, uses_torch=False)
assert ctx.device == "cpu"
cfg = compose_config(["data=synthetic", "data.synthetic.n_source=200", "data.synthetic.n_target=150",
                      "data.min_test_rows=30", "benchmark.methods=[source_only]", "benchmark.seeds=[0]",
                      "benchmark.label_fractions=[0.1]", "benchmark.n_boot=50", "tracking.enabled=false",
                      "trainer.progress=false", "methods.source_only.max_iter=5"])
run_and_track(cfg, Path(sys.argv[1]))
print("torch" in sys.modules)
"""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True, timeout=300,
                              cwd=project_root())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
