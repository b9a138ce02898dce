"""Quality uncertainty and paired significance: the statistics against hand-computed
values, and how ties on quality reach the fronts and the recommendation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optbench.report.analysis import analyse, compare_quality
from optbench.report.recommend import Constraints, quality_floor, recommend
from optbench.results import quality as q


def test_wilson_matches_hand_computed_values():
    # 965 of 1,000: p = 0.965, centre (p + z²/2n) / (1 + z²/n), half-width as in Wilson 1927
    low, high = q.wilson_interval(965, 1000)
    assert low == pytest.approx(0.95171, abs=1e-5) and high == pytest.approx(0.97473, abs=1e-5)
    # the edges, where the normal interval collapses to a point
    assert q.wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert q.wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    with pytest.raises(ValueError):
        q.wilson_interval(1, 0)


@pytest.mark.parametrize("b, c, p", [
    (1, 4, 2 * (1 + 5) / 32),  # 2 P(X <= 1), X ~ Bin(5, 1/2)
    (0, 5, 2 / 32),
    (2, 8, 2 * (1 + 10 + 45) / 1024),
    (3, 3, 1.0),
    (0, 0, 1.0),
])
def test_exact_mcnemar_small_cases(b, c, p):
    assert q.mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)
    assert q.mcnemar_exact(c, b) == pytest.approx(p, rel=1e-12)  # symmetric


def test_exact_mcnemar_large_counts_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in ((480, 550), (12, 31), (2000, 2100)):
        expected = scipy_stats.binomtest(min(b, c), b + c, 0.5).pvalue
        assert q.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)


def test_paired_mcnemar_counts_discordant_samples():
    base = [1, 1, 1, 0, 0, 1, 1, 1]
    other = [1, 0, 1, 1, 0, 1, 0, 1]  # right only in base: 2; right only in other: 1
    paired = q.paired_mcnemar(base, other)
    assert q.discordant(base, other) == (2, 1)
    assert paired.delta == pytest.approx(-1 / 8)
    assert paired.p_value == pytest.approx(1.0)
    assert not paired.significant


def test_samples_to_resolve_follows_connor():
    # b=10, c=20 of 1,000: psi = 0.03, delta = 0.01
    root = (q.Z95 * math.sqrt(0.03) + q.Z80 * math.sqrt(0.03 - 0.0001)) / 0.01
    assert q.mcnemar_samples_to_resolve(10, 20, 1000) == math.ceil(root ** 2) == 2353
    assert q.mcnemar_samples_to_resolve(5, 5, 1000) is None  # no difference to resolve


def test_bootstrap_is_reproducible_with_a_seed():
    rng = np.random.default_rng(0)
    nll = rng.normal(2.0, 0.3, 64)
    first = q.perplexity_interval(nll, seed=7)
    assert q.perplexity_interval(nll, seed=7) == first
    assert q.perplexity_interval(nll, seed=8) != first
    low, high = first
    assert low < q.perplexity(nll) < high
    shifted = q.paired_bootstrap(nll, nll + 0.05, seed=7)
    assert shifted == q.paired_bootstrap(nll, nll + 0.05, seed=7)
    assert shifted.significant and shifted.delta > 0  # every window worse: resolved
    noisy = q.paired_bootstrap(nll, nll + rng.normal(0, 0.3, 64), seed=7)
    assert noisy.p_value > 0.05 and noisy.samples_to_resolve > 64


def outcomes(n: int, wrong: list[int]) -> np.ndarray:
    values = np.ones(n, dtype=np.uint8)
    values[wrong] = 0
    return values


def row(run_id: int, variant: str, energy: float, correct: np.ndarray, **extra) -> dict:
    return {"run_id": run_id, "status": "ok", "model": "m", "quality_metric": "top1",
            "quality_higher_is_better": True, "sample_unit": "image", "backend": "ort",
            "variant": variant, "batch_size": 1, "device": "cpu",
            "quality_value": float(correct.mean()), "energy_per_sample_j": energy,
            "energy_per_sample_ci95_j": energy / 100, "latency_p50_s": 0.01,
            "latency_p99_s": 0.02, "throughput_per_s": 100.0, "energy_method": "measured",
            "quality_outcomes": correct, "quality_inputs": "mnist|1000",
            "quality_ci95_low": None, "quality_ci95_high": None, **extra}


N = 1000
BASE = outcomes(N, list(range(35)))  # 0.965


def test_a_difference_within_noise_is_tied_on_the_fronts():
    close = outcomes(N, list(range(37)))  # 0.963: two more wrong, p = 0.5
    worse = outcomes(N, list(range(80)))  # 0.920: 45 more wrong, p ~ 6e-14
    rows = [row(1, "fp32", 10e-3, BASE), row(2, "int8", 5e-3, close),
            row(3, "int4", 2e-3, worse)]
    (group,) = analyse(rows)
    fp32, int8, int4 = rows
    assert int8["quality_tied"] and int8["quality_delta_p_value"] == pytest.approx(0.5)
    assert int8["quality_test"] == "mcnemar-exact" and int8["quality_tier"] == 0.965
    assert not int4["quality_tied"] and int4["quality_delta_p_value"] < 1e-10
    assert int4["quality_tier"] is None
    # int8 ties fp32 on quality at half its energy: fp32 leaves the energy front; without
    # the tie both would be on it (fp32 has the higher point estimate)
    assert group.fronts["energy_per_sample_j"] == {2, 3}
    assert 1 not in group.front3


def test_runs_on_other_inputs_are_not_paired():
    rows = [row(1, "fp32", 10e-3, BASE), row(2, "int8", 5e-3, outcomes(N, [1, 2]),
                                              quality_inputs="mnist|other")]
    compare_quality(rows)
    assert rows[1]["quality_delta_p_value"] is None and rows[1]["quality_tied"] is None


def test_recommendation_says_why_it_chose_among_ties():
    close = outcomes(N, list(range(36)))
    closer = outcomes(N, list(range(34)))
    rows = [row(1, "fp32", 10e-3, BASE), row(2, "int8", 5e-3, close),
            row(3, "fp16", 7e-3, closer)]
    (group,) = analyse(rows)
    rec = recommend(group, Constraints(max_quality_drop=0.01))
    assert rec.best["variant"] == "int8"
    text = " ".join(rec.reasons)
    assert "≈ baseline" in text and "not significant" in text and "energy" in text
    assert "tied on quality with ort fp16 bs1" in text


def test_min_quality_ratio_is_mlperf_style_and_the_stricter_gate_wins():
    rows = [row(1, "fp32", 10e-3, BASE), row(2, "int8", 5e-3, outcomes(N, list(range(60))))]
    (group,) = analyse(rows)
    assert quality_floor(group, None, 0.99) == pytest.approx(0.965 * 0.99)
    assert quality_floor(group, 0.001, 0.99) == pytest.approx(0.964)
    rec = recommend(group, Constraints(min_quality_ratio=0.99))
    assert rec.best["variant"] == "fp32"  # 0.940 < 0.955
    assert "beyond the allowed floor" in rec.rejected[0][1]
    # lower is better (perplexity): at most baseline / ratio
    group.higher_is_better = False
    assert quality_floor(group, None, 0.99) == pytest.approx(0.965 / 0.99)
    with pytest.raises(ValueError):
        Constraints(min_quality_ratio=1.5)


def test_export_carries_intervals_and_paired_p_values(tmp_path):
    """From the store to the export: outcomes stored per run, the Wilson interval, and the
    McNemar p-value against the fp32 baseline on the same digits."""
    import csv
    import io

    from optbench.report.export import export_rows
    from optbench.results.schema import Metric, RunResult
    from optbench.results.store import Store
    from optbench.run.parse import parse_recipe

    specs = parse_recipe({"name": "t", "model": "fake-mlp", "backends": ["fake"],
                          "variants": {"fp32": [], "int8": ["int8"]},
                          "measure": {"preset": "smoke"}}).expand("cpu")
    workload = {"workload": "vision", "dataset": "mnist", "source": "digits",
                "eval_samples": N}
    close = outcomes(N, list(range(37)))
    with Store.open(tmp_path) as store:
        store.put_environment("env", {})
        for spec, correct in zip(specs, (BASE, close)):
            res = RunResult("ok", quality_metric="top1",
                            metrics=[Metric("top1", float(correct.mean()), "fraction"),
                                     Metric("eval_samples", float(N), "samples")],
                            details={"workload": workload},
                            outcomes={"top1": [float(v) for v in correct]})
            store.add_run(spec.to_dict(), spec.key(), "env", res, git_sha=None,
                          git_dirty=None, started_at="t", finished_at="t", wall_s=1.0,
                          log_path=None)
    rows = {r["variant"]: r for r in csv.DictReader(io.StringIO(export_rows(tmp_path, "csv")))}
    assert float(rows["fp32"]["quality_ci95_low"]) == pytest.approx(0.95171, abs=1e-5)
    assert rows["fp32"]["quality_delta_p_value"] == ""  # the baseline is not tested against itself
    assert float(rows["int8"]["quality_delta_p_value"]) == pytest.approx(0.5)
    assert rows["int8"]["quality_tied"] == "True"
    assert rows["int8"]["quality_test"] == "mcnemar-exact"
    assert rows["int8"]["quality_ci_method"] == "wilson"
