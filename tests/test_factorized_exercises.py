"""Notebook 00's exercises: realistic wrong answers score 0 and a correct answer written differently scores full,
through the real grader (`lecture13.grading.grade`, one run for the module); the visible checks name the mistake.

Every planted answer of an exercise that needs the model's other pieces calls ``factorized``'s (or, in the
correct-but-different submission, the student's own earlier answers, which the grader includes), so that one
exercise's planted bug cannot leak into another's verdict.
"""
import pytest

from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise
from lecture13 import release

import grading_cases as gc

PATH = SOLUTIONS / "00_generative_models.ipynb"
NB00 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB00)}

PLANTED = {
    "ex-fit-bernoulli": [
        "def fit_bernoulli(x, alpha=1.0):\n    return x.mean(dim=0)",                                          # no smoothing
        "def fit_bernoulli(x, alpha=1.0):\n    return (x.sum(0) + alpha) / (x.shape[0] + alpha)",              # alpha counted once
        "def fit_bernoulli(x, alpha=1.0):\n    return (x.mean(0) + alpha) / (1 + 2 * alpha)",                  # pseudo-counts on the mean
        "def fit_bernoulli(x, alpha=1.0):\n    return (x.sum(-1) + alpha) / (x.shape[-1] + 2 * alpha)",        # wrong axis
    ],
    "ex-bernoulli-nll": [
        "def bernoulli_nll(theta, x):\n    lp = x * torch.log(theta) + (1 - x) * torch.log1p(-theta)\n"
        "    return -lp.flatten(1).mean(1)",                                                                   # mean over pixels
        "def bernoulli_nll(theta, x):\n    lp = x * torch.log(theta) + (1 - x) * torch.log1p(-theta)\n"
        "    return lp.flatten(1).sum(1)",                                                                     # no minus sign
        "def bernoulli_nll(theta, x):\n    lp = x * torch.log(theta) + (1 - x) * torch.log1p(-theta)\n"
        "    return -lp.sum()",                                                                                # one number for the batch
        "def bernoulli_nll(theta, x):\n    lp = x * torch.log2(theta) + (1 - x) * torch.log2(1 - theta)\n"
        "    return -lp.flatten(1).sum(1)",                                                                    # bits, not nats
    ],
    "ex-sample-factorized": [
        "def sample_factorized(theta, n, seed):\n    return (theta > 0.5).float().expand(n, *theta.shape).clone()",  # the most likely image
        "def sample_factorized(theta, n, seed):\n    return torch.bernoulli(theta.expand(n, *theta.shape))",        # seed ignored
        "def sample_factorized(theta, n, seed):\n    g = torch.Generator().manual_seed(seed)\n"
        "    return (torch.rand(n, *theta.shape, generator=g) > theta).float()",                               # on with prob 1 - theta
        "def sample_factorized(theta, n, seed):\n    g = torch.Generator().manual_seed(seed)\n"
        "    return torch.bernoulli(theta, generator=g).expand(n, *theta.shape).clone()",                      # one image n times
        "def sample_factorized(theta, n, seed):\n    g = torch.Generator().manual_seed(seed)\n"
        "    return torch.rand(n, *theta.shape, generator=g) < theta",                                         # bool, not float
    ],
    "ex-choose-alpha": [
        "def choose_alpha(x_train, x_val, alphas):\n    nlls = torch.stack([factorized.bernoulli_nll(factorized.fit_bernoulli("
        "x_train, a), x_train).mean() for a in alphas])\n    return alphas[int(nlls.argmin())], nlls",          # by training NLL
        "def choose_alpha(x_train, x_val, alphas):\n    nlls = torch.stack([factorized.bernoulli_nll(factorized.fit_bernoulli("
        "x_train, a), x_val).sum() for a in alphas])\n    return alphas[int(nlls.argmin())], nlls",            # sum over images
        "def choose_alpha(x_train, x_val, alphas):\n    nlls = torch.stack([factorized.bernoulli_nll(factorized.fit_bernoulli("
        "x_train, a), x_val).mean() for a in alphas])\n    return int(nlls.argmin()), nlls",                   # the index
        "def choose_alpha(x_train, x_val, alphas):\n    nlls = torch.stack([factorized.bernoulli_nll(factorized.fit_bernoulli("
        "x_train, a), x_val).mean() for a in alphas])\n    return alphas[int(nlls.argmax())], nlls",           # the highest
        "def choose_alpha(x_train, x_val, alphas):\n    nlls = torch.stack([factorized.bernoulli_nll(factorized.fit_bernoulli("
        "x_val, a), x_val).mean() for a in alphas])\n    return alphas[int(nlls.argmin())], nlls",             # fitted on validation
    ],
}

# Correct, but not the published solution's code.
DIFFERENT = {
    "ex-fit-bernoulli": "def fit_bernoulli(x, alpha=1.0):\n    n = x.shape[0]\n"
                        "    return (x.mean(0) * n + alpha) / (n + 2.0 * alpha)\n",
    "ex-bernoulli-nll": "def bernoulli_nll(theta, x):\n"
                        "    return -torch.distributions.Bernoulli(probs=theta).log_prob(x).flatten(1).sum(1)\n",
    "ex-sample-factorized": "def sample_factorized(theta, n, seed):\n    g = torch.Generator()\n    g.manual_seed(seed)\n"
                            "    u = torch.empty(n, *theta.shape).uniform_(generator=g)\n"
                            "    return torch.where(u < theta, 1.0, 0.0)\n",
    "ex-choose-alpha": "def choose_alpha(x_train, x_val, alphas):\n    scores = []\n    for a in alphas:\n"
                       "        theta = fit_bernoulli(x_train, a)\n"
                       "        scores.append(float(bernoulli_nll(theta, x_val).sum()) / len(x_val))\n"
                       "    best = min(zip(scores, alphas))[1]\n    return best, torch.tensor(scores)\n",
}


def test_every_exercise_has_planted_bugs_and_a_different_correct_answer():
    assert set(EXERCISES) == set(PLANTED) == set(DIFFERENT) and len(EXERCISES) >= 4
    assert all(len(answers) >= 3 for answers in PLANTED.values())


def test_docstrings_say_what_not_the_formula():
    for grade_id in ("ex-fit-bernoulli", "ex-bernoulli-nll"):
        stub = release.student_version(NB00, PATH.name)
        source = next(c.source for c in stub.cells if release.nbgrader(c).get("grade_id") == grade_id)
        docstring = source.split('"""')[1]
        assert not any(part in docstring for part in ("log(", "theta_i", "sum_n", "+ alpha", "2 alpha")), docstring


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in PLANTED.items() for a in answers])
def test_visible_checks_catch_planted_bugs(grade_id, answer):
    assert_check_catches(NB00, answer, EXERCISES[grade_id][1])


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: submission wrong-k holds the k-th planted bug of every exercise (the solutions
    elsewhere), 'different' every correct-but-different answer, 'correct' the published solutions
    (full marks) and 'untouched' the release (zero)."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb00"), PATH, PLANTED, DIFFERENT)


def test_the_grader_gives_planted_bugs_zero_and_a_different_correct_answer_full_marks(graded):
    gc.assert_points(*graded)


def test_different_correct_answers_pass_the_visible_checks():
    for grade_id, answer in DIFFERENT.items():
        earlier = "\n".join(DIFFERENT[g] for g in ("ex-fit-bernoulli", "ex-bernoulli-nll")) + "\n"
        out = run_exercise(NB00, earlier + answer, EXERCISES[grade_id][1], grading=True)
        assert "✅" in out, out
