"""Text generators: how each runtime generates tokens and scores text for the text workload.

Backends load an artifact of format `hf-causal-lm` into one of these (see base.py); the
generation loop in optbench.measure.generation drives them and does all the timing.
"""
