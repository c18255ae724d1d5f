"""Notebook 04's exercises through the real grader: realistic wrong answers score 0, correct answers
written differently from the solution score full marks, and the visible checks say what is wrong.

The four bugs that once scored full points on the GAN iteration are among the wrong answers: the
sum or the last of the k discriminator losses returned instead of their mean, no ``opt_g.zero_grad()``
before G's step (stale gradients pile up over iterations), and the ``generator_loss`` argument ignored.
"""
import pytest

import grading_cases as gc
from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise

PATH = SOLUTIONS / "04_generative_adversarial_networks.ipynb"
NB04 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB04)}
ITERATION_HEAD = "def gan_iteration(G, D, opt_d, opt_g, real, k=1, generator_loss=gan.generator_loss_nonsaturating):\n"


def _iteration(d_step: str = "fake = G(torch.randn(len(x), G.z_dim)).detach()",
               g_loss: str = "generator_loss", zero_g: str = "opt_g.zero_grad()",
               loss_d: str = "sum(d_losses) / k") -> str:
    """The solution's iteration with one line changed."""
    return ITERATION_HEAD + f"""    d_losses = []
    for x in real.tensor_split(k):
        {d_step}
        loss_d = gan.discriminator_loss(D(x), D(fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_losses.append(float(loss_d.detach()))
    loss_g = {g_loss}(D(G(torch.randn(len(real) // k, G.z_dim))))
    {zero_g}
    loss_g.backward()
    opt_g.step()
    return {{"loss_d": {loss_d}, "loss_g": float(loss_g.detach())}}
"""


# grade_id → [(what is wrong, answer source)]: each must score 0.
WRONG = {
    "ex-discriminator-loss": [
        ("log(sigmoid) written out: infinite for confident logits",
         "def discriminator_loss(real_logits, fake_logits):\n"
         "    return -(torch.log(torch.sigmoid(real_logits)).mean() + torch.log(1 - torch.sigmoid(fake_logits)).mean())\n"),
        ("real and fake swapped",
         "def discriminator_loss(real_logits, fake_logits):\n"
         "    return torch.nn.functional.softplus(real_logits).mean() + torch.nn.functional.softplus(-fake_logits).mean()\n"),
        ("summed over the batches instead of averaged",
         "def discriminator_loss(real_logits, fake_logits):\n"
         "    return torch.nn.functional.softplus(-real_logits).sum() + torch.nn.functional.softplus(fake_logits).sum()\n"),
        ("one mean over both batches together (wrong when their sizes differ, half otherwise)",
         "def discriminator_loss(real_logits, fake_logits):\n"
         "    sp = torch.nn.functional.softplus\n"
         "    return torch.cat([sp(-real_logits), sp(fake_logits)]).mean()\n"),
    ],
    "ex-optimal-discriminator": [
        ("the densities exponentiated and divided: 0/0 far below 0",
         "def optimal_discriminator(log_p_data, log_p_g):\n"
         "    return log_p_data.exp() / (log_p_data.exp() + log_p_g.exp())\n"),
        ("p_g / (p_data + p_g): the probability of 'generated'",
         "def optimal_discriminator(log_p_data, log_p_g):\n    return torch.sigmoid(log_p_g - log_p_data)\n"),
        ("log D* returned",
         "def optimal_discriminator(log_p_data, log_p_g):\n"
         "    return log_p_data - torch.logaddexp(log_p_data, log_p_g)\n"),
        ("the log-densities used as densities",
         "def optimal_discriminator(log_p_data, log_p_g):\n    return log_p_data / (log_p_data + log_p_g)\n"),
        ("the density ratio p_data / p_g",
         "def optimal_discriminator(log_p_data, log_p_g):\n    return torch.exp(log_p_data - log_p_g)\n"),
    ],
    "ex-nonsaturating-loss": [
        ("the saturating loss", "def generator_loss_nonsaturating(fake_logits):\n"
                                "    return -torch.nn.functional.softplus(fake_logits).mean()\n"),
        ("the sign flipped: G maximises -log D(G(z))", "def generator_loss_nonsaturating(fake_logits):\n"
                                                       "    return -torch.nn.functional.softplus(-fake_logits).mean()\n"),
        ("log(sigmoid) written out: infinite for confident logits",
         "def generator_loss_nonsaturating(fake_logits):\n    return -torch.log(torch.sigmoid(fake_logits)).mean()\n"),
        ("summed over the batch", "def generator_loss_nonsaturating(fake_logits):\n"
                                  "    return torch.nn.functional.softplus(-fake_logits).sum()\n"),
    ],
    "ex-gan-iteration": [
        ("the sum of the k discriminator losses returned", _iteration(loss_d="sum(d_losses)")),
        ("the last of the k discriminator losses returned", _iteration(loss_d="d_losses[-1]")),
        ("no opt_g.zero_grad() before G's step", _iteration(zero_g="pass")),
        ("the generator_loss argument ignored (always non-saturating)",
         _iteration(g_loss="gan.generator_loss_nonsaturating")),
        ("D's step without detach: gradients flow into G",
         _iteration(d_step="fake = G(torch.randn(len(x), G.z_dim))")),
    ],
    "ex-mode-shares": [
        ("counts instead of shares",
         "def mode_shares(samples, centres, std):\n"
         "    distance, nearest = torch.cdist(samples, centres).min(dim=1)\n"
         "    nearest[distance > 3 * std] = len(centres)\n"
         "    return torch.bincount(nearest, minlength=len(centres) + 1).float()\n"),
        ("the radius 3 instead of 3 std",
         "def mode_shares(samples, centres, std):\n"
         "    distance, nearest = torch.cdist(samples, centres).min(dim=1)\n"
         "    nearest[distance > 3] = len(centres)\n"
         "    return torch.bincount(nearest, minlength=len(centres) + 1).float() / len(samples)\n"),
        ("every sample counted for its nearest mode (nothing off every mode)",
         "def mode_shares(samples, centres, std):\n"
         "    nearest = torch.cdist(samples, centres).argmin(dim=1)\n"
         "    return torch.bincount(nearest, minlength=len(centres) + 1).float() / len(samples)\n"),
        ("no off-mode entry: only the modes' shares",
         "def mode_shares(samples, centres, std):\n"
         "    distance, nearest = torch.cdist(samples, centres).min(dim=1)\n"
         "    return torch.stack([((nearest == j) & (distance <= 3 * std)).float().mean() for j in range(len(centres))])\n"),
        ("the modes' shares normalised among the on-mode samples",
         "def mode_shares(samples, centres, std):\n"
         "    distance, nearest = torch.cdist(samples, centres).min(dim=1)\n"
         "    on = distance <= 3 * std\n"
         "    counts = torch.bincount(nearest[on], minlength=len(centres)).float()\n"
         "    return torch.cat([counts / on.sum().clamp(min=1), (~on).float().mean().view(1)])\n"),
    ],
}

# grade_id → a correct answer written differently from the solution: must score full marks.
DIFFERENT = {
    "ex-discriminator-loss":
        "def discriminator_loss(real_logits, fake_logits):\n"
        "    bce = torch.nn.functional.binary_cross_entropy_with_logits\n"
        "    return bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))\n",
    "ex-optimal-discriminator":
        "def optimal_discriminator(log_p_data, log_p_g):\n"
        "    # p_data / (p_data + p_g), numerator and denominator divided by the larger density\n"
        "    top = torch.maximum(log_p_data, log_p_g)\n"
        "    a, b = torch.exp(log_p_data - top), torch.exp(log_p_g - top)\n"
        "    return a / (a + b)\n",
    "ex-nonsaturating-loss":
        "def generator_loss_nonsaturating(fake_logits):\n"
        "    return -torch.nn.functional.logsigmoid(fake_logits).mean()\n",
    "ex-gan-iteration": ITERATION_HEAD + """    m = len(real) // k
    total = 0.0
    for x in torch.tensor_split(real, k):
        with torch.no_grad():
            fake = G(torch.randn(x.shape[0], G.z_dim))
        d_loss = gan.discriminator_loss(D(x), D(fake))
        D.zero_grad()
        d_loss.backward()
        opt_d.step()
        total += d_loss.item()
    g_loss = generator_loss(D(G(torch.randn(m, G.z_dim))))
    g_loss.backward()
    opt_g.step()
    opt_g.zero_grad()        # cleared after the step, ready for the next iteration
    return {"loss_d": total / k, "loss_g": g_loss.item()}
""",
    "ex-mode-shares":
        "def mode_shares(samples, centres, std):\n"
        "    shares = torch.zeros(len(centres) + 1)\n"
        "    for point in samples:\n"
        "        distances = ((centres - point) ** 2).sum(dim=1).sqrt()\n"
        "        j = int(distances.argmin())\n"
        "        shares[j if distances[j] <= 3 * std else len(centres)] += 1\n"
        "    return shares / len(samples)\n",
}


def test_every_exercise_has_three_wrong_answers_and_a_different_right_one():
    assert set(EXERCISES) == set(WRONG) == set(DIFFERENT) and len(EXERCISES) == 5
    assert all(len(answers) >= 3 for answers in WRONG.values())
    assert {"ex-optimal-discriminator", "ex-mode-shares"} <= set(gc.WRONG)


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in WRONG.items() for _, a in answers],
                         ids=[f"{g}: {what}" for g, answers in WRONG.items() for what, _ in answers])
def test_the_visible_check_reports_each_wrong_answer(grade_id, answer):
    assert_check_catches(NB04, answer, EXERCISES[grade_id][1])


@pytest.mark.parametrize("grade_id", list(DIFFERENT))
def test_a_different_right_answer_passes_the_visible_and_hidden_checks(grade_id):
    out = run_exercise(NB04, DIFFERENT[grade_id], EXERCISES[grade_id][1], grading=True)
    assert "✅" in out, out


@pytest.mark.parametrize("what,needle", [
    ("the sum of the k discriminator losses returned", "that is their sum: divide by k=3"),
    ("the last of the k discriminator losses returned", "that is the last one only"),
    ("no opt_g.zero_grad() before G's step", "stale gradients"),
    ("the generator_loss argument ignored (always non-saturating)", "ignores the generator_loss argument"),
])
def test_the_four_planted_iteration_bugs_are_named(what, needle):
    answer = dict(WRONG["ex-gan-iteration"])[what]
    visible = EXERCISES["ex-gan-iteration"][1].split("### BEGIN HIDDEN TESTS")[0]
    out = run_exercise(NB04, answer, visible, grading=False)
    assert needle in out, out


@pytest.mark.parametrize("grade_id,what,needle", [
    ("ex-optimal-discriminator", "the densities exponentiated and divided: 0/0 far below 0", "contains NaN"),
    ("ex-optimal-discriminator", "p_g / (p_data + p_g): the probability of 'generated'", "probability that x is real"),
    ("ex-mode-shares", "counts instead of shares", "those are counts"),
    ("ex-mode-shares", "the radius 3 instead of 3 std", "the radius is 3σ"),
    ("ex-mode-shares", "every sample counted for its nearest mode (nothing off every mode)", "off every mode"),
])
def test_the_new_exercises_messages_name_input_expected_got_and_a_hint(grade_id, what, needle):
    answer = dict(WRONG[grade_id])[what]
    visible = EXERCISES[grade_id][1].split("### BEGIN HIDDEN TESTS")[0]
    out = run_exercise(NB04, answer, visible, grading=False)
    assert needle in out and "expected" in out and "got" in out, out


# ----------------------------------------------------------------------------- through the grader
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: the i-th wrong answer of every exercise in submission wrong-i, every different
    right answer in one submission, the solution and the untouched release."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb04"), PATH, WRONG, DIFFERENT)


def test_the_grader_gives_each_wrong_answer_zero_and_the_right_ones_full_marks(graded):
    grades, expected = graded
    gc.assert_points(grades, expected)
    assert sum(r.points for r in grades["correct.ipynb"].results) == sum(gc.points(PATH, gid) for gid in EXERCISES) == 17


def test_the_grader_names_the_planted_iteration_bugs(graded):
    grades, _ = graded
    reasons = {student: {r.grade_id: r.reason for r in g.results} for student, g in grades.items()}
    wanted = ["that is their sum", "that is the last one only", "stale gradients", "ignores the generator_loss argument"]
    for i, needle in enumerate(wanted):
        assert needle in reasons[f"wrong-{i}.ipynb"]["ex-gan-iteration"] or needle in \
            grades[f"wrong-{i}.ipynb"].reasons(), (i, reasons[f"wrong-{i}.ipynb"]["ex-gan-iteration"])
