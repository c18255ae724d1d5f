"""Notebook 03's exercises: the reference answers pass, and the visible checks catch the usual mistakes."""
import pytest

from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read

NB03 = read(SOLUTIONS / "03_variational_autoencoders.ipynb")
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB03)}

PLANTED = {
    "ex-gaussian-kl": [
        "def gaussian_kl(mu, logvar):\n    return -0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)",         # wrong sign
        "def gaussian_kl(mu, logvar):\n    return (mu**2 + logvar.exp() - 1 - logvar).sum(-1)",                # missing 1/2
        "def gaussian_kl(mu, logvar):\n    return 0.5 * (mu**2 + logvar.exp() - logvar).sum(-1)",              # missing -1
        "def gaussian_kl(mu, logvar):\n    return 0.5 * (mu**2 + logvar**2 - 1 - logvar).sum(-1)",            # logvar taken as sigma
        "def gaussian_kl(mu, logvar):\n    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).mean(-1)",        # mean over dimensions
        "def gaussian_kl(mu, logvar):\n    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()",           # one number for the batch
    ],
    "ex-reparameterize": [
        "def reparameterize(mu, logvar, eps):\n    return mu + torch.exp(logvar) * eps",                          # variance, not std
        "def reparameterize(mu, logvar, eps):\n    return mu + logvar * eps",                                     # logvar as sigma
        "def reparameterize(mu, logvar, eps):\n    return mu + eps",                                              # ignores sigma
        "def reparameterize(mu, logvar, eps):\n    return (mu + torch.exp(0.5 * logvar) * eps).detach()",         # cuts the gradient
        "def reparameterize(mu, logvar, eps):\n    return torch.normal(mu, torch.exp(0.5 * logvar))",             # samples, no reparameterization
    ],
    "ex-negative-elbo": [
        "def negative_elbo(x, logits, mu, logvar):\n    r = -likelihood.bernoulli_log_likelihood(logits, x)\n"
        "    k = vae.gaussian_kl(mu, logvar)\n    return {'loss': (r - k).mean(), 'recon': r.mean(), 'kl': k.mean()}",   # KL subtracted
        "def negative_elbo(x, logits, mu, logvar):\n    r = -likelihood.bernoulli_log_likelihood(logits, x)\n"
        "    k = vae.gaussian_kl(mu, logvar)\n    return {'loss': r.mean(), 'recon': r.mean(), 'kl': k.mean()}",         # KL missing
        "def negative_elbo(x, logits, mu, logvar):\n    r = torch.nn.functional.binary_cross_entropy_with_logits(logits, x)\n"
        "    k = vae.gaussian_kl(mu, logvar).mean()\n    return {'loss': r + k, 'recon': r, 'kl': k}",                    # mean over pixels
        "def negative_elbo(x, logits, mu, logvar):\n    r = -likelihood.bernoulli_log_likelihood(logits, x)\n"
        "    k = vae.gaussian_kl(mu, logvar)\n    return {'loss': (r + k).sum(), 'recon': r.sum(), 'kl': k.sum()}",      # sum over the batch
        "def negative_elbo(x, logits, mu, logvar):\n    r = -likelihood.bernoulli_log_likelihood(torch.sigmoid(logits), x)\n"
        "    k = vae.gaussian_kl(mu, logvar)\n    return {'loss': (r + k).mean(), 'recon': r.mean(), 'kl': k.mean()}",   # probabilities as logits
    ],
    "ex-iw-bound": [
        "def iw_bound(a, b, c):\n    return (a + b - c).mean(0)",                                                 # a mean: the ELBO
        "def iw_bound(a, b, c):\n    return torch.logsumexp(a + b - c, 0)",                                       # forgets - log K
        "def iw_bound(a, b, c):\n    return torch.log(torch.exp(a + b - c).mean(0))",                             # underflows
        "def iw_bound(a, b, c):\n    return torch.logsumexp(a + b + c, 0) - math.log(a.shape[0])",                # + log q
        "def iw_bound(a, b, c):\n    return torch.logsumexp(a + b - c, 1) - math.log(a.shape[1])",                # wrong axis
    ],
}


def test_every_exercise_has_planted_bugs():
    assert set(EXERCISES) == set(PLANTED) and len(EXERCISES) >= 4


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in PLANTED.items() for a in answers])
def test_visible_checks_catch_planted_bugs(grade_id, answer):
    assert_check_catches(NB03, answer, EXERCISES[grade_id][1])
