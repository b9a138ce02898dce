import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optbench.results.stats import overlaps, percentile, summarize, t95

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=50), st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy_linear(values, q):
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-9, abs=1e-6)


def test_t_quantiles_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 5, 10, 29, 30, 31, 60, 200):
        assert t95(dof) == pytest.approx(scipy_stats.t.ppf(0.975, dof), rel=0.002)


def test_summary_ci_is_student_t():
    values = [1.0, 2.0, 3.0, 4.0]
    s = summarize(values)
    sd = np.std(values, ddof=1)
    assert s.mean == 2.5 and s.median == 2.5 and s.n == 4
    assert s.ci95 == pytest.approx(3.182 * sd / 2)
    assert s.cov == pytest.approx(sd / 2.5)


def test_single_value_has_no_interval():
    s = summarize([5.0])
    assert s.ci95 is None and s.cov is None and s.ci_relative is None


@given(st.lists(st.floats(min_value=0.1, max_value=10), min_size=2, max_size=20))
def test_ci_is_non_negative_and_contains_mean(values):
    s = summarize(values)
    assert s.ci95 is not None and s.ci95 >= 0
    assert s.min - 1e-9 <= s.mean <= s.max + 1e-9


def test_overlap():
    a = summarize([1.0, 1.1, 0.9])
    b = summarize([1.05, 1.15, 0.95])
    c = summarize([5.0, 5.1, 4.9])
    assert overlaps(a, b) and not overlaps(a, c)
    assert not math.isnan(a.ci95)
