"""labkit.errors: which errors are the user's to fix, and the cause an error message names."""

import importlib
import pkgutil

import pytest

import labkit
from labkit.errors import LabkitError, MissingPackageError, UsageError, innermost


def _labkit_errors() -> dict[str, type]:
    """Every exception class a labkit module defines (private ones aside), by qualified name."""
    found = {}
    for info in pkgutil.walk_packages(labkit.__path__, "labkit."):
        if info.name.endswith(".__main__"):  # `python -m labkit`: runs the command
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not value.__name__.startswith("_")
            ):
                found[f"{info.name}.{value.__name__}"] = value
    return found


# Errors that are not the user's to fix: a grader's or the machine's failure, the referee's
# wire protocol, a check a student's answer failed.
NOT_THE_USERS = {
    "labkit.grading.course.NbgraderError",
    "labkit.grading.judge.JudgeError",
    "labkit.grading.remote.RemoteError",
    "labkit.grading.wire.WireError",
    "labkit.checks.ReferenceUsedError",
}


def test_every_error_labkit_defines_is_a_labkit_error_or_listed_as_not_the_users():
    """Is each exception class in labkit a LabkitError (the command answers it in one line),
    save the few that report a failure of the grader or of a student's answer?"""
    found = _labkit_errors()
    assert {"labkit.config.ConfigError", "labkit.data._paths.DatasetNotFoundError"} <= set(found)
    assert NOT_THE_USERS <= set(found), NOT_THE_USERS - set(found)
    stray = [
        name
        for name, cls in found.items()
        if not issubclass(cls, LabkitError) and name not in NOT_THE_USERS
    ]
    assert not stray, f"neither LabkitError nor listed as not the user's: {stray}"


@pytest.mark.parametrize(
    "name,builtin",
    [
        ("labkit.config.ConfigError", ValueError),
        ("labkit.data.DatasetNotFoundError", FileNotFoundError),
        ("labkit.models.PretrainedWeightsNotFoundError", FileNotFoundError),
        ("labkit.devices.GPUOutOfMemoryError", RuntimeError),
        ("labkit.checkpoint.CheckpointError", ValueError),
        ("labkit.experiment.RunExistsError", ValueError),
        ("labkit.grading.CourseError", ValueError),
        ("labkit.grading.sandbox.SandboxError", RuntimeError),
    ],
)
def test_each_error_keeps_the_builtin_python_code_catches(name, builtin):
    """Does ``except ValueError`` (or the error's own builtin) still catch it?"""
    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr)
    assert issubclass(cls, LabkitError) and issubclass(cls, builtin)
    assert issubclass(UsageError, ValueError) and issubclass(
        MissingPackageError, ModuleNotFoundError
    )


def test_innermost_follows_causes_and_contexts_to_the_bottom():
    """Is the innermost exception the one at the bottom of ``raise ... from`` and of an
    exception raised while handling another, and does a cycle end the walk?"""
    try:
        try:
            try:
                raise OSError("disk full")
            except OSError as exc:
                raise RuntimeError("save failed") from exc
        except RuntimeError:
            raise ValueError("checkpoint not written")  # noqa: B904 - the context is the point
    except ValueError as exc:
        assert str(innermost(exc)) == "disk full" and type(innermost(exc)) is OSError
    alone = KeyError("k")
    assert innermost(alone) is alone
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert innermost(a) is b
