"""Notebook 02's exercises: the visible checks catch the usual mistakes, and through the real grader
(`lecture13.grading.grade`, one run for the module, :func:`grading_cases.grade_planted`) realistic wrong answers
score 0 and a correct answer written differently scores full.

Planted training steps call ``autoencoders.reconstruction_loss`` (not the student's, which the grader includes
from the earlier answer), so that one exercise's planted bug cannot leak into another's verdict. The planted
linear probes are full answers: R softmax regressions fitted at once by L-BFGS, with one line changed.
"""
import pytest

from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise

import grading_cases as gc

PATH = SOLUTIONS / "02_autoencoders.ipynb"
NB02 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB02)}

_STEP = "def train_step(model, optimizer, x):\n"
_LOSS = "    loss = autoencoders.reconstruction_loss(model(x), x)\n"
_PCA = "def linear_autoencoder(x, latent_dim):\n    flat = x.flatten(1).double()\n    m = flat.mean(0)\n"
_PROBES = "def linear_probes(train_features, train_labels, test_features, test_labels, weight_decay=1e-2):\n"


def _probes(fit_x="train_features", fit_y="train_labels", bias="True",
            loss="F.cross_entropy(logits.flatten(0, 1), fit_y.flatten(), reduction='sum') / fit_x.shape[1]",
            penalty="0.5 * weight_decay * weight.pow(2).sum()", pick="argmax", eval_x="test_features",
            eval_y="test_labels", ret="(predicted == eval_y).float().mean(dim=-1)") -> str:
    """R probes fitted together by L-BFGS, with one piece changed."""
    return _PROBES + f"""    F = torch.nn.functional
    fit_x, fit_y = {fit_x}, {fit_y}
    runs, n, width = train_features.shape
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    weight = torch.zeros(runs, width, classes, requires_grad=True)
    bias = torch.zeros(runs, 1, classes, requires_grad={bias})
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        logits = fit_x @ weight + bias
        loss = {loss} + {penalty}
        loss.backward()
        return loss

    optimizer.step(objective)
    eval_y = {eval_y}
    with torch.no_grad():
        predicted = ({eval_x} @ weight + bias).{pick}(dim=-1)
    return {ret}
"""


# grade_id -> [(what is wrong, answer source)]: each must score 0.
WRONG = {
    "ex-ae-loss": [
        ("the mean over the pixels too (F.mse_loss)",
         "def reconstruction_loss(x_hat, x):\n    return torch.nn.functional.mse_loss(x_hat, x)"),
        ("the sum over the batch", "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).pow(2).sum()"),
        ("L1, not L2", "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).abs().flatten(1).sum(1).mean()"),
        ("one value per image", "def reconstruction_loss(x_hat, x):\n    return (x - x_hat).pow(2).flatten(1).sum(1)"),
    ],
    "ex-train-step": [
        ("no zero_grad", _STEP + _LOSS + "    loss.backward()\n    optimizer.step()\n    return loss.item()"),
        ("no optimizer.step()", _STEP + "    optimizer.zero_grad()\n" + _LOSS + "    loss.backward()\n    return loss.item()"),
        ("F.mse_loss, not the reconstruction loss",
         _STEP + "    optimizer.zero_grad()\n    loss = torch.nn.functional.mse_loss(model(x), x)\n"
         "    loss.backward()\n    optimizer.step()\n    return loss.item()"),
        ("the loss after the step returned",
         _STEP + "    optimizer.zero_grad()\n" + _LOSS + "    loss.backward()\n    optimizer.step()\n"
         "    with torch.no_grad():\n        return autoencoders.reconstruction_loss(model(x), x).item()"),
        ("zero_grad between backward and step",
         _STEP + _LOSS + "    loss.backward()\n    optimizer.zero_grad()\n    optimizer.step()\n    return loss.item()"),
    ],
    "ex-pca": [
        ("the SVD of the uncentred images",
         _PCA + "    _, _, vh = torch.linalg.svd(flat, full_matrices=False)\n    return m, vh[:latent_dim].T"),
        ("the directions of smallest variance first (eigh's order)",
         _PCA + "    _, vecs = torch.linalg.eigh((flat - m).T @ (flat - m))\n    return m, vecs[:, :latent_dim]"),
        ("the columns of Vh instead of its rows",
         _PCA + "    _, _, vh = torch.linalg.svd(flat - m, full_matrices=False)\n    return m, vh[:, :latent_dim]"),
        ("the directions scaled by the singular values",
         _PCA + "    _, s, vh = torch.linalg.svd(flat - m, full_matrices=False)\n"
         "    return m, (vh[:latent_dim] * s[:latent_dim, None]).T"),
        ("no mean for the decoder",
         _PCA + "    _, _, vh = torch.linalg.svd(flat - m, full_matrices=False)\n"
         "    return torch.zeros_like(m), vh[:latent_dim].T"),
    ],
    "ex-standardize": [
        ("the test set standardized with its own statistics",
         "def standardize(a, b):\n    return (a - a.mean(0)) / (a.std(0) + 1e-6), (b - b.mean(0)) / (b.std(0) + 1e-6)"),
        ("no epsilon: NaN for a constant feature",
         "def standardize(a, b):\n    return (a - a.mean(0)) / a.std(0), (b - a.mean(0)) / a.std(0)"),
        ("the biased std",
         "def standardize(a, b):\n    s = a.std(0, unbiased=False) + 1e-6\n    return (a - a.mean(0)) / s, (b - a.mean(0)) / s"),
        ("one mean and std for all the features",
         "def standardize(a, b):\n    return (a - a.mean()) / (a.std() + 1e-6), (b - a.mean()) / (a.std() + 1e-6)"),
    ],
    "ex-linear-probes": [
        ("each probe fitted on the test features",
         _probes(fit_x="test_features.expand(len(train_features), -1, -1)", fit_y="test_labels.expand(len(train_labels), -1)")),
        ("no bias", _probes(bias="False")),
        ("argmin instead of argmax", _probes(pick="argmin")),
        ("the training accuracy returned", _probes(eval_x="train_features", eval_y="train_labels")),
        ("the cross-entropy averaged over all R·n images: each probe's penalty R times too strong",
         _probes(loss="F.cross_entropy(logits.flatten(0, 1), fit_y.flatten())")),
        ("one probe fitted to all the draws together",
         _probes(fit_x="train_features.reshape(1, -1, train_features.shape[-1]).expand(len(train_features), -1, -1)",
                 fit_y="train_labels.reshape(1, -1).expand(len(train_labels), -1)")),
    ],
}

# More wrong linear probes, caught by the visible check (and failing the hidden tests): not sent to the grader,
# to keep its run short.
MORE_WRONG_PROBES = [
    ("the weight_decay argument ignored", _probes(penalty="0.0")),
    ("the labels indexed as a column (log_softmax[..., labels]): not one target per image",
     _probes(loss="-torch.log_softmax(logits, dim=-1)[:, :, fit_y[0]].mean()")),
    ("a percentage", _probes(ret="100 * (predicted == eval_y).float().mean(dim=-1)")),
    ("the penalty not halved", _probes(penalty="weight_decay * weight.pow(2).sum()")),
]

PROBES_DIFFERENT = (
    'def linear_probes(train_features, train_labels, test_features, test_labels, weight_decay=1e-2):\n'
    '    accuracies = []\n'
    '    classes = int(max(train_labels.max(), test_labels.max())) + 1\n'
    '    for features, labels in zip(train_features, train_labels):          # one draw at a time\n'
    '        targets = torch.nn.functional.one_hot(labels, classes).double()\n'
    '        x = features.double()\n'
    '        W = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)\n'
    '        b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)\n'
    '        opt = torch.optim.LBFGS([W, b], max_iter=500, line_search_fn="strong_wolfe")\n'
    '\n'
    '        def closure():\n'
    '            opt.zero_grad()\n'
    '            log_p = torch.log_softmax(x @ W + b, dim=1)\n'
    '            loss = -(targets * log_p).sum(dim=1).mean() + weight_decay / 2 * (W ** 2).sum()\n'
    '            loss.backward()\n'
    '            return loss\n'
    '\n'
    '        opt.step(closure)\n'
    '        with torch.no_grad():\n'
    '            right = (test_features.double() @ W + b).argmax(dim=1) == test_labels\n'
    '        accuracies.append(right.double().mean())\n'
    '    return torch.stack(accuracies)\n'
)

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
    # one draw at a time, one-hot targets and a hand-written cross-entropy, in float64
    "ex-linear-probes": PROBES_DIFFERENT,
}


def test_every_exercise_has_wrong_answers_and_a_different_correct_answer():
    assert set(EXERCISES) == set(WRONG) == set(DIFFERENT) and len(EXERCISES) == 5
    assert all(len(answers) >= 3 for answers in WRONG.values())
    assert "ex-linear-probes" in gc.WRONG


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in WRONG.items() for _, a in answers]
                         + [("ex-linear-probes", a) for _, a in MORE_WRONG_PROBES],
                         ids=[f"{g}: {w}" for g, answers in WRONG.items() for w, _ in answers]
                         + [f"ex-linear-probes: {w}" for w, _ in MORE_WRONG_PROBES])
def test_visible_checks_catch_the_wrong_answers(grade_id, answer):
    assert_check_catches(NB02, answer, EXERCISES[grade_id][1])


@pytest.mark.parametrize("grade_id", list(DIFFERENT))
def test_different_correct_answers_pass_the_visible_and_hidden_checks(grade_id):
    out = run_exercise(NB02, DIFFERENT["ex-ae-loss"] + "\n" + DIFFERENT[grade_id], EXERCISES[grade_id][1], grading=True)
    assert "✅" in out, out


@pytest.mark.parametrize("what,needle", [
    ("each probe fitted on the test features", "fitted on the test features"),
    ("no bias", "without a bias"),
    ("argmin instead of argmax", "*lowest* logit"),
    ("the training accuracy returned", "accuracy on the training features"),
    ("the cross-entropy averaged over all R·n images: each probe's penalty R times too strong", "3 times too strong"),
    ("one probe fitted to all the draws together", "one probe fitted to all the draws together"),
])
def test_the_probe_check_names_the_mistake_with_input_expected_and_got(what, needle):
    answer = dict(WRONG["ex-linear-probes"])[what]
    visible = EXERCISES["ex-linear-probes"][1].split("### BEGIN HIDDEN TESTS")[0]
    out = run_exercise(NB02, answer, visible, grading=False)
    assert needle in out and "expected" in out and "returned" in out and "train_features (shape" in out, out


def test_the_probe_stub_says_what_not_how():
    stub = EXERCISES["ex-linear-probes"][0].split("### BEGIN SOLUTION")[0]
    assert "(R, n, f)" in stub and "shape (R,)" in stub and "weight_decay / 2" in stub and "not penalised" in stub
    assert "LBFGS" not in stub and "argmax" not in stub and "cross_entropy(" not in stub


# ----------------------------------------------------------------------------- through the grader
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: wrong-i holds the i-th wrong answer of every exercise (the solutions elsewhere),
    'different' every correct-but-different answer, 'correct' the published solutions, 'untouched' the release."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb02"), PATH, WRONG, DIFFERENT)


def test_the_grader_gives_wrong_answers_zero_and_a_different_correct_answer_full_marks(graded):
    grades, expected = graded
    gc.assert_points(grades, expected)
    assert sum(r.points for r in grades["correct.ipynb"].results) == sum(gc.points(PATH, gid) for gid in EXERCISES) == 14
    assert all(r.reason == "not implemented (NotImplementedError)" for r in grades["untouched.ipynb"].results)
