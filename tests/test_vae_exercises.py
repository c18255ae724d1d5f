"""Notebook 03's exercises: the visible checks catch the usual mistakes, and through the real grader
(`lecture13.grading.grade`, one run for the module, :func:`grading_cases.grade_planted`) realistic wrong answers
score 0 and a correct answer written differently scores full.

The planted training steps call ``vae.reparameterize`` and ``vae.negative_elbo`` (not the student's, which the
grader includes from the earlier answers), so that one exercise's planted bug cannot leak into another's verdict.
"""
import pytest

from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise

import grading_cases as gc

PATH = SOLUTIONS / "03_variational_autoencoders.ipynb"
NB03 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB03)}

_ELBO = "def negative_elbo(x, logits, mu, logvar):\n"
_PARTS = "    r = -likelihood.bernoulli_log_likelihood(logits, x)\n    k = vae.gaussian_kl(mu, logvar)\n"


def _step(loss='parts["loss"]', z="vae.reparameterize(mu, logvar, eps)", zero="optimizer.zero_grad()",
          ret="{k: v.item() for k, v in parts.items()}") -> str:
    """The solution's training step with one piece changed."""
    return f"""def vae_train_step(model, optimizer, x, eps):
    {zero}
    mu, logvar = model.encode(x)
    z = {z}
    parts = vae.negative_elbo(x, model.decode(z), mu, logvar)
    ({loss}).backward()
    optimizer.step()
    return {ret}
"""


def _usage(kl="(0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean(dim=0)", activity="mu.var(dim=0)",
           active="int((activity > threshold).sum())") -> str:
    """The solution's latent_usage with one piece changed."""
    return f"""def latent_usage(mu, logvar, threshold=0.01):
    kl = {kl}
    activity = {activity}
    return {{"kl": kl, "activity": activity, "active": {active}}}
"""


# grade_id -> [(what is wrong, answer source)]: each must score 0.
WRONG = {
    "ex-gaussian-kl": [
        ("the wrong sign", "def gaussian_kl(mu, logvar):\n    return -0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)"),
        ("no 1/2", "def gaussian_kl(mu, logvar):\n    return (mu**2 + logvar.exp() - 1 - logvar).sum(-1)"),
        ("no -1", "def gaussian_kl(mu, logvar):\n    return 0.5 * (mu**2 + logvar.exp() - logvar).sum(-1)"),
        ("logvar taken for sigma", "def gaussian_kl(mu, logvar):\n    return 0.5 * (mu**2 + logvar**2 - 1 - logvar).sum(-1)"),
        ("the mean over the dimensions",
         "def gaussian_kl(mu, logvar):\n    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).mean(-1)"),
    ],
    "ex-reparameterize": [
        ("the variance, not the std", "def reparameterize(mu, logvar, eps):\n    return mu + torch.exp(logvar) * eps"),
        ("logvar taken for sigma", "def reparameterize(mu, logvar, eps):\n    return mu + logvar * eps"),
        ("sigma ignored", "def reparameterize(mu, logvar, eps):\n    return mu + eps"),
        ("the gradient cut", "def reparameterize(mu, logvar, eps):\n    return (mu + torch.exp(0.5 * logvar) * eps).detach()"),
        ("a fresh sample, no reparameterization",
         "def reparameterize(mu, logvar, eps):\n    return torch.normal(mu, torch.exp(0.5 * logvar))"),
    ],
    "ex-negative-elbo": [
        ("the KL subtracted", _ELBO + _PARTS + "    return {'loss': (r - k).mean(), 'recon': r.mean(), 'kl': k.mean()}"),
        ("the KL missing", _ELBO + _PARTS + "    return {'loss': r.mean(), 'recon': r.mean(), 'kl': k.mean()}"),
        ("the mean over the pixels",
         _ELBO + "    r = torch.nn.functional.binary_cross_entropy_with_logits(logits, x)\n"
         "    k = vae.gaussian_kl(mu, logvar).mean()\n    return {'loss': r + k, 'recon': r, 'kl': k}"),
        ("the sum over the batch", _ELBO + _PARTS + "    return {'loss': (r + k).sum(), 'recon': r.sum(), 'kl': k.sum()}"),
        ("probabilities passed as logits",
         _ELBO + "    r = -likelihood.bernoulli_log_likelihood(torch.sigmoid(logits), x)\n    k = vae.gaussian_kl(mu, logvar)\n"
         "    return {'loss': (r + k).mean(), 'recon': r.mean(), 'kl': k.mean()}"),
    ],
    "ex-vae-train-step": [
        ("no zero_grad: the gradients of earlier batches accumulate", _step(zero="pass")),
        ("the step on the KL term only", _step(loss='parts["kl"]')),
        ("the step on the reconstruction term only", _step(loss='parts["recon"]')),
        ("the sign flipped: the -ELBO maximised", _step(loss='-parts["loss"]')),
        ("z = mu: the reparameterised sample not used", _step(z="mu")),
    ],
    "ex-iw-bound": [
        ("a mean of the log weights: the ELBO", "def iw_bound(a, b, c):\n    return (a + b - c).mean(0)"),
        ("- log K forgotten", "def iw_bound(a, b, c):\n    return torch.logsumexp(a + b - c, 0)"),
        ("exp underflows", "def iw_bound(a, b, c):\n    return torch.log(torch.exp(a + b - c).mean(0))"),
        ("+ log q", "def iw_bound(a, b, c):\n    return torch.logsumexp(a + b + c, 0) - math.log(a.shape[0])"),
        ("the wrong axis", "def iw_bound(a, b, c):\n    return torch.logsumexp(a + b - c, 1) - math.log(a.shape[1])"),
    ],
    "ex-latent-usage": [
        ("the KL summed over the images", _usage(kl="(0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(dim=0)")),
        ("the KL summed over the dimensions", _usage(kl="vae.gaussian_kl(mu, logvar).mean()")),
        ("the threshold on mu: the activity the mean of mu", _usage(activity="mu.mean(dim=0)")),
        ("the activity the posterior variance sigma^2", _usage(activity="logvar.exp().mean(dim=0)")),
        ("the active dimensions counted by their KL", _usage(active="int((kl > threshold).sum())")),
    ],
}

# More wrong answers, caught by the visible check (and failing the hidden tests): not sent to the grader, to keep
# its run short.
MORE_WRONG = {
    "ex-vae-train-step": [
        ("the sum over the batch", _step(loss='parts["loss"] * len(x)')),
        ("the noise drawn inside (model(x)), eps ignored",
         _step(z="vae.reparameterize(mu, logvar, torch.randn_like(mu))")),
        ("only the loss returned", _step(ret='parts["loss"].item()')),
        ("the values after the step returned",
         _step(ret="{k: v.item() for k, v in vae.vae_loss(model, x).items()}")),
    ],
    "ex-latent-usage": [
        ("activity >= threshold", _usage(active="int((activity >= threshold).sum())")),
        ("the biased variance", _usage(activity="mu.var(dim=0, unbiased=False)")),
        ("the variance over the wrong axis", _usage(activity="mu.var(dim=1)")),
    ],
}

# Correct, but not the published solution's code.
DIFFERENT = {
    "ex-gaussian-kl": "def gaussian_kl(mu, logvar):\n    return -0.5 * (1 + logvar - mu ** 2 - torch.exp(logvar)).sum(-1)\n",
    "ex-reparameterize": "def reparameterize(mu, logvar, eps):\n    return mu + eps * torch.sqrt(torch.exp(logvar))\n",
    "ex-negative-elbo": _ELBO + "    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction='none')\n"
                        "    recon = bce.flatten(1).sum(1).mean()\n"
                        "    kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(-1).mean()\n"
                        "    return {'loss': recon + kl, 'recon': recon, 'kl': kl}\n",
    "ex-vae-train-step": """def vae_train_step(model, optimizer, x, eps):
    mu, logvar = model.encode(x)
    z = mu + torch.exp(logvar / 2) * eps
    logits = model.decode(z)
    recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    loss = (recon + kl).mean()
    model.zero_grad(set_to_none=False)       # cleared after the forward pass, before backward
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "recon": float(recon.mean().detach()), "kl": float(kl.mean().detach())}
""",
    "ex-iw-bound": "def iw_bound(log_px_given_z, log_pz, log_qz):\n    log_w = log_px_given_z + log_pz - log_qz\n"
                   "    top = log_w.max(dim=0).values\n    return top + torch.log(torch.exp(log_w - top).mean(dim=0))\n",
    "ex-latent-usage": """def latent_usage(mu, logvar, threshold=0.01):
    kl = (mu ** 2 + logvar.exp() - 1 - logvar).mean(0) / 2
    centred = mu - mu.mean(0)
    activity = (centred ** 2).sum(0) / (len(mu) - 1)
    return {"kl": kl, "activity": activity, "active": sum(1 for a in activity.tolist() if a > threshold)}
""",
}


def test_every_exercise_has_wrong_answers_and_a_different_correct_answer():
    assert set(EXERCISES) == set(WRONG) == set(DIFFERENT) and len(EXERCISES) == 6
    assert all(len(answers) >= 3 for answers in WRONG.values())
    assert {"ex-vae-train-step", "ex-latent-usage"} <= set(gc.WRONG)


_ALL_WRONG = [(g, w, a) for source in (WRONG, MORE_WRONG) for g, answers in source.items() for w, a in answers]


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, _, a in _ALL_WRONG], ids=[f"{g}: {w}" for g, w, _ in _ALL_WRONG])
def test_visible_checks_catch_the_wrong_answers(grade_id, answer):
    assert_check_catches(NB03, answer, EXERCISES[grade_id][1])


@pytest.mark.parametrize("grade_id", list(DIFFERENT))
def test_different_correct_answers_pass_the_visible_and_hidden_checks(grade_id):
    out = run_exercise(NB03, DIFFERENT[grade_id], EXERCISES[grade_id][1], grading=True)
    assert "✅" in out, out


@pytest.mark.parametrize("grade_id,what,needle", [
    ("ex-vae-train-step", "no zero_grad: the gradients of earlier batches accumulate", "optimizer.zero_grad() before"),
    ("ex-vae-train-step", "the step on the KL term only", "the KL term alone"),
    ("ex-vae-train-step", "the step on the reconstruction term only", "the reconstruction term alone"),
    ("ex-vae-train-step", "the sign flipped: the -ELBO maximised", "moved uphill"),
    ("ex-vae-train-step", "z = mu: the reparameterised sample not used", "z = μ + σ ⊙ eps"),
    ("ex-vae-train-step", "the sum over the batch", "sum over the batch"),
    ("ex-latent-usage", "the KL summed over the images", "summed over the images"),
    ("ex-latent-usage", "the KL summed over the dimensions", "summed over the dimensions"),
    ("ex-latent-usage", "the threshold on mu: the activity the mean of mu", "the variance of μ_j over the images"),
    ("ex-latent-usage", "the activity the posterior variance sigma^2", "variance of the posterior"),
    ("ex-latent-usage", "the active dimensions counted by their KL", "whose KL is above the threshold"),
    ("ex-latent-usage", "activity >= threshold", "strictly above"),
])
def test_the_new_checks_name_the_mistake_with_input_expected_and_got(grade_id, what, needle):
    answer = dict(WRONG[grade_id] + MORE_WRONG[grade_id])[what]
    visible = EXERCISES[grade_id][1].split("### BEGIN HIDDEN TESTS")[0]
    out = run_exercise(NB03, answer, visible, grading=False)
    assert needle in out and "expected" in out, out


def test_the_new_stubs_say_what_not_how():
    step = EXERCISES["ex-vae-train-step"][0].split("### BEGIN SOLUTION")[0]
    assert "eps" in step and "mean over the images" in step and "before the step" in step
    assert "zero_grad" not in step and "backward" not in step and "exp(" not in step
    usage = EXERCISES["ex-latent-usage"][0].split("### BEGIN SOLUTION")[0]
    assert "averaged over the images" in usage and "strictly above threshold" in usage and "unbiased" in usage
    assert "logvar.exp()" not in usage and "0.5" not in usage and ".var(" not in usage


# ----------------------------------------------------------------------------- through the grader
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: wrong-i holds the i-th wrong answer of every exercise (the solutions elsewhere),
    'different' every correct-but-different answer, 'correct' the published solutions, 'untouched' the release."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb03"), PATH, WRONG, DIFFERENT)


def test_the_grader_gives_wrong_answers_zero_and_a_different_correct_answer_full_marks(graded):
    grades, expected = graded
    gc.assert_points(grades, expected)
    assert sum(r.points for r in grades["correct.ipynb"].results) == sum(gc.points(PATH, gid) for gid in EXERCISES) == 14
    assert all(r.reason == "not implemented (NotImplementedError)" for r in grades["untouched.ipynb"].results)
