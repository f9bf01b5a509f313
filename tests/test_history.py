"""Does a History keep its rows, survive a CSV round trip and draw its curves?"""

from __future__ import annotations

import math

import pytest

from labkit.history import History, plot_histories, plot_iterations, smooth


def _history(mious=(0.2, 0.5, 0.4)):
    return History(
        [
            {
                "epoch": i + 1,
                "train_loss": 1.0 / (i + 1),
                "train_miou": m / 2,
                "val_loss": 1.5 - m,
                "pixel_accuracy": 0.5 + m / 2,
                "miou": m,
                "lr": 0.1 * (0.5**i),
                "seconds": 1.0,
                "iou_0": m,
                "iou_1": math.nan,
            }
            for i, m in enumerate(mious)
        ]
    )


def test_csv_round_trip_keeps_every_value(tmp_path):
    """Does from_csv(to_csv(h)) give back the same rows, NaNs included?"""
    h = _history()
    back = History.from_csv(h.to_csv(tmp_path / "h.csv"))
    assert len(back) == 3
    for a, b in zip(h.rows, back.rows):
        assert a.keys() == b.keys()
        for k in a:
            assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k]
    assert isinstance(back.rows[0]["epoch"], int)


def test_best_is_the_highest_miou_and_skips_nan():
    """Is best the row with the highest mIoU, never a NaN row?"""
    assert _history().best["epoch"] == 2
    assert _history((math.nan, 0.1, 0.05)).best["epoch"] == 2


def test_column_names_missing_keys():
    """Does asking for a column that is not there name the columns that are?"""
    h = _history()
    assert h.column("miou") == [0.2, 0.5, 0.4]
    with pytest.raises(KeyError, match="train_loss"):
        h.column("mIoU")


def test_plots_have_their_panels_and_lines():
    """Does plot() give three panels, and plot_histories one line per run in each panel?"""
    assert len(_history().plot().axes) == 3
    fig = plot_histories([_history(), _history((0.1, 0.2, 0.3))], ["a", "b"])
    assert len(fig.axes) == 2
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    with pytest.raises(ValueError, match="one label per history"):
        plot_histories([_history()], ["a", "b"])


def _steps(n=30, lr=0.1):
    return [
        {"step": t, "epoch": 1 + (t - 1) // 10, "loss": 2.0 / t + (t % 3) * 0.1, "lr": lr / t}
        for t in range(1, n + 1)
    ]


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.9, 0.99])
def test_smooth_is_the_weighted_mean_of_the_past(weight):
    """Is each smoothed point the mean of the values so far, weighted by weight**age (the
    closed form of the debiased moving average), and the first point the first value?"""
    values = [r["loss"] for r in _steps()]
    expected = [
        sum(weight ** (t - i) * values[i] for i in range(t + 1))
        / sum(weight ** (t - i) for i in range(t + 1))
        for t in range(len(values))
    ]
    assert smooth(values, weight=weight) == pytest.approx(expected)
    assert smooth(values, weight=weight)[0] == pytest.approx(values[0])
    with pytest.raises(ValueError, match=r"weight in \[0, 1\)"):
        smooth(values, weight=1.0)


def test_iterations_csv_round_trip(tmp_path):
    """Do the per-step rows survive iterations_to_csv and from_csv(iterations=...), with
    step and epoch as ints?"""
    h = _history()
    h.iterations = _steps()
    back = History.from_csv(
        h.to_csv(tmp_path / "h.csv"), iterations=h.iterations_to_csv(tmp_path / "i.csv")
    )
    assert back.iterations == h.iterations
    assert isinstance(back.iterations[0]["step"], int)
    assert History.from_csv(tmp_path / "h.csv").iterations == []


def test_plot_iterations_draws_raw_and_smoothed_loss_and_the_rate():
    """Does plot_iterations draw, per run, the raw and the smoothed loss and the learning
    rate, and name the run that has no per-step record?"""
    a, b = _history(), _history()
    a.iterations, b.iterations = _steps(), _steps(lr=0.2)
    fig = plot_iterations([a, b], ["constant", "cosine"], weight=0.8)
    ax_loss, ax_lr = fig.axes
    assert len(ax_loss.lines) == 4 and len(ax_lr.lines) == 2
    smoothed = ax_loss.lines[0].get_ydata()
    assert list(smoothed) == pytest.approx(smooth([r["loss"] for r in a.iterations], weight=0.8))
    assert list(ax_lr.lines[1].get_ydata()) == pytest.approx([r["lr"] for r in b.iterations])
    with pytest.raises(ValueError, match="'old' has no per-step record"):
        plot_iterations([a, _history()], ["new", "old"])
