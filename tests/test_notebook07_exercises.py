"""Notebook 07's exercises through the real grader: realistic wrong answers score 0, correct answers
written differently from the solution score full marks, and the visible checks say what is wrong.

The coupling layer's wrong answers are those of ``tests/test_flows.py`` (the flows' checks), written out
as a student's cell; the diffusion exercises' wrong answers are the mistakes the checks of
``lecture13.checks.diffusion`` name.
"""
import pytest

import grading_cases as gc
from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise

PATH = SOLUTIONS / "07_flows_and_diffusion.ipynb"
NB07 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB07)}


def _inverse(body: str) -> str:
    return ("def coupling_inverse(layer, z):\n    b = layer.mask\n    s, t = layer.log_scale_and_shift(b * z)\n"
            f"    {body}\n")


def _log_det(body: str) -> str:
    return "def coupling_log_det(layer, x):\n    b = layer.mask\n    s, _ = layer.log_scale_and_shift(b * x)\n" \
           f"    {body}\n"


def _q_sample(body: str, index: str = "t - 1") -> str:
    return ("def q_sample(x0, t, noise, alpha_bars):\n"
            f"    a = alpha_bars[{index}].view(-1, *([1] * (x0.dim() - 1)))\n    {body}\n")


def _loss(body: str, x_t: str = "a.sqrt() * x0 + (1 - a).sqrt() * noise") -> str:
    return ("def ddpm_loss(eps_model, x0, t, noise, alpha_bars):\n"
            "    a = alpha_bars[t - 1].view(-1, *([1] * (x0.dim() - 1)))\n"
            f"    x_t = {x_t}\n    {body}\n")


def _reverse(clip: str = ".clamp(-1, 1)", a_prev: str = "float(alpha_bars[t - 2]) if t > 1 else 1.0",
             noise: str = "float(sigmas[t - 1]) * z", last: str = "mean if t == 1 else mean + noise") -> str:
    return f"""def reverse_step(eps_model, x_t, t, z, alpha_bars, sigmas):
    a_t = float(alpha_bars[t - 1])
    a_prev = {a_prev}
    beta_t = 1 - a_t / a_prev
    eps = eps_model(x_t, torch.full((len(x_t),), t, dtype=torch.long))
    x0_hat = ((x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)){clip}
    mean = (math.sqrt(a_prev) * beta_t / (1 - a_t)) * x0_hat + (math.sqrt(1 - beta_t) * (1 - a_prev) / (1 - a_t)) * x_t
    noise = {noise}
    return {last}
"""


# grade_id → [(what is wrong, answer source)]: each must score 0.
WRONG = {
    "ex-coupling-inverse": [
        ("the scale applied again instead of undone", _inverse("return b * z + (1 - b) * (z - t) * torch.exp(s)")),
        ("the shift undone after the scale", _inverse("return b * z + (1 - b) * (z * torch.exp(-s) - t)")),
        ("the mask ignored: every dimension unscaled and unshifted", _inverse("return (z - t) * torch.exp(-s)")),
        ("s and t computed from all of z",
         _inverse("s, t = layer.log_scale_and_shift(z)\n    return b * z + (1 - b) * (z - t) * torch.exp(-s)")),
    ],
    "ex-coupling-log-det": [
        ("the log-scales of every dimension summed", _log_det("return s.sum(dim=1)")),
        ("the sign flipped (the inverse's log-determinant)", _log_det("return -((1 - b) * s).sum(dim=1)")),
        ("not summed over the dimensions: shape (n, D)", _log_det("return (1 - b) * s")),
        ("a mean over the dimensions instead of the sum", _log_det("return ((1 - b) * s).mean(dim=1)")),
    ],
    "ex-q-sample": [
        ("no square roots: ᾱ_t x_0 + (1 − ᾱ_t) ε", _q_sample("return a * x0 + (1 - a) * noise")),
        ("the noise scaled by the variance", _q_sample("return a.sqrt() * x0 + (1 - a) * noise")),
        ("off by one step: alpha_bars[t]", _q_sample("return a.sqrt() * x0 + (1 - a).sqrt() * noise",
                                                     index="t.clamp(max=len(alpha_bars) - 1)")),
        ("ᾱ_t not broadcast over the pixels", "def q_sample(x0, t, noise, alpha_bars):\n"
                                              "    a = alpha_bars[t - 1]\n"
                                              "    return a.sqrt() * x0 + (1 - a).sqrt() * noise\n"),
    ],
    "ex-ddpm-loss": [
        ("the clean image as the target", _loss("return ((eps_model(x_t, t) - x0) ** 2).mean()")),
        ("summed over the pixels, averaged over the batch",
         _loss("return ((eps_model(x_t, t) - noise) ** 2).flatten(1).sum(1).mean()")),
        ("the network given x_0 instead of x_t", _loss("return ((eps_model(x0, t) - noise) ** 2).mean()")),
        ("the network told t − 1", _loss("return ((eps_model(x_t, t - 1) - noise) ** 2).mean()")),
    ],
    "ex-reverse-step": [
        ("x̂_0 not clipped (Ho et al.'s eq. 11 as written)", _reverse(clip="")),
        ("noise added at the last step too", _reverse(last="mean + noise")),
        ("σ_t² z instead of σ_t z", _reverse(noise="float(sigmas[t - 1]) ** 2 * z")),
        ("ᾱ_0 read as alpha_bars[-1] (= ᾱ_T) at t = 1", _reverse(a_prev="float(alpha_bars[t - 2])")),
    ],
}

# grade_id → a correct answer written differently from the solution: must score full marks.
DIFFERENT = {
    "ex-coupling-inverse":
        "def coupling_inverse(layer, z):\n"
        "    kept = z * layer.mask\n"
        "    s, t = layer.log_scale_and_shift(kept)\n"
        "    return kept + (1 - layer.mask) * ((z - t) / torch.exp(s))\n",
    "ex-coupling-log-det":
        "def coupling_log_det(layer, x):\n"
        "    s, _ = layer.log_scale_and_shift(layer.mask * x)\n"
        "    return torch.where(layer.mask.bool(), torch.zeros_like(s), s).sum(-1)\n",
    "ex-q-sample":
        "def q_sample(x0, t, noise, alpha_bars):\n"
        "    out = torch.empty_like(x0)\n"
        "    for i in range(len(x0)):\n"
        "        a = alpha_bars[int(t[i]) - 1]\n"
        "        out[i] = torch.sqrt(a) * x0[i] + torch.sqrt(1 - a) * noise[i]\n"
        "    return out\n",
    "ex-ddpm-loss":
        "def ddpm_loss(eps_model, x0, t, noise, alpha_bars):\n"
        "    a = alpha_bars.gather(0, t - 1).reshape(-1, *[1] * (x0.dim() - 1))\n"
        "    prediction = eps_model(torch.sqrt(a) * x0 + torch.sqrt(1 - a) * noise, t)\n"
        "    return F.mse_loss(prediction, noise)\n",
    "ex-reverse-step":
        "def reverse_step(eps_model, x_t, t, z, alpha_bars, sigmas):\n"
        "    ab = torch.cat([alpha_bars.new_ones(1), alpha_bars.double()])   # ab[k] = ᾱ_k, ᾱ_0 = 1\n"
        "    alpha = ab[t] / ab[t - 1]\n"
        "    eps = eps_model(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long))\n"
        "    x0 = torch.clamp((x_t - torch.sqrt(1 - ab[t]) * eps) / torch.sqrt(ab[t]), -1.0, 1.0)\n"
        "    mean = (torch.sqrt(ab[t - 1]) * (1 - alpha) * x0 + torch.sqrt(alpha) * (1 - ab[t - 1]) * x_t) / (1 - ab[t])\n"
        "    if t > 1:\n"
        "        mean = mean + sigmas[t - 1] * z\n"
        "    return mean\n",
}


def test_every_exercise_has_three_wrong_answers_and_a_different_right_one():
    assert set(EXERCISES) == set(WRONG) == set(DIFFERENT) and len(EXERCISES) == 5
    assert all(len(answers) >= 3 for answers in WRONG.values())
    assert set(EXERCISES) <= set(gc.WRONG)


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in WRONG.items() for _, a in answers],
                         ids=[f"{g}: {what}" for g, answers in WRONG.items() for what, _ in answers])
def test_the_visible_check_reports_each_wrong_answer(grade_id, answer):
    assert_check_catches(NB07, answer, EXERCISES[grade_id][1])


@pytest.mark.parametrize("grade_id", list(DIFFERENT))
def test_a_different_right_answer_passes_the_visible_and_hidden_checks(grade_id):
    out = run_exercise(NB07, DIFFERENT[grade_id], EXERCISES[grade_id][1], grading=True)
    assert "✅" in out, out


@pytest.mark.parametrize("grade_id,what,needle", [
    ("ex-q-sample", "no square roots: ᾱ_t x_0 + (1 − ᾱ_t) ε", "not square roots"),
    ("ex-q-sample", "off by one step: alpha_bars[t]", "ᾱ_t is alpha_bars[t − 1]"),
    ("ex-ddpm-loss", "the clean image as the target", "predicts the noise ε, not the clean image"),
    ("ex-ddpm-loss", "summed over the pixels, averaged over the batch", "mean over the pixels too"),
    ("ex-reverse-step", "x̂_0 not clipped (Ho et al.'s eq. 11 as written)", "was not clipped"),
    ("ex-reverse-step", "ᾱ_0 read as alpha_bars[-1] (= ᾱ_T) at t = 1", "wraps around"),
    ("ex-reverse-step", "noise added at the last step too", "no noise is added at the last step"),
])
def test_the_diffusion_messages_name_input_expected_got_and_a_hint(grade_id, what, needle):
    answer = dict(WRONG[grade_id])[what]
    visible = EXERCISES[grade_id][1].split("### BEGIN HIDDEN TESTS")[0]
    out = run_exercise(NB07, answer, visible, grading=False)
    assert needle in out and "expected" in out and "got" in out, out


def test_a_wrong_step_is_shown_in_the_images_it_samples():
    """The sampling check puts the answer into all T steps: a step that is wrong only at t = 1 passes
    every step but one and still draws other images, and the check says by how much and what the
    classifier sees."""
    from lecture13 import exercises as ex
    from lecture13.checks import diffusion as checks

    namespace: dict = {}
    exec("import math\nimport torch\n" + dict(WRONG["ex-reverse-step"])["noise added at the last step too"], namespace)
    _, failures = ex.run_checks(namespace["reverse_step"], None, properties=[checks.sampling_with_the_answer()])
    assert len(failures) == 1 and "differ from the reference's by up to" in failures[0] \
        and "classifier sees" in failures[0], failures


# ----------------------------------------------------------------------------- through the grader
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: the i-th wrong answer of every exercise in submission wrong-i, every different
    right answer in one submission, the solution and the untouched release."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb07"), PATH, WRONG, DIFFERENT)


def test_the_grader_gives_each_wrong_answer_zero_and_the_right_ones_full_marks(graded):
    grades, expected = graded
    gc.assert_points(grades, expected)
    assert sum(r.points for r in grades["correct.ipynb"].results) == sum(gc.points(PATH, gid) for gid in EXERCISES) == 11
