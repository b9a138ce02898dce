from hypothesis import given, settings
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


def naive_front(points, senses):
    """The definition: every point that no other point dominates."""
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p, senses) for j, q in enumerate(points) if j != i)]


sense = st.sampled_from(["min", "max"])


@settings(deadline=None)  # the first example imports numpy (more than 4 objectives)
@given(st.integers(1, 4).flatmap(lambda d: st.tuples(
    st.lists(st.tuples(*[st.integers(0, 6)] * d), min_size=1, max_size=60),
    st.tuples(*[sense] * d))))
def test_the_fast_front_is_the_naive_definition_with_ties_and_duplicates(case):
    points, senses = case  # small integers: many ties and exact duplicates
    assert pareto_front(points, senses) == naive_front(points, senses)


@settings(deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-1, 1)),
                min_size=1, max_size=80), st.tuples(sense, sense, sense))
def test_the_fast_front_agrees_on_floats_in_three_objectives(points, senses):
    assert pareto_front(points, senses) == naive_front(points, senses)


def test_nan_is_neither_dominated_nor_dominating_as_dominates_has_it():
    pts = [(1.0, float("nan")), (2.0, 0.5), (1.0, 0.9), (3.0, 0.1)]
    assert pareto_front(pts, ("min", "max")) == naive_front(pts, ("min", "max")) == [0, 2]


def test_ten_thousand_points_in_well_under_a_second():
    import random
    import time

    rng = random.Random(0)
    pts2 = [(rng.random(), rng.random()) for _ in range(10_000)]
    pts3 = [(rng.random(), rng.random(), rng.random()) for _ in range(10_000)]
    started = time.perf_counter()
    front2 = pareto_front(pts2, ("min", "max"))
    front3 = pareto_front(pts3, ("min", "min", "max"))
    assert time.perf_counter() - started < 2.0  # the pairwise definition takes minutes
    sample = random.Random(1).sample(range(10_000), 20)  # spot-check against the definition
    for i in sample:
        on2 = not any(dominates(q, pts2[i], ("min", "max")) for q in pts2)
        on3 = not any(dominates(q, pts3[i], ("min", "min", "max")) for q in pts3)
        assert (i in front2) == on2 and (i in front3) == on3
