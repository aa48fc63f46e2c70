"""helpers.models.diffusion（TabDDPM）のテスト: 本当に学ぶか、再開が厳密か、入力検査が働くか。"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from child_process import kill_when_file_appears  # tests/child_process.py
from scipy.stats import wasserstein_distance

from helpers.data import make_split, make_synthetic
from helpers.models.denoiser import (
    MLPDenoiser,
    cosine_alphas_cumprod,
    timestep_embedding,
)
from helpers.models.diffusion import (
    CHECKPOINT_NAME,
    CheckpointMismatchError,
    TabDDPM,
    TabDDPMRegressor,
    measure_throughput,
)

ROOT = Path(__file__).resolve().parents[1]
#: 再開テスト用の小さな設定（dropout > 0 なので大域の乱数状態の復元も試される）
TINY = dict(
    timesteps=20, hidden=32, n_layers=2, dim_t=16, dropout=0.1, batch_size=64, lr=1e-3, ema_decay=0.99,
    log_every=7, device="cpu", num_threads=1, progress=False, seed=3,
)
#: 分布を学べるかのテスト用の設定
SMALL = dict(
    timesteps=50, hidden=64, n_layers=2, batch_size=256, lr=3e-3, ema_decay=0.99,
    device="cpu", num_threads=1, progress=False, seed=0,
)


def two_domain_data(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    domain = (rng.random(n) < 0.3).astype(int)
    X = rng.normal(size=(n, 3)) + 1.5 * domain[:, None]
    y = X.sum(1) + 0.1 * rng.normal(size=n)
    return X, y, domain


def mixture(n: int, seed: int) -> np.ndarray:
    """2 次元の 2 峰混合: 確率 0.7 で (2, 2)、0.3 で (-2, -2)、各成分の標準偏差 0.5。"""
    rng = np.random.default_rng(seed)
    upper = rng.random(n) < 0.7
    return np.where(upper[:, None], 2.0, -2.0) + 0.5 * rng.normal(size=(n, 2))


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_same_run(a: TabDDPM, b: TabDDPM) -> None:
    assert same_state(a.model_, b.model_), "モデルの重みが止めずに学習したものと違う"
    assert same_state(a.ema_, b.ema_), "EMA の重みが止めずに学習したものと違う"
    assert a.history_ == b.history_
    assert torch.equal(a.generator_.get_state(), b.generator_.get_state())
    Xa, ya = a.sample(50, seed=1)
    Xb, yb = b.sample(50, seed=1)
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)


def test_cosine_schedule_and_timestep_embedding():
    ac = cosine_alphas_cumprod(1000)
    assert ac.shape == (1000,) and np.all(np.diff(ac) < 0)
    assert 0.999 < ac[0] < 1 and ac[-1] < 1e-4
    # 途中は閉じた式 ᾱ(t) = f(t)/f(0) そのもの（β の頭打ちは最後の数ステップだけ）
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    np.testing.assert_allclose(ac[499], f(500) / f(0), rtol=1e-10)
    emb = timestep_embedding(torch.tensor([0, 1, 999]), 16)
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 8 + [0.0] * 8))
    assert not torch.allclose(emb[1], emb[2])
    net = MLPDenoiser(3, hidden=8, n_layers=1, dim_t=16)
    x = torch.zeros(2, 3)
    out = net(x, torch.tensor([0, 500]))
    assert out.shape == (2, 3) and not torch.allclose(out[0], out[1])  # 時刻で出力が変わる


def test_samples_are_closer_to_data_than_noise():
    rng = np.random.default_rng(0)
    n = 1500
    X = np.column_stack([
        3 + rng.exponential(size=n),            # 歪んだ分布
        rng.normal(-2, 0.5, size=n),            # ずれた正規分布
        rng.uniform(0, 10, size=n),             # 一様分布
        rng.integers(0, 4, size=n).astype(float),  # 離散値（観測値に丸められるはず）
    ])
    y = X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=n)
    data = np.column_stack([X, y])

    def mean_w1(samples: np.ndarray) -> float:
        return float(np.mean([wasserstein_distance(samples[:, j], data[:, j]) for j in range(data.shape[1])]))

    trained = TabDDPM(**SMALL, steps=200).fit(X, y)
    Xs, ys = trained.sample(800, seed=1)
    w_trained = mean_w1(np.column_stack([Xs, ys]))
    w_noise = mean_w1(rng.normal(size=data.shape))
    untrained = TabDDPM(**SMALL, steps=1).fit(X, y)
    w_untrained = mean_w1(np.column_stack(untrained.sample(800, seed=1)))
    assert w_trained < 0.1 * w_noise, (w_trained, w_noise)
    assert w_trained < 0.5 * w_untrained, (w_trained, w_untrained)
    assert set(np.unique(Xs[:, 3])) <= {0.0, 1.0, 2.0, 3.0}
    assert trained.history_[-1][1] < trained.history_[0][1]  # 損失が下がっている


def test_reproduces_two_gaussian_mixture():
    X = mixture(2000, seed=0)
    model = TabDDPM(**SMALL, steps=500).fit(X)
    S, y = model.sample(1000, seed=1)
    assert y is None and S.shape == (1000, 2)
    upper = np.mean((S[:, 0] > 0) & (S[:, 1] > 0))
    off_diagonal = np.mean(np.sign(S[:, 0]) != np.sign(S[:, 1]))
    # 真の値: upper 0.7, 非対角 0, 相関 0.94, 平均 (0.8, 0.8)。
    # 周辺分布だけを合わせた（2 変数が独立な）モデルなら upper 0.49, 非対角 0.42, 相関 0 になる
    assert abs(upper - 0.7) < 0.08, upper
    assert off_diagonal < 0.15, off_diagonal
    assert np.corrcoef(S.T)[0, 1] > 0.7
    np.testing.assert_allclose(S.mean(0), X.mean(0), atol=0.25)
    np.testing.assert_allclose(S.std(0), X.std(0), rtol=0.15)


def test_domain_embedding_generates_the_requested_domain():
    rng = np.random.default_rng(0)
    domain = (rng.random(1200) < 0.5).astype(int)
    X = rng.normal(size=(1200, 2)) * 0.5 + np.where(domain[:, None] == 1, 2.0, -2.0)
    model = TabDDPM(**SMALL, steps=200).fit(X, domain=domain)
    source, _ = model.sample(500, domain=0, seed=1)
    target, _ = model.sample(500, domain=1, seed=1)
    np.testing.assert_allclose(source.mean(0), [-2, -2], atol=0.3)
    np.testing.assert_allclose(target.mean(0), [2, 2], atol=0.3)
    np.testing.assert_array_equal(model.sample(20, seed=4)[0], model.sample(20, domain=1, seed=4)[0])


def test_resume_reaches_exactly_the_uninterrupted_weights(tmp_path):
    X, y, domain = two_domain_data()
    uninterrupted = TabDDPM(**TINY, steps=60).fit(X, y, domain)
    first = TabDDPM(**TINY, steps=25, checkpoint_dir=tmp_path, checkpoint_every=10).fit(X, y, domain)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)["step"] == 25
    assert not same_state(first.model_, uninterrupted.model_)
    resumed = TabDDPM(**TINY, steps=60, checkpoint_dir=tmp_path, checkpoint_every=10).fit(X, y, domain)
    assert_same_run(resumed, uninterrupted)
    # 学習済みのチェックポイントは読み込むだけ
    again = TabDDPM(**TINY, steps=60, checkpoint_dir=tmp_path).fit(X, y, domain)
    assert_same_run(again, uninterrupted)


def test_resume_after_sigkill(tmp_path):
    """子プロセスで学習し、チェックポイントができたら SIGKILL。続きから学習して、止めなかった場合と一致するか。"""
    X, y, domain = two_domain_data()
    np.savez(tmp_path / "data.npz", X=X, y=y, domain=domain)
    ckpt_dir, go = tmp_path / "ckpt", tmp_path / "go"
    steps = 200
    code = (
        "import pathlib, time\n"
        "import numpy as np\n"
        "from helpers.models.diffusion import TabDDPM\n"
        f"d = np.load({str(tmp_path / 'data.npz')!r})\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.01)\n"
        f"TabDDPM(**{TINY!r}, steps={steps}, checkpoint_dir={str(ckpt_dir)!r}, checkpoint_every=5)"
        ".fit(d['X'], d['y'], d['domain'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        # 子プロセスが import している間に、止めない学習を済ませておく（go ファイルで子の学習を始めさせる）
        uninterrupted = TabDDPM(**TINY, steps=steps).fit(X, y, domain)
        go.touch()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    kill_when_file_appears(proc, ckpt_dir / CHECKPOINT_NAME, timeout=60, what="チェックポイントを書く")
    killed_at = torch.load(ckpt_dir / CHECKPOINT_NAME, weights_only=False)["step"]
    assert 0 < killed_at < steps, killed_at

    resumed = TabDDPM(**TINY, steps=steps, checkpoint_dir=ckpt_dir, checkpoint_every=500).fit(X, y, domain)
    assert_same_run(resumed, uninterrupted)


def test_mismatched_checkpoint_raises_japanese_error(tmp_path):
    X, y, domain = two_domain_data()
    TabDDPM(**TINY, steps=10, checkpoint_dir=tmp_path).fit(X, y, domain)
    with pytest.raises(CheckpointMismatchError, match="別の設定かデータ.*lr: 0.001 → 0.002"):
        TabDDPM(**{**TINY, "lr": 2e-3}, steps=20, checkpoint_dir=tmp_path).fit(X, y, domain)
    with pytest.raises(CheckpointMismatchError, match="data:"):
        TabDDPM(**TINY, steps=20, checkpoint_dir=tmp_path).fit(X + 1, y, domain)
    with pytest.raises(CheckpointMismatchError, match="step 10 まで進んで"):
        TabDDPM(**TINY, steps=5, checkpoint_dir=tmp_path).fit(X, y, domain)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"steps": 0}, "steps"),
        ({"timesteps": 1}, "timesteps"),
        ({"lr": -1e-3}, "lr"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"num_threads": 0}, "num_threads"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} は"):
        TabDDPM(**kwargs)


def test_bad_inputs_raise():
    X, y, domain = two_domain_data(50)
    model = TabDDPM(**TINY, steps=2)
    with pytest.raises(RuntimeError, match="まだ学習されていません"):
        model.sample(5)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="y の形"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match="domain は"):
        model.fit(X, y, domain + 1)
    model.fit(X, y)
    with pytest.raises(ValueError, match="ドメインなしで学習"):
        model.sample(5, domain=1)
    with pytest.raises(ValueError, match="n は"):
        model.sample(0)
    with pytest.raises(ValueError, match="n_synthetic"):
        TabDDPMRegressor(n_synthetic=0)


@pytest.mark.parametrize("use_source", [False, True])
def test_regressor_beats_mean_predictor(use_source):
    data = make_synthetic(n_source=600, n_target=500, n_features=4, seed=0)
    split = make_split(data, label_fraction=0.3, min_test_rows=100, seed=0)
    model = TabDDPMRegressor(
        timesteps=50, hidden=64, n_layers=2, steps=200, batch_size=256, lr=3e-3, ema_decay=0.99,
        n_synthetic=300, use_source=use_source, device="cpu", num_threads=1, progress=False, seed=0,
    ).fit(split)
    assert model.X_synthetic_.shape == (300, 4)
    assert model.diffusion.n_domains_ == (2 if use_source else 0)
    pred = model.predict(split.X_target_test)
    mse = np.mean((pred - split.y_target_test) ** 2)
    mse_mean = np.mean((split.y_target_train.mean() - split.y_target_test) ** 2)
    assert mse < 0.5 * mse_mean, (mse, mse_mean)


def test_measure_throughput_is_positive():
    rate = measure_throughput("cpu", batch_size=32, steps=5, d=3, hidden=16, n_layers=1, timesteps=10, warmup=1, num_threads=1)
    assert np.isfinite(rate) and rate > 0
