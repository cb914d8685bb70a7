"""What a user sees: progress while fitting, the results table, the summary and the figures."""

import os

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from automl_kit import ImageClassifier
from automl_kit.blocks import MacroSearchSpace, MicroSearchSpace
from automl_kit.blocks.architecture import DenseArchitecture
from automl_kit.report import RESULT_COLUMNS, plot_architecture, plot_search, results_frame
from automl_kit.tuner import Trial
from tests.conftest import QUICK

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def random_fit(small_digits):
    """Two trials of random search, fitted with verbose=0."""
    x, y = small_digits
    return ImageClassifier(max_trials=2, seed=0, **QUICK).fit(x, y, epochs=1, verbose=0)


def test_verbose_0_prints_nothing(fitted_digits_run, small_digits, capsys):
    """The default ENAS search (in conftest) and random search print nothing at verbose=0."""
    _, out, err = fitted_digits_run
    assert out == "" and err == ""
    x, y = small_digits
    ImageClassifier(max_trials=1, seed=0, **QUICK).fit(x, y, epochs=1, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_1_shows_a_bar_and_one_line_per_trial(small_digits, capsys):
    x, y = small_digits
    ImageClassifier(max_trials=2, seed=0, **QUICK).fit(x, y, epochs=1, verbose=1)
    captured = capsys.readouterr()
    assert captured.out.count("Trial 000") == 2  # one line per finished trial
    assert "best" in captured.out and "params" in captured.out
    assert "Trials" in captured.err and "2/2" in captured.err  # the tqdm bar, on stderr
    assert "Final training" in captured.err


def test_search_results_frame(random_fit, fitted_digits):
    for clf in (random_fit, fitted_digits):
        frame = clf.search_results_
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.columns) == RESULT_COLUMNS
        assert len(frame) == len(clf.trials_)
        assert list(frame["id"]) == [t.trial_id for t in clf.trials_]
        assert (frame["status"] == "completed").all()
        assert frame["params"].dtype == "Int64" and (frame["params"] > 0).all()
        assert frame["score"].dtype == np.float64 and frame["score"].between(0, 1).all()
        assert frame["seconds"].dtype == np.float64 and (frame["seconds"] > 0).all()
        assert frame["failure_reason"].isna().all()
    assert random_fit.search_results_["shared_score"].isna().all()  # trained from scratch only
    assert fitted_digits.search_results_["shared_score"].between(0, 1).all()  # ENAS candidates


def test_results_frame_records_failures():
    space = MacroSearchSpace((8, 8, 1))
    trials = [
        Trial("0000", space.smallest(), "completed", score=0.9, best_epoch=2, epochs_run=3, params=1000, seconds=2.5),
        Trial("0001", space.smallest(), "failed", failure_reason="TrainingFailed: diverged", seconds=0.5),
    ]
    frame = results_frame(trials)
    assert frame.loc[1, "status"] == "failed" and frame.loc[1, "failure_reason"] == "TrainingFailed: diverged"
    assert np.isnan(frame.loc[1, "score"]) and pd.isna(frame.loc[1, "params"])
    assert frame.loc[0, "epochs"] == 3


def test_summary_names_best_architecture_score_and_times(fitted_digits, capsys):
    fitted_digits.summary()
    out = capsys.readouterr().out
    assert str(fitted_digits.best_architecture_) in out
    assert f"{fitted_digits.best_score_:.4f}" in out
    assert f"{fitted_digits.model_.count_params():,} parameters" in out
    assert "search" in out and "final training" in out
    assert fitted_digits.search_seconds_ > 0 and fitted_digits.final_training_seconds_ > 0


def test_plots_return_figures(random_fit, fitted_digits, tmp_path):
    for clf in (random_fit, fitted_digits):
        for figure in (clf.plot_search(), clf.plot_architecture()):
            assert isinstance(figure, Figure)
            path = tmp_path / "figure.png"
            figure.savefig(path)
            assert os.path.getsize(path) > 1000
    assert len(fitted_digits.plot_search().axes) == 3  # trials, and reward with entropy on a twin axis
    assert len(random_fit.plot_search().axes) == 1


def test_plot_architecture_draws_every_kind():
    rng = np.random.default_rng(0)
    cell = MicroSearchSpace((28, 28, 1)).sample(rng)
    figure = plot_architecture(cell)
    texts = {t.get_text() for ax in figure.axes for t in ax.texts}
    assert {node.ops[0] for node in cell.normal} <= texts  # every edge is labelled with its op
    macro = MacroSearchSpace((32, 32, 3)).sample(rng)
    assert len(plot_architecture(macro).axes) == len(macro.stages)
    assert isinstance(plot_architecture(DenseArchitecture(units=(64, 32))), Figure)
    with pytest.raises(TypeError, match="Cannot draw"):
        plot_architecture("conv3x3")


def test_plot_search_with_a_failed_trial_and_supernet_history():
    space = MacroSearchSpace((8, 8, 1))
    trials = [Trial("0000", space.smallest(), "completed", score=0.8, shared_score=0.5),
              Trial("0001", space.smallest(), "failed", failure_reason="x")]
    history = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5, "mean_reward": 0.4, "mean_entropy": 30.0}]
    figure = plot_search(trials, "val_accuracy", history)
    labels = [line.get_label() for line in figure.axes[0].lines]
    assert "failed" in labels and "best so far" in labels and "shared-weight score" in labels


def test_tensorboard_callback_logs_trials_final_and_search(small_digits, tmp_path):
    keras = pytest.importorskip("keras")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    x, y = small_digits
    log_dir = tmp_path / "logs"
    ImageClassifier(max_trials=2, seed=0, **QUICK).fit(
        x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.TensorBoard(str(log_dir))])
    assert {"trial_0000", "trial_0001", "final", "search"} <= set(os.listdir(log_dir))
    assert os.listdir(log_dir / "trial_0001" / "validation")
    accumulator = event_accumulator.EventAccumulator(str(log_dir / "search")).Reload()
    tags = accumulator.Tags()["tensors"]
    assert {"trials/score", "trials/best_score"} <= set(tags)
    assert [event.step for event in accumulator.Tensors("trials/best_score")] == [1, 2]


def test_unfitted_report_raises():
    from sklearn.exceptions import NotFittedError

    clf = ImageClassifier()
    for call in (lambda: clf.search_results_, clf.summary, clf.plot_search, clf.plot_architecture):
        with pytest.raises(NotFittedError):
            call()


def test_the_ranking_of_shared_weight_against_from_scratch_scores_is_measured_and_shown():
    from automl_kit import report

    space = MacroSearchSpace((8, 8))
    agree = [Trial(f"{i:04d}", space.smallest(), "completed", score=s, shared_score=s / 2, params=1000)
             for i, s in enumerate([0.9, 0.8, 0.7, 0.6])]
    rank = report.ranking(agree)
    assert rank == {"kendall_tau": 1.0, "spearman": 1.0, "count": 4}
    text = report.summary_text(agree[0], "val_accuracy", 1000, 1.0, 1.0, agree, [])
    assert "Kendall tau 1.00" in text and "ranked them poorly" not in text
    reversed_ = [Trial(t.trial_id, t.architecture, "completed", score=t.score, shared_score=-t.score, params=1000)
                 for t in agree]
    assert report.ranking(reversed_)["kendall_tau"] == -1.0
    assert "ranked them poorly" in report.summary_text(reversed_[0], "val_accuracy", 1000, 1.0, 1.0, reversed_, [])
    # Without shared scores (random search, or the plan's from-scratch path) there is nothing to rank.
    assert report.ranking([Trial("0000", space.smallest(), "completed", score=0.9)] * 3) is None
    assert "Kendall" in report.plot_search(agree, "val_accuracy").axes[0].get_title()
