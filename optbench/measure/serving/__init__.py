"""Serving scenarios: MLPerf LoadGen's traffic against a queue and a dynamic batcher in
front of the model, with the meters' window over each offered load's steady state."""

from optbench.measure.serving.scenario import SCENARIOS, SWEEP, Scenario

__all__ = ["SCENARIOS", "SWEEP", "Scenario"]
