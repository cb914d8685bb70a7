"""A search's results as a table and as figures.

The figures are `matplotlib.figure.Figure` objects made without pyplot, so
nothing piles up in pyplot's figure list and any backend (Agg included)
can save them. Jupyter registers its image display for figures only once
pyplot is imported, so these figures also carry their own PNG form: a
figure returned as a cell's last value is drawn either way.

Example:

>>> from automl_kit.blocks.search_space import MicroSearchSpace
>>> import numpy as np
>>> architecture = MicroSearchSpace((28, 28, 1)).sample(np.random.default_rng(0))
>>> figure = plot_architecture(architecture)
>>> len(figure.axes)
2
"""

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from automl_kit.blocks.architecture import Architecture, CellArchitecture, DenseArchitecture, architecture_from_dict
from automl_kit.tuner.recipe import Recipe
from automl_kit.tuner.trial import COMPLETED

RESULT_COLUMNS = ["id", "status", "architecture", "params", "score", "shared_score", "predicted_score", "rung",
                  "epochs", "seconds", "failure_reason"]


class ReportFigure(Figure):
    """A Figure that IPython displays as a PNG, with or without pyplot imported."""

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def results_frame(trials):
    """One row per trial: the columns of `RESULT_COLUMNS`, typed (nullable ints, floats, strings).

    `score` is the validation objective trained from scratch (NaN for a
    failed trial) and `shared_score` the shared-weight score that made the
    architecture a candidate (NaN for the other tuners); `predicted_score` the
    surrogate's prediction that made it one with `"progressive"`; `rung` is the successive
    halving's rung the shared-weight searches trained it in (<NA> for `"random"`).
    """
    rows = [{
        "id": t.trial_id,
        "status": t.status,
        "architecture": str(t.architecture),
        "params": t.params,
        "score": t.score,
        "shared_score": t.shared_score,
        "predicted_score": t.predicted_score,
        "rung": t.rung,
        "epochs": t.epochs_run,
        "seconds": t.seconds,
        "failure_reason": t.failure_reason,
    } for t in trials]
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return frame.astype({
        "id": "string", "status": "string", "architecture": "string", "params": "Int64", "rung": "Int64",
        "score": "float64", "shared_score": "float64", "predicted_score": "float64", "epochs": "int64", "seconds": "float64",
        "failure_reason": "string",
    })


# Below this Kendall tau, the shared-weight scores tell little about training from scratch.
WEAK_RANKING_TAU = 0.3


def ranking(trials):
    """How well the shared-weight scores ranked the confirmed architectures: {"kendall_tau", "spearman",
    "count"} over the completed trials that have both scores, or None with fewer than 3 of them. Of a
    successive halving, only the first rung counts: there every candidate trained equally long.

    >>> from automl_kit.tuner.trial import Trial
    >>> trials = [Trial(str(i), None, "completed", score=s, shared_score=w)
    ...           for i, (s, w) in enumerate([(0.9, 0.5), (0.8, 0.4), (0.7, 0.45)])]
    >>> ranking(trials)
    {'kendall_tau': 0.333, 'spearman': 0.5, 'count': 3}
    """
    pairs = [(t.shared_score, t.score) for t in trials
             if t.status == COMPLETED and t.shared_score is not None and t.score is not None and not t.rung]
    if len(pairs) < 3:
        return None
    shared, scratch = np.array(pairs, dtype=float).T
    tau, rho = stats.kendalltau(shared, scratch).statistic, stats.spearmanr(shared, scratch).statistic
    if not (np.isfinite(tau) and np.isfinite(rho)):  # all scores equal on one side
        return None
    return {"kendall_tau": round(float(tau), 3), "spearman": round(float(rho), 3), "count": len(pairs)}


def ranking_text(rank):
    """One line on `ranking(...)`'s result, saying plainly when the supernet's ranking was not to be trusted."""
    if rank is None:
        return None
    line = (f"Ranking: Kendall tau {rank['kendall_tau']:.2f}, Spearman {rank['spearman']:.2f} between the shared-weight "
            f"and from-scratch scores of {rank['count']} confirmed architectures")
    if rank["kendall_tau"] < WEAK_RANKING_TAU:
        line += (": the shared weights ranked them poorly, so the search did little here beyond its trials; "
                 "the final choice rests on the from-scratch scores alone")
    return line


def summary_text(best_trial, objective, final_params, search_seconds, final_seconds, trials, history, final=None):
    """The lines `ImageClassifier.summary()` prints; `final` is how the final model was made (`tuner/final.py`)."""
    completed = sum(t.status == COMPLETED for t in trials)
    lines = [
        f"Best architecture: {best_trial.architecture}",
        f"  trial {best_trial.trial_id}: {objective}={best_trial.score:.4f}"
        + (f" (shared-weight score {best_trial.shared_score:.4f})" if best_trial.shared_score is not None else ""),
        f"  final model: {final_params:,} parameters",
    ]
    final = final or {}
    if final.get("scaling"):
        scaling = final["scaling"]
        estimated = len(scaling.get("estimated", []))
        lines.append(f"  scaled x{scaling['width']:g} wide and x{scaling['depth']} deep ({estimated} scaling(s) "
                     f"estimated): {architecture_from_dict(final['architecture'])}")
    if final.get("how"):
        lines.append(f"  trained {final['how']}" + (f", {final['epochs']} epoch(s)" if final.get("epochs") else ""))
    if final.get("recipe"):
        lines.append(f"  recipe: {Recipe(**final['recipe'])}")
    views = final.get("test_time_augmentation") or {}
    if views.get("flip") or views.get("shift"):
        described = [f"its copies shifted {views['shift']} px"] if views.get("shift") else []
        described += ["mirror images"] if views.get("flip") else []
        lines.append(f"  predicts with test-time augmentation: probabilities averaged over each image and "
                     f"{' and '.join(described)}")
    lines.append(f"Trials: {len(trials)} ({completed} completed, {len(trials) - completed} failed)")
    rank = ranking_text(ranking(trials))
    if rank:
        lines.append(rank)
    lines.extend(history_lines(history))
    lines.append(f"Time: search {_minutes(search_seconds)}, final training {_minutes(final_seconds)}")
    return "\n".join(lines)


def history_lines(history):
    """Summary lines on a search's own record (`Project.search_history`): the supernet's epochs, the NAS
    controller's rewards, or the progressive steps with their surrogate's ranking."""
    if not history:
        return []
    if "epoch" in history[0]:
        return [f"Supernet: {len(history)} epoch(s)"
                + (f", reward {history[-1]['mean_reward']:.3f} and entropy {history[-1]['mean_entropy']:.2f} "
                   "at the last epoch" if "mean_reward" in history[-1] else "")]
    if "child" in history[0]:
        rewarded = [r for r in history if "reward" in r]
        if not rewarded:
            return [f"Controller: no reward from its {len(history)} child(ren) (all failed)"]
        third = max(1, len(rewarded) // 3)
        first, last = rewarded[:third], rewarded[-third:]
        return [f"Controller: {len(rewarded)} update(s); mean reward {np.mean([r['reward'] for r in first]):.3f} "
                f"over the first {third} and {np.mean([r['reward'] for r in last]):.3f} over the last {third}, "
                f"entropy {first[0]['entropy']:.2f} -> {last[-1]['entropy']:.2f}"]
    taus = [f"{step['nodes']} nodes {step['rank_tau']:.2f}" for step in history if step.get("rank_tau") is not None]
    return [f"Progressive: cells grown to {history[-1]['nodes']} node(s) in {len(history)} step(s); surrogate's "
            "Kendall tau on the children it chose: " + (", ".join(taus) if taus else "none yet (under 2 per step)")]


def project_summary_text(path):
    """`summary_text` for the search stored in the project folder `path` (`directory/project_name`),
    as `automl-kit summary PATH` prints it; raises naming the folder when it holds no search."""
    import os

    from automl_kit.tuner.project import Project
    from automl_kit.tuner.training import objective_direction

    project = Project(os.fspath(path))
    if not os.path.exists(project.state_path):
        raise FileNotFoundError(f"{os.fspath(path)!r} holds no search (no {os.path.basename(project.state_path)}); "
                                "pass the project folder that fit wrote: its directory/project_name.")
    state, trials = project.state, project.load_trials()
    objective = state.get("fingerprint", {}).get("settings", {}).get("objective", "val_accuracy")
    completed = [t for t in trials if t.status == COMPLETED]
    if not completed:
        return f"The search in {project.path} has {len(trials)} trial(s) and none has completed yet."
    sign = -1.0 if objective_direction(objective) == "min" else 1.0
    best = next((t for t in completed if t.trial_id == state.get("best_trial")), None)
    best = best or max(completed, key=lambda t: sign * t.score)
    final = state.get("final") or {}
    text = summary_text(best, objective, final.get("params", best.params or 0), state.get("search_seconds"),
                        state.get("final_seconds"), trials, project.search_history(), final)
    status = "complete" if state.get("status") == "completed" else "not finished: fit again to resume it"
    return f"Search in {project.path} ({status})\n{text}"


def _minutes(seconds):
    if seconds is None:
        return "unknown"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s" if seconds >= 60 else f"{seconds:.1f} s"


# ------------------------------------------------------------------ search --
def plot_search(trials, objective, history=()):
    """Score per trial with the best so far; beside it, the search's own record (`Project.search_history`):
    for a supernet its loss, or the controller's reward and entropy, per epoch; for `"nas"` the controller's
    reward and entropy per child. With `"progressive"`, the surrogate's predictions are drawn by the scores."""
    history = [r for r in history if "epoch" in r or "reward" in r]  # progressive steps: drawn as predictions
    figure = ReportFigure(figsize=(11 if history else 6, 4), layout="constrained")
    axes = figure.subplots(1, 2 if history else 1, squeeze=False)[0]
    ax = axes[0]
    positions = np.arange(1, len(trials) + 1)
    scores = np.array([t.score if t.status == COMPLETED else np.nan for t in trials], dtype=float)
    ax.plot(positions, scores, "o", label=f"{objective}, trained from scratch")
    for field, marker, label in (("shared_score", "s", "shared-weight score"),
                                 ("predicted_score", "^", "surrogate's prediction")):
        values = np.array([np.nan if getattr(t, field) is None else getattr(t, field) for t in trials], dtype=float)
        if np.isfinite(values).any():
            ax.plot(positions, values, marker, mfc="none", label=label)
    if np.isfinite(scores).any():
        sign = -1.0 if objective.endswith("loss") else 1.0
        best = sign * np.fmax.accumulate(np.where(np.isfinite(scores), sign * scores, -np.inf))
        ax.step(positions, np.where(np.isfinite(best), best, np.nan), where="post", label="best so far")
    failed = [p for p, t in zip(positions, trials) if t.status != COMPLETED]
    if failed:
        low = np.nanmin(scores) if np.isfinite(scores).any() else 0.0
        ax.plot(failed, [low] * len(failed), "x", color="red", label="failed")
    rank = ranking(trials)
    title = "Trials" if rank is None else f"Trials (Kendall tau {rank['kendall_tau']:.2f} over {rank['count']})"
    ax.set(xlabel="trial", ylabel=objective, title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best", fontsize="small")
    if history and "child" in history[0]:
        _plot_controller(axes[1], [r["child"] for r in history], [r["reward"] for r in history],
                         [r["entropy"] for r in history], "child trained from scratch")
    elif history and any("mean_reward" in r for r in history):
        rewarded = [r for r in history if "mean_reward" in r]
        _plot_controller(axes[1], [r["epoch"] for r in rewarded], [r["mean_reward"] for r in rewarded],
                         [r["mean_entropy"] for r in rewarded], "supernet epoch")
    elif history:
        axes[1].plot([r["epoch"] for r in history], [r["loss"] for r in history], "o-")
        axes[1].set(xlabel="supernet epoch", ylabel="shared-weight training loss", title="Supernet")
        axes[1].xaxis.get_major_locator().set_params(integer=True)
    return figure


def _plot_controller(ax, steps, rewards, entropies, xlabel):
    ax.plot(steps, rewards, "o-", label="reward" if xlabel.startswith("child") else "mean reward")
    ax.set_ylabel("reward (validation accuracy)")
    twin = ax.twinx()
    twin.plot(steps, entropies, "s--", color="tab:orange", label="policy entropy")
    twin.set_ylabel("policy entropy")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize="small")
    ax.set(title="Controller", xlabel=xlabel)
    ax.xaxis.get_major_locator().set_params(integer=True)


# ------------------------------------------------------------ architecture --
_BOX = dict(boxstyle="round,pad=0.3", fc="#e8eef7", ec="#4a6fa5")
_INPUT_BOX = dict(boxstyle="round,pad=0.3", fc="#f3f3f3", ec="#888888")


def plot_architecture(architecture):
    """Draws an architecture as a graph with matplotlib alone (no graphviz needed).

    A cell architecture gives two panels, the normal and the reduction
    cell: boxes are the cell's inputs, its nodes and its output, and each
    edge is labelled with the op applied along it. A macro architecture
    gives one row per stage, with its skip connections as dashed arcs.
    """
    if isinstance(architecture, CellArchitecture):
        return _plot_cells(architecture)
    if isinstance(architecture, Architecture):
        return _plot_stages(architecture)
    if isinstance(architecture, DenseArchitecture):
        return _plot_chain(["input", *(f"dense {u}" for u in architecture.units), "softmax"],
                           title=str(architecture))
    raise TypeError(f"Cannot draw {type(architecture).__name__}; expected an automl_kit architecture.")


def _arrow(ax, start, end, label=None, rad=0.0, dashed=False):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(
        arrowstyle="-|>", color="#555555", shrinkA=14, shrinkB=14, connectionstyle=f"arc3,rad={rad}",
        linestyle="--" if dashed else "-"))
    if label:
        # The middle of an arc3 curve sits off the chord by rad/2 of its length, to the right.
        (x0, y0), (x1, y1) = start, end
        mx, my = (x0 + x1) / 2 + rad / 2 * (y1 - y0), (y0 + y1) / 2 - rad / 2 * (x1 - x0)
        ax.text(mx, my, label, fontsize=7, ha="center", va="center", color="#333333",
                bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))


def _plot_cells(architecture):
    figure = ReportFigure(figsize=(12, 4.5), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, kind in zip(axes, ("normal", "reduce")):
        nodes = getattr(architecture, kind)
        positions = {0: (0.0, 1.5), 1: (0.0, -1.5)}
        for i in range(len(nodes)):
            positions[i + 2] = (1.5 * (i + 1), 1.0 if i % 2 == 0 else -1.0)
        output = (1.5 * (len(nodes) + 1), 0.0)
        read = {j for node in nodes for j in node.inputs}
        for i, node in enumerate(nodes):
            for slot, (j, op) in enumerate(zip(node.inputs, node.ops)):
                rad = 0.25 if slot == 0 else -0.25
                if node.inputs[0] != node.inputs[1]:
                    rad = 0.1 * (1 if slot == 0 else -1)
                _arrow(ax, positions[j], positions[i + 2], op, rad=rad)
        for k in range(2, len(nodes) + 2):
            if k not in read:
                _arrow(ax, positions[k], output, dashed=True)
        labels = {0: "cell k-2", 1: "cell k-1", **{k: f"node {k}" for k in range(2, len(nodes) + 2)}}
        for k, (x, y) in positions.items():
            ax.text(x, y, labels[k], ha="center", va="center", fontsize=8, bbox=_INPUT_BOX if k < 2 else _BOX)
        ax.text(*output, "mean", ha="center", va="center", fontsize=8, bbox=_INPUT_BOX)
        ax.set_xlim(-0.8, output[0] + 0.8)
        ax.set_ylim(-2.3, 2.3)
        ax.set_title(f"{kind} cell" if kind == "normal" else "reduction cell")
        ax.axis("off")
    figure.suptitle(f"{architecture.filters} filters, {architecture.num_stages} stages of "
                    f"{architecture.cells_per_stage} cell(s); loose ends (dashed) are averaged", fontsize=9)
    return figure


def _plot_stages(architecture):
    rows = len(architecture.stages)
    width = max(len(stage) for stage in architecture.stages) + 1
    figure = ReportFigure(figsize=(max(4.0, 2.0 * width), 1.8 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    for s, (ax, stage) in enumerate(zip(axes, architecture.stages)):
        # Tensor 0 is the stage's input and tensor p + 1 the output of layer p.
        points = [(1.6 * p, 0.0) for p in range(len(stage) + 1)]
        names = ["stem" if s == 0 else "reduce", *(layer.op for layer in stage)]
        for p, layer in enumerate(stage):
            _arrow(ax, points[p], points[p + 1])
            for j in layer.skips:
                _arrow(ax, points[j], points[p + 1], rad=-0.5, dashed=True)
        for (x, y), name in zip(points, names):
            ax.text(x, y, name, ha="center", va="center", fontsize=8, bbox=_BOX if name not in ("stem", "reduce")
                    else _INPUT_BOX)
        ax.set_xlim(-0.9, points[-1][0] + 0.9)
        ax.set_ylim(-0.6, 1.2)
        ax.set_title(f"stage {s + 1}: {architecture.filters * 2 ** s} filters", fontsize=9, loc="left")
        ax.axis("off")
    return figure


def _plot_chain(names, title):
    figure = ReportFigure(figsize=(max(4.0, 1.8 * len(names)), 1.5), layout="constrained")
    ax = figure.subplots()
    points = [(1.6 * i, 0.0) for i in range(len(names))]
    for start, end in zip(points, points[1:]):
        _arrow(ax, start, end)
    for (x, y), name in zip(points, names):
        ax.text(x, y, name, ha="center", va="center", fontsize=8, bbox=_BOX)
    ax.set_xlim(-0.9, points[-1][0] + 0.9)
    ax.set_ylim(-0.6, 0.6)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return figure


__all__ = ["RESULT_COLUMNS", "plot_architecture", "plot_search", "results_frame", "summary_text"]
