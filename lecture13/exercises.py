"""Checks for the exercises: immediate, specific feedback, and a safe way to carry on.

Right after each exercise a notebook calls::

    fit_theta = check(fit_bernoulli, reference=factorized.fit_bernoulli,
                      cases=[Case(x_small), Case(x_small, alpha=0.0)])

and :func:`check` prints one of

* ``✅ fit_bernoulli: passes the 2 visible checks (grading runs more, hidden tests included).``
* ``❌ fit_bernoulli: check 2 failed: fit_bernoulli(x=tensor(shape=(5, 4)), alpha=0.0)`` then
  what was expected and what came back (or the exception), and
* ``⏭ fit_bernoulli is not implemented yet (NotImplementedError).``

When the answer is missing or wrong the notebook carries on with the reference, and says so
in one line. It returns the function the rest of the notebook should use; the student's own
function keeps its name, untouched, and that is what grading runs.

With ``LECTURE13_GRADING=1`` in the environment (set by the grader) :func:`check` raises
instead of falling back, so a wrong answer can never earn points through the fallback.

A check is either a :class:`Case` (call both functions with the same arguments, compare
outputs with a tolerance) or a *property*: a callable that takes the student's function and
raises ``AssertionError`` with a message (for answers with no single right output, e.g. a
training step that must not change the discriminator when it updates the generator).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

GRADING_ENV = "LECTURE13_GRADING"


class ExerciseFailed(AssertionError):
    """Raised by :func:`assert_passes` (and by :func:`check` while grading)."""


@dataclass
class Case:
    """One call to compare: ``Case(*args, label=..., **kwargs)``."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""

    def __init__(self, *args: Any, label: str = "", **kwargs: Any):
        self.args, self.kwargs, self.label = args, kwargs, label


def describe(value: Any, limit: int = 6) -> str:
    """A short, readable description of an argument or result for feedback messages."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= limit:
            return f"tensor({[round(v, 4) if isinstance(v, float) else v for v in value.flatten().tolist()]}" \
                   f"{', shape=' + str(tuple(value.shape)) if value.dim() > 1 else ''})"
        return f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).replace('torch.', '')})"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v, limit) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(ch in text for ch in ".eni") else text + ".0"  # 3.0 stays a float: "3.0"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _call_text(name: str, case: Case) -> str:
    parts = [describe(a) for a in case.args] + [f"{k}={describe(v)}" for k, v in case.kwargs.items()]
    return f"{name}({', '.join(parts)})"


def compare(expected: Any, got: Any, atol: float, rtol: float, path: str = "result") -> str | None:
    """None when ``got`` matches ``expected``; else a message saying where and how they differ."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{path} should be a tensor, got {type(got).__name__}"
        if got.shape != expected.shape:
            return f"{path} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        if expected.is_floating_point() and not got.is_floating_point():
            return f"{path} has dtype {got.dtype}, expected a floating-point tensor"
        e, g = expected.detach().double(), got.detach().double()
        if torch.isnan(g).any() and not torch.isnan(e).any():
            return f"{path} contains NaN"
        if not torch.allclose(g, e, atol=atol, rtol=rtol, equal_nan=True):
            diff = (g - e).abs()
            where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.dim() else ()
            at = f" at index {where}" if where else ""
            return (f"{path} is off by up to {diff.max().item():.4g}{at}: expected {e[where].item():.6g}, "
                    f"got {g[where].item():.6g}" + ("" if not where else f"\n     expected {describe(expected)}, got {describe(got)}"))
        return None
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{path} should be a {type(expected).__name__} of {len(expected)} items, got {describe(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, atol, rtol, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"{path} should be a dict with keys {sorted(expected)}, got {describe(got)}"
        for k in expected:
            problem = compare(expected[k], got[k], atol, rtol, f"{path}[{k!r}]")
            if problem:
                return problem
        return None
    if isinstance(expected, float) or isinstance(got, float):
        try:
            g = float(got)
        except (TypeError, ValueError):
            return f"{path} should be a number, got {describe(got)}"
        if abs(g - float(expected)) > atol + rtol * abs(float(expected)):
            return f"{path}: expected {float(expected):.6g}, got {g:.6g}"
        return None
    if expected != got:
        return f"{path}: expected {describe(expected)}, got {describe(got)}"
    return None


def run_checks(student_fn: Callable, reference: Callable | None = None, cases: Sequence[Case] = (),
               properties: Sequence[Callable[[Callable], None]] = (), *, name: str | None = None,
               atol: float = 1e-5, rtol: float = 1e-4) -> tuple[int, list[str]]:
    """Run every check; return ``(number of checks, messages for those that failed)``.
    A ``NotImplementedError`` stops at once with a single message."""
    name = name or getattr(student_fn, "__name__", "answer")
    failures: list[str] = []
    checks = list(cases) + list(properties)
    for i, item in enumerate(checks, 1):
        label = f"check {i}" + (f" ({item.label})" if isinstance(item, Case) and item.label else "")
        try:
            if isinstance(item, Case):
                if reference is None:
                    raise ValueError("a Case needs a reference to compare with")
                # Each side gets its own copy, so an answer that modifies its input in place
                # cannot change what the reference sees (or the other way round).
                expected = reference(*copy.deepcopy(item.args), **copy.deepcopy(item.kwargs))
                got = student_fn(*copy.deepcopy(item.args), **copy.deepcopy(item.kwargs))
                problem = compare(expected, got, atol, rtol)
                if problem:
                    failures.append(f"{label} failed: {_call_text(name, item)}\n     {problem}")
            else:
                item(student_fn)
        except NotImplementedError:
            return len(checks), [f"{name} is not implemented yet (NotImplementedError)"]
        except AssertionError as err:
            failures.append(f"{label} failed: {err}")
        except Exception as err:  # the student's code raised: say which input and what
            call = _call_text(name, item) if isinstance(item, Case) else getattr(item, "__name__", "property")
            failures.append(f"{label} raised {type(err).__name__}: {err}\n     while running {call}")
    return len(checks), failures


def check(student_fn: Callable, reference: Callable, cases: Sequence[Case] = (),
          properties: Sequence[Callable[[Callable], None]] = (), *, name: str | None = None,
          atol: float = 1e-5, rtol: float = 1e-4, fallback_name: str | None = None) -> Callable:
    """Check an exercise, print the verdict, and return the function to use from here on:
    the student's when it passes, else ``reference`` (saying so)."""
    name = name or getattr(student_fn, "__name__", "answer")
    total, failures = run_checks(student_fn, reference, cases, properties, name=name, atol=atol, rtol=rtol)
    if not failures:
        print(f"✅ {name}: passes " + (f"the {total} visible checks" if total != 1 else "the visible check")
              + " (grading runs more, hidden tests included).")  # a visible pass promises no points
        return student_fn
    if os.environ.get(GRADING_ENV) == "1":
        raise ExerciseFailed("\n".join(failures))
    if failures[0].endswith("(NotImplementedError)"):
        print(f"⏭  {failures[0]}.")
    else:
        print(f"❌ {name}: {len(failures)} of {total} checks failed.")
        for message in failures[:3]:
            print(f"   • {message}")
        if len(failures) > 3:
            print(f"   … and {len(failures) - 3} more.")
    where = fallback_name or f"{reference.__module__}.{reference.__qualname__}"
    print(f"   The rest of this notebook uses the reference implementation ({where}); your {name} is kept for grading.")
    return reference


def assert_passes(student_fn: Callable, reference: Callable | None = None, cases: Sequence[Case] = (),
                  properties: Sequence[Callable[[Callable], None]] = (), **kwargs: Any) -> None:
    """For hidden tests: raise :class:`ExerciseFailed` listing every failed check."""
    _, failures = run_checks(student_fn, reference, cases, properties, **kwargs)
    if failures:
        raise ExerciseFailed("\n".join(failures))
