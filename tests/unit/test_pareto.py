from hypothesis import given
from hypothesis import strategies as st

from optbench.report.pareto import dominates, pareto_front

point = st.tuples(st.integers(0, 20), st.integers(0, 20))


def test_known_front_min_energy_max_accuracy():
    pts = [(1.0, 0.90), (2.0, 0.95), (3.0, 0.94), (0.5, 0.80), (2.0, 0.95)]
    assert pareto_front(pts, ("min", "max")) == [0, 1, 3, 4]


def test_dominance_needs_strict_improvement():
    assert dominates((1, 1), (2, 1), ("min", "min"))
    assert not dominates((1, 1), (1, 1), ("min", "min"))
    assert dominates((1, 5), (1, 4), ("min", "max"))


@given(st.lists(point, min_size=1, max_size=30))
def test_front_is_exactly_the_non_dominated_set(points):
    senses = ("min", "max")
    front = set(pareto_front(points, senses))
    assert front  # a non-empty set always has a non-dominated point
    for i, p in enumerate(points):
        dominated = any(dominates(q, p, senses) for q in points)
        assert (i in front) == (not dominated)
