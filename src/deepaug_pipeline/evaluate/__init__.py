"""Final comparison: train the final model per strategy × seed on TRAIN, score on the untouched test split.

``strategies``: what each strategy augments, and which are the same training; ``final``: the final models and the
grid of runs, resumed from the run log; ``records``: one run (``EvaluationRun``); ``results``: the comparison table;
``report``: the figures and the report.
"""
