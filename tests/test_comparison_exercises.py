"""Notebook 06's second exercise, `decide`, through the real grader: realistic misreadings of a
likelihood table score 0, a correct answer written differently scores full marks, and the visible
check says which pair of reports it got wrong."""
import pytest

import grading_cases as gc
from lecture13 import comparison
from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise

PATH = SOLUTIONS / "06_comparing_generative_models.ipynb"
NB06 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB06)}
HEAD = "def decide(a, b):\n"

WRONG = [
    ("every number read as exact: the lower one wins",
     HEAD + "    if a['test set'] != b['test set'] or a['nats'] == b['nats']:\n        return None\n"
            "    return a['model'] if a['nats'] < b['nats'] else b['model']\n"),
    ("the bound's logic reversed: an exact value below a bound is taken to beat it",
     HEAD + "    if a['test set'] != b['test set']:\n        return None\n"
            "    if a['kind'] == b['kind']:\n"
            "        return None if a['kind'] != 'exact' or a['nats'] == b['nats'] else min(a, b, key=lambda r: r['nats'])['model']\n"
            "    exact, bound = (a, b) if a['kind'] == 'exact' else (b, a)\n"
            "    return exact['model'] if exact['nats'] < bound['nats'] else None\n"),
    ("numbers on different test sets compared anyway",
     HEAD + "    if a['kind'] == b['kind'] == 'exact':\n"
            "        return None if a['nats'] == b['nats'] else min(a, b, key=lambda r: r['nats'])['model']\n"
            "    if a['kind'] == b['kind']:\n        return None\n"
            "    exact, bound = (a, b) if a['kind'] == 'exact' else (b, a)\n"
            "    return bound['model'] if bound['nats'] < exact['nats'] else None\n"),
    ("two upper bounds ranked by their values",
     HEAD + "    if a['test set'] != b['test set']:\n        return None\n"
            "    if a['kind'] != b['kind']:\n"
            "        exact, bound = (a, b) if a['kind'] == 'exact' else (b, a)\n"
            "        return bound['model'] if bound['nats'] < exact['nats'] else None\n"
            "    return None if a['nats'] == b['nats'] else min(a, b, key=lambda r: r['nats'])['model']\n"),
]

# The same logic written another way: what a bound certifies, as an interval for each true NLL.
DIFFERENT = HEAD + """    if a["test set"] != b["test set"]:
        return None
    low = {r["model"]: (r["nats"] if r["kind"] == "exact" else float("-inf")) for r in (a, b)}
    high = {r["model"]: r["nats"] for r in (a, b)}
    if high[a["model"]] < low[b["model"]]:
        return a["model"]
    if high[b["model"]] < low[a["model"]]:
        return b["model"]
    return None
"""


def test_the_reference_applies_the_logic_of_a_bound():
    exact = lambda m, n, t="ours": {"model": m, "nats": n, "kind": "exact", "test set": t}  # noqa: E731
    bound = lambda m, n, t="ours": {"model": m, "nats": n, "kind": "upper bound", "test set": t}  # noqa: E731
    assert comparison.decide(exact("A", 100), exact("B", 90)) == "B"
    assert comparison.decide(exact("A", 100), bound("V", 95)) == "V"          # certainly below 100
    assert comparison.decide(exact("A", 90), bound("V", 95)) is None          # V may be anywhere below 95
    assert comparison.decide(bound("V", 90), bound("W", 95)) is None
    assert comparison.decide(exact("A", 100), exact("B", 90, "other")) is None
    with pytest.raises(ValueError, match="kind"):
        comparison.decide({**exact("A", 1), "kind": "lower bound"}, exact("B", 2))


def test_every_wrong_answer_is_realistic_and_caught_by_the_visible_check():
    assert "ex-decide" in EXERCISES and "ex-decide" in gc.WRONG and len(WRONG) >= 3
    for _, answer in WRONG:
        assert_check_catches(NB06, answer, EXERCISES["ex-decide"][1])


def test_a_different_right_answer_passes_the_visible_and_hidden_checks():
    assert "✅" in run_exercise(NB06, DIFFERENT, EXERCISES["ex-decide"][1], grading=True)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: each misreading in its own submission, the different right answer, the
    solution and the untouched release."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb06"), PATH, {"ex-decide": WRONG}, {"ex-decide": DIFFERENT})


def test_the_grader_gives_each_misreading_zero_and_the_right_answers_full_marks(graded):
    gc.assert_points(*graded)
