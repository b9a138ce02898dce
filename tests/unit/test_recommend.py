"""Recommendation and report analysis on hand-checked rows."""

import pytest

from optbench.report.analysis import analyse
from optbench.report.recommend import Constraints, recommend


def row(run_id, backend, variant, quality, energy_mj, p99_ms, thr, method="measured-counter",
        ci_mj=0.1, batch=1):
    return {"run_id": run_id, "status": "ok", "model": "m", "quality_metric": "top1",
            "quality_higher_is_better": True, "sample_unit": "image", "backend": backend,
            "variant": variant, "batch_size": batch, "device": "cpu",
            "quality_value": quality, "energy_per_sample_j": energy_mj / 1e3,
            "energy_per_sample_ci95_j": ci_mj / 1e3, "latency_p50_s": p99_ms / 2e3,
            "latency_p99_s": p99_ms / 1e3, "throughput_per_s": thr, "energy_method": method,
            "co2_g_per_1000": energy_mj * 0.1}


ROWS = [
    row(1, "torch", "fp32", 0.980, 10.0, 50, 20),    # the baseline
    row(2, "ort", "fp32", 0.980, 6.0, 30, 33),
    row(3, "ort", "int8", 0.975, 2.0, 12, 80),
    row(4, "openvino", "int8", 0.960, 1.5, 10, 95),
    row(5, "torch", "int8", 0.979, 2.05, 20, 60, ci_mj=0.2),  # overlaps ort int8 in energy
    row(6, "fake", "int4", 0.990, 0.5, 5, 200, method="estimated"),
]


@pytest.fixture
def group():
    (g,) = analyse([dict(r) for r in ROWS])
    return g


def test_baseline_deltas_fronts_and_overlaps(group):
    assert group.baseline["run_id"] == 1
    ort_int8 = group.by_id(3)
    assert ort_int8["delta"]["energy"] == pytest.approx(-0.8)
    assert ort_int8["delta"]["quality"] == pytest.approx(-0.005)
    # measured energy front: 4 (lowest energy), 3, 5? 5 has higher quality than 3 but more
    # energy -> on the front; 2 and 1 have top quality 0.98 -> 2 dominates 1.
    assert group.fronts["energy_per_sample_j"] >= {2, 3, 4, 5}
    assert 1 not in group.fronts["energy_per_sample_j"]
    assert 6 in group.fronts["energy_per_sample_j"]  # estimated: its own front
    assert 5 in group.overlaps[3] and 3 in group.overlaps[5]
    assert 6 not in group.overlaps.get(4, [])  # never compared across provenance


def test_energy_objective_with_quality_floor(group):
    rec = recommend(group, Constraints(max_quality_drop=0.01))
    # floor 0.970 excludes openvino int8 (0.960); measured before estimated
    assert rec.best["run_id"] == 3
    assert [r["run_id"] for r in rec.runners_up][:1] == [5]
    assert any("not distinguishable" in reason for reason in rec.reasons)
    assert any(r["run_id"] == 4 and "floor" in why for r, why in rec.rejected)


def test_latency_and_throughput_objectives(group):
    assert recommend(group, Constraints(objective="latency")).best["run_id"] == 6
    assert recommend(group, Constraints(objective="throughput",
                                        max_quality_drop=0.001)).best["run_id"] == 6
    capped = recommend(group, Constraints(objective="energy", max_latency_p99_s=0.011))
    assert capped.best["run_id"] == 4


def test_nothing_satisfies():
    (g,) = analyse([dict(r) for r in ROWS])
    rec = recommend(g, Constraints(max_latency_p99_s=0.001))
    assert rec.best is None and len(rec.rejected) == len(ROWS)
    assert all("latency p99" in why for _, why in rec.rejected)


def test_unknown_objective():
    with pytest.raises(ValueError, match="unknown objective"):
        Constraints(objective="speed")


def test_text_groups_lower_perplexity_is_better_and_tpot_can_be_the_objective():
    rows = []
    for run_id, (variant, ppl, tpot_ms) in enumerate(
            [("fp32", 157.2, 4.2), ("woq-int8", 157.3, 2.8), ("woq-int4", 163.0, 2.9),
             ("int8", 157.1, 9.0)], start=1):
        r = row(run_id, "openvino", variant, ppl, 10.0 - run_id, 50, 20)
        r.update(quality_metric="perplexity", quality_higher_is_better=False,
                 sample_unit="token", ttft_p50_s=0.01, tpot_p50_s=tpot_ms / 1e3)
        rows.append(r)
    (g,) = analyse(rows)
    # best quality first in tables means the lowest perplexity first
    from optbench.report.analysis import best_first, generative

    assert [r["variant"] for r in best_first(g)][:2] == ["int8", "fp32"]
    assert generative(g)
    # TPOT front: int8 (best perplexity), fp32 (next, faster), woq-int8 (fastest of the
    # rest); woq-int4 is slower than woq-int8 and worse: dominated
    assert g.fronts["tpot_p50_s"] == {1, 2, 4}
    rec = recommend(g, Constraints(max_quality_drop=1.0, objective="tpot"))
    assert rec.best["variant"] == "woq-int8"  # woq-int4 is 5.8 perplexity worse: rejected
    assert any("woq-int4" == r["variant"] for r, _ in rec.rejected)
