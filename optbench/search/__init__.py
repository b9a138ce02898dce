"""`optbench search`: a recipe's grid searched with Optuna instead of swept (docs/search.md).

space.py turns the grid into dimensions, study.py runs the ask-and-tell loop around what
measures a configuration (rows.py: the store and the Runner, or a replay), summary.py
reports the front found, the hypervolume over trials and the energy spent.
"""
