"""The evaluation report: figures, report.md (images beside it) and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import io
import json
from importlib import metadata
from typing import TYPE_CHECKING, get_args

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepaug_pipeline.augment.policy import Policy  # noqa: E402
from deepaug_pipeline.config import Strategy  # noqa: E402
from deepaug_pipeline.evaluate.results import paired_error_difference  # noqa: E402
from deepaug_pipeline.search.noise import PairedGain, beyond_accept_se  # noqa: E402

if TYPE_CHECKING:
    from deepaug_pipeline.evaluate.records import EvaluationRun

PACKAGES = ("deepaug-pipeline", "tensorflow", "keras", "kedro", "kedro-datasets", "kedro-mlflow", "mlflow", "scikit-optimize", "numpy")


LINE_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"))
STRATEGY_ORDER = get_args(Strategy)  # a strategy keeps its colour and line style in every chart


def _look(strategy: str) -> tuple[str, object, str]:
    i = STRATEGY_ORDER.index(strategy)
    return (f"C{i}", *LINE_STYLES[i % len(LINE_STYLES)])


def error_dot_plot(table: pd.DataFrame, runs: list[EvaluationRun] | None = None) -> plt.Figure:
    """Test error per strategy: mean ± std over seeds as a dot with error bars (one colour per strategy) and each
    seed's run as a small point, on an axis fitted to the values, so 21% against 25% does not look alike."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    y = np.arange(len(table))[::-1]  # the first strategy on top
    for pos, row in zip(y, table.itertuples()):
        colour = _look(row.strategy)[0]
        spread = None if np.isnan(row.test_error_std) else row.test_error_std * 100  # one seed: no bar, not a zero one
        ax.errorbar(row.test_error_mean * 100, pos, xerr=spread, fmt="o", color=colour, capsize=4, markersize=7)
        seeds = [r.test_error * 100 for r in runs or [] if r.strategy == row.strategy and r.ok]
        ax.plot(seeds, [pos] * len(seeds), "|", color=colour, markersize=12, alpha=0.6)
    ax.set_yticks(y, table["label"], fontsize=8)
    ax.set_ylim(-0.6, len(table) - 0.4)  # rows a step apart at any count: two would otherwise sit on the frame's edges
    ax.set_xlabel("test error (%), mean ± std over seeds; ticks: single seeds")
    ax.set_title("Final model, test error (lower is better)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def learning_curves(runs: list[EvaluationRun], labels: dict[str, str]) -> plt.Figure:
    """Validation accuracy per epoch, averaged over seeds, one line per strategy trained (not aliases), each with
    its own line style and marker so overlapping strategies stay visible."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    trained = {r.strategy for r in runs if not r.same_as}  # an alias of a strategy left out of the list draws its runs
    for strategy in dict.fromkeys(r.strategy for r in runs if not r.same_as or r.same_as not in trained):
        curves = np.array([r.history["val_accuracy"] for r in runs if r.strategy == strategy and r.ok])
        if len(curves):
            colour, style, marker = _look(strategy)
            epochs = np.arange(1, curves.shape[1] + 1)
            ax.plot(epochs, curves.mean(axis=0), linestyle=style, marker=marker, markersize=4, color=colour,
                    markevery=max(1, len(epochs) // 12), label=labels[strategy])  # fmt: skip
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Learning curves (held-out training images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def convergence_from_trials(trials: pd.DataFrame) -> plt.Figure:
    """The search's rewards against trial number, from its trial table."""
    from deepaug_pipeline.search.results import convergence_figure

    method = trials["method"].dropna().iloc[0] if "method" in trials and trials["method"].notna().any() else "search"
    return convergence_figure({method: trials})


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return f"{v * 100:.2f}" if pct else f"{v:.4f}"


def _mean_std(mean: float, std: float, runs: int) -> str:
    """Percent, mean ± std over seeds; one run has no spread to show, and none has no value."""
    if runs == 0:
        return "–"
    return f"{_fmt(mean, True)} (one seed)" if runs == 1 else f"{_fmt(mean, True)} ± {_fmt(std, True)}"


def _comparison_frame(table: pd.DataFrame) -> pd.DataFrame:
    header = ["strategy", "runs", "test accuracy (%)", "test error (%)", "error reduction vs none", "error reduction vs standard"]
    rows = []
    labels = dict(zip(table["strategy"], table["label"]))

    def reduction(value) -> str:
        return "–" if pd.isna(value) else f"{value * 100:+.1f}%"

    for r in table.to_dict("records"):
        same = r.get("same_as")
        rows.append([
            r["label"] + (f" (= {labels[same]}, not trained twice)" if isinstance(same, str) and same in labels else ""), str(r["runs"]),
            _mean_std(r["test_accuracy_mean"], r["test_accuracy_std"], r["runs"]),
            _mean_std(r["test_error_mean"], r["test_error_std"], r["runs"]),
            reduction(r.get("error_reduction_vs_none")), reduction(r.get("error_reduction_vs_standard")),
        ])  # fmt: skip
    return pd.DataFrame(rows, columns=header)


# (strategy, reference): what each comparison in the verdict says, in this order.
COMPARISONS = (
    ("standard", "none"),
    ("standard+found", "standard"),
    ("standard+randaugment", "standard"),
    ("standard+trivialaugment", "standard"),
    ("standard+found", "standard+randaugment"),
    ("standard+found", "standard+trivialaugment"),
    ("standard+found", "none"),
)


MIN_SEEDS_FOR_NOISE = 3  # a standard error from 2 paired seeds rests on one degree of freedom: too rough to call a gap


def beyond_seed_noise(difference: PairedGain) -> bool:
    """A paired difference the verdict calls beyond seed noise: more than ``ACCEPT_SE`` standard errors over at least
    ``MIN_SEEDS_FOR_NOISE`` seeds (a difference with no spread has no noise estimate, so it is not)."""
    return len(difference.gains) >= MIN_SEEDS_FOR_NOISE and difference.se > 0 and beyond_accept_se(abs(difference.z))


def _compare(a: pd.Series, b: pd.Series, difference: PairedGain) -> str:
    """One comparison in words: a's test error against b's, paired by seed, and whether it is beyond seed noise."""
    n, diff = len(difference.gains), difference.mean
    if n == 0:
        return f"{a['label']} vs {b['label']}: no seed on which both finished, nothing to compare."
    size = "the same error" if diff == 0 else f"{abs(diff) * 100:.2f} points {'lower' if diff < 0 else 'higher'} error"
    if n == 1:
        noise = "one paired seed, so no noise estimate"
    elif difference.se == 0:
        noise = f"the same difference on all {n} paired seeds, so no noise estimate"
    else:
        z = f"{abs(difference.z):.1f} standard errors over {n} paired seeds"
        if beyond_seed_noise(difference):
            noise = f"{z}: beyond seed noise"
        elif beyond_accept_se(abs(difference.z)):
            noise = f"{z}; too few seeds to call it beyond noise, set evaluate.seeds to {MIN_SEEDS_FOR_NOISE} or more"
        else:
            noise = f"{z}: within seed noise"
    return f"{a['label']} vs {b['label']}: {size} ({noise})."


def _lowest_error(rows: pd.DataFrame, same_as: dict[str, str], runs: list[EvaluationRun]) -> str:
    """The strategy (or the tied strategies) with the lowest mean test error; a strategy that reuses the runs of
    another strategy in the table is that strategy, and is not named twice. Means over different seeds (a run that
    failed) are said to be so."""
    own = rows[[not _reuses_a_listed_strategy(name, rows, same_as) for name in rows.index]]
    lowest = own["test_error_mean"].min()
    tied = own.index[np.isclose(own["test_error_mean"], lowest, rtol=0, atol=1e-12)]
    names = " and ".join(own.loc[tied, "label"])
    finished = {frozenset(r.seed_index for r in runs if r.strategy == name and r.ok) for name in own.index}
    caveat = "; the strategies finished on different seeds, so compare them by the paired lines below" if len(finished) > 1 else ""
    return f"Lowest mean test error: {names} ({lowest * 100:.2f}%{', tied' if len(tied) > 1 else ''}{caveat})."


def _reuses_a_listed_strategy(name: str, rows: pd.DataFrame, same_as: dict[str, str]) -> bool:
    """``name`` reuses the runs of a strategy in the table, so what it says is said there."""
    return name in same_as and same_as[name] in rows.index


def _failures(runs: list[EvaluationRun], rows: pd.DataFrame, same_as: dict[str, str]) -> list[str]:
    lines = []
    for name, label in rows["label"].items():
        own = [r for r in runs if r.strategy == name and not _reuses_a_listed_strategy(name, rows, same_as)]
        failed = sum(not r.ok for r in own)
        if failed:
            rest = f"its figures are over the {len(own) - failed} that finished" if failed < len(own) else "it has no figures"
            lines.append(f"{label}: {failed} of {len(own)} runs failed (a loss that was not finite); {rest}.")
    return lines


def verdict(table: pd.DataFrame, runs: list[EvaluationRun]) -> list[str]:
    """Plain sentences: the best strategy, any failed runs, then what the base, the found policy, RandAugment and
    TrivialAugment each do against their reference, paired by seed, with the seed noise (a strategy that reuses
    another's runs says so)."""
    rows = table.set_index("strategy")
    same_as = rows["same_as"].dropna().to_dict() if "same_as" in rows else {}
    failures = _failures(runs, rows, same_as)
    rows = rows[rows["runs"] > 0]
    if rows.empty:
        return ["No run finished, so there is nothing to compare.", *failures]
    lines = [_lowest_error(rows, same_as, runs), *failures]

    def runs_of(name: str) -> str:  # the listed strategy whose runs ``name`` are (found → standard → none)
        while _reuses_a_listed_strategy(name, rows, same_as):
            name = same_as[name]
        return name

    compared: set[frozenset[str]] = set()
    said_same: set[str] = set()
    for a, b in COMPARISONS:
        if a not in rows.index or b not in rows.index:
            continue
        if runs_of(a) == runs_of(b):
            if a not in said_same:
                lines.append(f"{rows.loc[a, 'label']}: the same runs as {rows.loc[b, 'label']}, nothing to compare.")
                said_same.add(a)
        elif (pair := frozenset((runs_of(a), runs_of(b)))) not in compared:  # else said, under the runs' own name
            compared.add(pair)
            lines.append(_compare(rows.loc[a], rows.loc[b], paired_error_difference(runs, a, b)))
    return lines


def _policy_frame(policy: Policy) -> pd.DataFrame:
    width = policy.ops_per_sub_policy
    header = ["#"] + [h for j in range(width) for h in (f"op {j + 1}", f"magnitude {j + 1}")]
    rows = []
    for i, sub in enumerate(policy.sub_policies):
        cells = [str(i + 1)]
        for op in sub.operations:
            cells += [op.op, f"{op.magnitude:.2f}"]
        rows.append(cells + [""] * (len(header) - len(cells)))
    return pd.DataFrame(rows, columns=header)


def _md_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True)  # cells are already formatted text


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0)


SMOKE_TEST_EPOCHS = 10  # a final model trained shorter than this (or on fewer images) only shows the pipeline runs
SMOKE_TEST_IMAGES = 1000


def report_header(dataset_summary: dict, config: dict, search_run: str | None, evaluate_run: str | None, date: str) -> list[str]:
    """What the report is about, before anything it says: the data, when, which MLflow runs, the final model, and a
    warning when the configuration is too small for its numbers to mean anything."""
    shape = "×".join(str(d) for d in dataset_summary.get("image_shape", []))
    names = dataset_summary.get("class_names", [])
    sizes = dataset_summary.get("sizes", {})
    classes = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
    ev = config.get("evaluate", {})
    n_test, sample = sizes.get("test"), ev.get("test_size")
    scored_on = f"a stratified sample of {sample} of the {n_test} untouched test images" if sample and n_test and sample < n_test else "the untouched test split"
    # What the final models trained on, as final_splits draws it: TRAIN less the validation sample, or train_size of
    # it; what the config asks when the summary has no sizes.
    n_train = sizes.get("search_subset", 0) + sizes.get("seed_validation_pool", 0)
    available = max(n_train - (ev.get("validation_size") or 0), 0) if n_train else None
    images = min(ev.get("train_size") or available, available) if available is not None else ev.get("train_size")
    lines = [
        f"Dataset: {len(names)} classes ({classes}), {shape} images; search subset {sizes.get('search_subset')}, "
        f"validation pool {sizes.get('seed_validation_pool')}, test {sizes.get('test')}.",
        f"Date: {date}. MLflow runs: search {search_run or 'not tracked'}, evaluate {evaluate_run or 'not tracked'}.",
        f"Final model: {ev.get('model')}, {images or 'all'} training images, {ev.get('epochs')} epochs, "
        f"{ev.get('seeds')} seed(s) per strategy, scored on {scored_on}.",
    ]  # fmt: skip
    epochs = ev.get("epochs") or 0
    if epochs < SMOKE_TEST_EPOCHS or (images is not None and images < SMOKE_TEST_IMAGES):
        lines.append(f"Warning: this is a smoke-test configuration ({epochs} epochs, {images} training images). Its numbers "
                     "show that the pipeline runs, not what any augmentation is worth.")  # fmt: skip
    return lines


def build_report(
    table: pd.DataFrame,
    runs: list[EvaluationRun],
    policy: Policy,
    figures: dict[str, plt.Figure],
    config: dict,
    header: list[str] | None = None,
) -> tuple[str, str]:
    """Markdown (figures referenced as the PNG files the pipelines write beside it in data/08_reporting)
    and self-contained HTML (figures inlined as base64). The header (``report_header``) comes first, then the
    verdict in words, then the comparison."""
    header = header or []
    versions = package_versions()
    comparison = _comparison_frame(table)
    policy_table = _policy_frame(policy)
    captions = {
        "results": "Test error per strategy",
        "curves": "Learning curves",
        "policy_grid": "The found policy on real images (first row: originals)",
        "convergence": "Search convergence",
    }
    pngs = {name: _png(fig) for name, fig in figures.items()}
    config_text = json.dumps(config, indent=2, default=str)
    versions_table = pd.DataFrame(versions.items(), columns=["package", "version"])

    summary = verdict(table, runs)
    search_verdict = policy.metadata.get("verdict")
    base_choice = (policy.metadata.get("base_choice") or {}).get("in_words")
    screened_out = policy.metadata.get("screened_out")
    search_lines = [f"Search: {search_verdict}." if search_verdict else "Search: no verdict recorded with the policy.",
                    f"Search: {base_choice}." if base_choice else "",
                    f"Search: the op screen dropped {', '.join(screened_out)} before the optimiser started." if screened_out else ""]  # fmt: skip
    verdict_lines = summary + [line for line in search_lines if line]
    md = ["# deepaug-pipeline evaluation report", ""] + [f"{line}  " for line in header] + [""]
    md += ["## Verdict", ""] + [f"- {line}" for line in verdict_lines] + [""]
    md += ["## Comparison on the untouched test split", "", _md_table(comparison), ""]
    md += ["![Test error per strategy](evaluation_results.png)", "", "![Learning curves](learning_curves.png)", ""]
    found_text = ("No operations: no policy beat the base beyond noise, so none is added." if policy.is_empty else
                  f"{len(policy.sub_policies)} sub-policies; an image is left untouched with probability {policy.p_none:.2f}.")  # fmt: skip
    md += ["## The found policy", "", found_text, ""]
    md += ([] if policy.is_empty else [_md_table(policy_table), ""]) + ["![Sample grid](best_policy_grid.png)", ""]
    md += ["## Search convergence", "", "![Search convergence](convergence.png)", ""]
    md += ["## Configuration", "", "```json", config_text, "```", "", "## Package versions", "", _md_table(versions_table), ""]

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>deepaug-pipeline evaluation report</title>",
             "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}img{max-width:100%}p.meta{margin:.2em 0;color:#444}"
             "p.warning{background:#fff3cd;border:1px solid #e0c36b;padding:6px 10px}</style></head><body>",
             "<h1>deepaug-pipeline evaluation report</h1>",
             "".join(f"<p class='{'warning' if line.startswith('Warning') else 'meta'}'>{html.escape(line)}</p>" for line in header),
             "<h2>Verdict</h2>",
             "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in verdict_lines) + "</ul>",
             "<h2>Comparison on the untouched test split</h2>", _html_table(comparison)]  # fmt: skip
    for name in ("results", "curves"):
        parts.append(f"<figure><img alt='{captions[name]}' src='data:image/png;base64,{pngs[name]}'><figcaption>{captions[name]}</figcaption></figure>")
    parts += ["<h2>The found policy</h2>", f"<p>{html.escape(found_text)}</p>"] + ([] if policy.is_empty else [_html_table(policy_table)])
    parts.append(f"<figure><img alt='{captions['policy_grid']}' src='data:image/png;base64,{pngs['policy_grid']}'><figcaption>{captions['policy_grid']}</figcaption></figure>")
    parts += ["<h2>Search convergence</h2>", f"<img alt='{captions['convergence']}' src='data:image/png;base64,{pngs['convergence']}'>"]
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(config_text)}</pre>", "<h2>Package versions</h2>",
              _html_table(versions_table), "</body></html>"]  # fmt: skip
    return "\n".join(md), "\n".join(parts)
