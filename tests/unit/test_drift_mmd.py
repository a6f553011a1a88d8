"""MMD² permutation test: the statistic against a direct computation, power and calibration."""

from __future__ import annotations

import numpy as np
import pytest

from components.drift.mmd import mmd_permutation_test


def direct_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    z = np.vstack([x, y])
    k = np.exp(-((z[:, None, :] - z[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def test_statistic_and_bandwidth_match_a_direct_computation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 6)), rng.normal(0.4, 1, size=(45, 6))
    r = mmd_permutation_test(x, y, permutations=50, seed=1)
    z = np.vstack([x, y])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    assert r.bandwidth == pytest.approx(np.sqrt(np.median(d2[np.triu_indices(len(z), 1)])), rel=1e-5)
    assert r.mmd2 == pytest.approx(direct_mmd2(x, y, r.bandwidth), abs=1e-6)
    assert (r.n_reference, r.n_current, r.permutations, len(r.null)) == (60, 45, 50, 50)


def test_permutation_values_are_mmd2_of_relabelled_samples():
    # Under a relabelling the pooled sample is the same, so the null MMD² values must be symmetric
    # around ~0 and the observed value of an identical split must be inside them.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 4))
    r = mmd_permutation_test(x[:40], x[40:], permutations=200, seed=3)
    null = np.array(r.null)
    assert abs(null.mean()) < 3 * null.std() / np.sqrt(len(null))
    assert r.p_value > 0.01


def test_detects_a_0_2_mean_shift_in_32_of_512_dims():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2000, 512)).astype(np.float32)
    y = rng.normal(size=(2000, 512)).astype(np.float32)
    y[:, :32] += 0.2
    r = mmd_permutation_test(x, y, permutations=100, seed=0)
    assert r.p_value == pytest.approx(1 / 101)
    assert r.mmd2 > max(r.null)


def test_does_not_flag_an_unshifted_pair():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2000, 512)).astype(np.float32)
    y = rng.normal(size=(2000, 512)).astype(np.float32)
    r = mmd_permutation_test(x, y, permutations=100, seed=0)
    assert r.p_value > 0.05


def test_false_positive_rate_is_near_the_level_on_null_pairs():
    rng = np.random.default_rng(12)
    p = [mmd_permutation_test(rng.normal(size=(60, 5)), rng.normal(size=(50, 5)), permutations=200, seed=s).p_value for s in range(40)]
    # 40 null tests at the 5 % level: Binomial(40, 0.05) > 6 has probability ~0.001.
    assert sum(v <= 0.05 for v in p) <= 6
    assert 0.2 < float(np.mean(p)) < 0.8  # roughly uniform


def test_subsampling_limits_rows_and_is_seeded():
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(500, 8)), rng.normal(size=(300, 8))
    a = mmd_permutation_test(x, y, permutations=20, seed=5, max_samples=100)
    b = mmd_permutation_test(x, y, permutations=20, seed=5, max_samples=100)
    assert (a.n_reference, a.n_current) == (100, 100)
    assert a.mmd2 == b.mmd2 and a.null == b.null


def test_degenerate_inputs():
    r = mmd_permutation_test(np.zeros((1, 3)), np.zeros((5, 3)))
    assert np.isnan(r.p_value) and r.permutations == 0
    same = mmd_permutation_test(np.ones((10, 3)), np.ones((10, 3)), permutations=10)
    assert same.mmd2 == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="dimensions differ"):
        mmd_permutation_test(np.zeros((5, 3)), np.zeros((5, 4)))
