"""The final comparison's table (per strategy, test accuracy and error over seeds, and error reductions) and its
paired differences between strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.evaluate.records import EvaluationRun
from deepaug_pipeline.evaluate.strategies import found_base, strategy_labels
from deepaug_pipeline.search.noise import PairedGain, paired_gain, sample_std


# NumPy's mean and std, not pandas' built-in ones (a compensated sum, Welford's variance): those differ in the last
# bit, and the table keeps the values it always had.
def _mean(accuracies: pd.Series) -> float:
    return float(accuracies.to_numpy().mean())


def results_table(runs: list[EvaluationRun], strategies: list[str], found: Policy | None = None) -> pd.DataFrame:
    """Per strategy: test accuracy and error as mean ± std over seeds, and error reductions vs none / standard.
    Labels name the base the search chose with ``found``, and say so when it found no policy (crop + flip if
    ``found`` is None)."""
    ok = [r for r in runs if r.ok]
    frame = pd.DataFrame({"strategy": [r.strategy for r in ok], "test_accuracy": [r.test_accuracy for r in ok]})
    table = (
        frame.groupby("strategy")["test_accuracy"]
        .agg(runs="size", test_accuracy_mean=_mean, test_accuracy_std=sample_std)
        .reindex(pd.Index(strategies, name="strategy"))  # in the order asked, a strategy without an ok run too
        .fillna({"runs": 0})
        .astype({"runs": int})
        .reset_index()
    )
    same_as = {r.strategy: r.same_as for r in runs if r.same_as}
    labels = strategy_labels(found_base(found) if found is not None else "standard", found is not None and found.is_empty)
    table.insert(1, "label", table["strategy"].map(labels))
    table.insert(2, "same_as", [same_as.get(name) for name in strategies])  # trained once, as this other strategy
    table["test_error_mean"] = 1 - table["test_accuracy_mean"]
    table["test_error_std"] = table["test_accuracy_std"]  # an error spreads over seeds as its accuracy does
    errors = table.set_index("strategy")["test_error_mean"]
    for ref in ("none", "standard"):
        ref_error = errors.get(ref, np.nan)
        # No reduction against a reference with no error; NaN against one that is not in the table or has no run.
        table[f"error_reduction_vs_{ref}"] = (ref_error - errors.to_numpy()) / ref_error if ref_error else np.nan
    return table


def paired_error_difference(runs: list[EvaluationRun], a: str, b: str) -> PairedGain:
    """``a``'s test error minus ``b``'s, paired by seed over the seeds where both finished. Every strategy's run on a
    seed starts from the same initial weights and sees the same data order, so the seed's own effect cancels, as in
    the search's paired re-evaluation."""

    def errors(strategy: str) -> dict[int, float | None]:
        return {r.seed_index: r.test_error if r.ok else None for r in runs if r.strategy == strategy}

    return paired_gain(None, errors(a), errors(b))
