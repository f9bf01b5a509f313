"""Is every lesson of labkit.lesson_catalog a fair comparison anyone can repeat?"""

from __future__ import annotations

import pytest

from labkit.config import apply_overrides, available_presets, load_preset
from labkit.lesson_catalog import LESSONS, Lesson

# What one comparison may change: one training setting, or the network (a model and its
# options together, as U-Net against the FCN).
ONE_THING = [{"schedule"}, {"augment"}, {"class_weighting"}, {"lr"}, {"model", "model_options"}]


def _config(arm) -> dict:
    return apply_overrides(load_preset(arm.preset), arm.overrides).to_dict()


def test_every_lesson_names_presets_that_exist():
    """Is every row, and every lab's cpu profile, a preset anyone can train?"""
    names = set(available_presets())
    for lesson in LESSONS:
        assert {lesson.high.preset, lesson.low.preset, lesson.cpu_preset} - {None} <= names
    # every lab's headline lesson can be run live
    assert all(x.cpu_preset for x in LESSONS if x.table == "lesson")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda x: f"{x.lab}: {x.effect}")
def test_each_comparison_changes_one_thing(lesson: Lesson):
    """Do the two rows of a lesson differ in one setting only (the network counting as one),
    and, where only the model's options differ, in one option?"""
    high, low = _config(lesson.high), _config(lesson.low)
    changed = {k for k in high if high[k] != low[k]} - {"name", "description"}
    assert changed and any(changed <= allowed for allowed in ONE_THING), changed
    if changed == {"model_options"}:
        a, b = high["model_options"], low["model_options"]
        assert len({k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}) == 1, (a, b)


def test_rows_of_one_key_are_one_run():
    """Does a run key name the same config wherever the catalogue uses it (a row shared by
    two lessons, such as lab 04's unweighted run, is trained once)?"""
    seen: dict[str, dict] = {}
    for lesson in LESSONS:
        for arm in (lesson.high, lesson.low):
            assert seen.setdefault(arm.key, _config(arm)) == _config(arm), arm.key
    assert len(seen) < 2 * len(LESSONS)  # some rows are shared
