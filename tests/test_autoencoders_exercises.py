"""Notebook 02's exercises: the visible checks catch the usual mistakes, and through the real grader
(`lecture13.grading.grade`, one run for the module) realistic wrong answers score 0 and a correct answer
written differently scores full.

Planted training steps call ``autoencoders.reconstruction_loss`` (not the student's, which the grader includes
from the earlier answer), so that one exercise's planted bug cannot leak into another's verdict.
"""
import pytest

from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise
from lecture13 import grading, release

import grading_cases as gc

PATH = SOLUTIONS / "02_autoencoders.ipynb"
NB02 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB02)}

_STEP = "def train_step(model, optimizer, x):\n"
_LOSS = "    loss = autoencoders.reconstruction_loss(model(x), x)\n"
_PCA = "def linear_autoencoder(x, latent_dim):\n    flat = x.flatten(1).double()\n    m = flat.mean(0)\n"

PLANTED = {
    "ex-ae-loss": [
        "def reconstruction_loss(x_hat, x):\n    return torch.nn.functional.mse_loss(x_hat, x)",            # mean over pixels too
        "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).pow(2).sum()",                           # sum over the batch
        "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).abs().flatten(1).sum(1).mean()",         # L1, not L2
        "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).pow(2).flatten(1).sum(1)",               # one value per image
    ],
    "ex-train-step": [
        _STEP + _LOSS + "    loss.backward()\n    optimizer.step()\n    return loss.item()",                # no zero_grad
        _STEP + "    optimizer.zero_grad()\n" + _LOSS + "    loss.backward()\n    return loss.item()",        # no step
        _STEP + "    optimizer.zero_grad()\n    loss = torch.nn.functional.mse_loss(model(x), x)\n"
        "    loss.backward()\n    optimizer.step()\n    return loss.item()",                                   # not the reconstruction loss
        _STEP + "    optimizer.zero_grad()\n" + _LOSS + "    loss.backward()\n    optimizer.step()\n"
        "    with torch.no_grad():\n        return autoencoders.reconstruction_loss(model(x), x).item()",     # loss after the step
        _STEP + _LOSS + "    loss.backward()\n    optimizer.zero_grad()\n    optimizer.step()\n"
        "    return loss.item()",                                                                              # zero_grad between backward and step
    ],
    "ex-pca": [
        _PCA + "    _, _, vh = torch.linalg.svd(flat, full_matrices=False)\n    return m, vh[:latent_dim].T",   # not centred
        _PCA + "    _, vecs = torch.linalg.eigh((flat - m).T @ (flat - m))\n    return m, vecs[:, :latent_dim]",  # smallest variance first
        _PCA + "    _, _, vh = torch.linalg.svd(flat - m, full_matrices=False)\n    return m, vh[:, :latent_dim]",  # columns of Vh
        _PCA + "    _, s, vh = torch.linalg.svd(flat - m, full_matrices=False)\n"
        "    return m, (vh[:latent_dim] * s[:latent_dim, None]).T",                                            # scaled by the singular values
        _PCA + "    _, _, vh = torch.linalg.svd(flat - m, full_matrices=False)\n"
        "    return torch.zeros_like(m), vh[:latent_dim].T",                                                   # no mean for the decoder
    ],
    "ex-standardize": [
        "def standardize(a, b):\n    return (a - a.mean(0)) / (a.std(0) + 1e-6), (b - b.mean(0)) / (b.std(0) + 1e-6)",  # test statistics leak
        "def standardize(a, b):\n    return (a - a.mean(0)) / a.std(0), (b - a.mean(0)) / a.std(0)",                    # no epsilon: NaN
        "def standardize(a, b):\n    s = a.std(0, unbiased=False) + 1e-6\n    return (a - a.mean(0)) / s, (b - a.mean(0)) / s",  # biased std
        "def standardize(a, b):\n    return (a - a.mean()) / (a.std() + 1e-6), (b - a.mean()) / (a.std() + 1e-6)",      # one mean for all features
    ],
}

# Correct, but not the published solution's code.
DIFFERENT = {
    "ex-ae-loss": "def reconstruction_loss(x_hat, x):\n    return ((x_hat - x) ** 2).sum() / x.shape[0]\n",
    "ex-train-step": "def train_step(model, optimizer, x):\n    model.zero_grad(set_to_none=False)\n"
                     "    loss = ((model(x) - x) ** 2).flatten(1).sum(1).mean()\n    loss.backward()\n"
                     "    optimizer.step()\n    return float(loss.detach())\n",
    "ex-pca": "def linear_autoencoder(x, latent_dim):\n    c = x.reshape(len(x), -1).double()\n    m = c.mean(0)\n"
              "    c = c - m\n    values, vectors = torch.linalg.eigh(c.T @ c / (len(c) - 1))\n"
              "    order = values.argsort(descending=True)[:latent_dim]\n    return m, vectors[:, order]\n",
    "ex-standardize": "def standardize(train_features, test_features):\n"
                      "    s, m = torch.std_mean(train_features, dim=0, keepdim=True)\n"
                      "    return (train_features - m) / (s + 1e-6), (test_features - m) / (s + 1e-6)\n",
}


def test_every_exercise_has_planted_bugs_and_a_different_correct_answer():
    assert set(EXERCISES) == set(PLANTED) == set(DIFFERENT) and len(EXERCISES) >= 4
    assert all(len(answers) >= 3 for answers in PLANTED.values())


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in PLANTED.items() for a in answers])
def test_visible_checks_catch_planted_bugs(grade_id, answer):
    assert_check_catches(NB02, answer, EXERCISES[grade_id][1])


def test_different_correct_answers_pass_the_visible_checks():
    for grade_id, answer in DIFFERENT.items():
        out = run_exercise(NB02, DIFFERENT["ex-ae-loss"] + "\n" + answer, EXERCISES[grade_id][1], grading=True)
        assert "✅" in out, out


def _points(grade_id):
    return next(float(release.nbgrader(c)["points"]) for c in NB02.cells
                if release.nbgrader(c).get("grade_id") == grade_id + "-test")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: submission k holds the k-th planted bug of every exercise (the solutions elsewhere),
    'different' every correct-but-different answer;
    'correct' the published solutions (full marks) and 'untouched' the release (zero)."""
    folder = tmp_path_factory.mktemp("nb02")
    expected = {}
    full = {gid: _points(gid) for gid in EXERCISES}
    for k in range(max(len(a) for a in PLANTED.values())):
        wrong = {gid: answers[k] for gid, answers in PLANTED.items() if k < len(answers)}
        gc.write(folder, f"wrong-{k}.ipynb", gc.submission(PATH, wrong))
        expected[f"wrong-{k}.ipynb"] = full | {gid: 0.0 for gid in wrong}
    gc.write(folder, "different.ipynb", gc.submission(PATH, DIFFERENT))
    expected["different.ipynb"] = full
    gc.write(folder, "correct.ipynb", gc.submission(PATH))                  # the published solutions
    expected["correct.ipynb"] = full
    gc.write(folder, "untouched.ipynb", gc.submission(PATH, correct=False))  # the release as it ships
    expected["untouched.ipynb"] = {gid: 0.0 for gid in EXERCISES}
    grades = grading.grade([folder], SOLUTIONS, jobs=2, progress=False)
    return {g.student: g for g in grades}, expected


def test_the_grader_gives_planted_bugs_zero_and_a_different_correct_answer_full_marks(graded):
    grades, expected = graded
    assert set(grades) == set(expected)
    for student, want in expected.items():
        g = grades[student]
        got = {r.grade_id: r.points for r in g.results}
        assert got == want, (student, g.reasons())
        for r in g.results:
            if student == "untouched.ipynb":
                assert r.reason == "not implemented (NotImplementedError)", (r.grade_id, r.reason)
            elif r.points == 0:  # a real failure of the test cell, not a grader problem or a reference call
                assert r.reason and not r.reason.startswith(("tampered", "calls the reference", "grader error",
                                                             "not implemented")), (student, r.grade_id, r.reason)
