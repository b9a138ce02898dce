"""Text generators: how each runtime generates tokens and scores text for the text workload.

A backend's `lm_loader` (see base.py) turns an artifact of format HF_CAUSAL_LM into one of
these; the generation loop in optbench.measure.generation drives them and does all the
timing.
"""
