"""Does a History keep its rows, survive a CSV round trip and draw its curves?"""

from __future__ import annotations

import math

import pytest

from labkit.history import History, plot_histories


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
