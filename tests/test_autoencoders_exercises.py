"""Notebook 02's exercises: the reference answers pass, and the visible checks catch the usual mistakes."""
import pytest


from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read

NB02 = read(SOLUTIONS / "02_autoencoders.ipynb")
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB02)}

PLANTED = {
    "ex-ae-loss": [
        "def reconstruction_loss(x_hat, x):\n    return torch.nn.functional.mse_loss(x_hat, x)",            # mean over pixels too
        "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).pow(2).sum()",                           # sum over the batch
        "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).abs().flatten(1).sum(1).mean()",         # L1, not L2
        "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).pow(2).flatten(1).sum(1)",               # one value per image
    ],
    "ex-standardize": [
        "def standardize(a, b):\n    return (a - a.mean(0)) / (a.std(0) + 1e-6), (b - b.mean(0)) / (b.std(0) + 1e-6)",  # test statistics leak
        "def standardize(a, b):\n    return (a - a.mean(0)) / a.std(0), (b - a.mean(0)) / a.std(0)",                    # no epsilon: NaN
        "def standardize(a, b):\n    s = a.std(0, unbiased=False) + 1e-6\n    return (a - a.mean(0)) / s, (b - a.mean(0)) / s",  # biased std
        "def standardize(a, b):\n    return (a - a.mean()) / (a.std() + 1e-6), (b - a.mean()) / (a.std() + 1e-6)",      # one mean for all features
    ],
}


def test_every_exercise_has_planted_bugs():
    assert set(EXERCISES) == set(PLANTED) and len(EXERCISES) >= 2


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in PLANTED.items() for a in answers])
def test_visible_checks_catch_planted_bugs(grade_id, answer):
    assert_check_catches(NB02, answer, EXERCISES[grade_id][1])
