"""Planted submissions for the grader's tests, generated from solutions/ (so they follow the notebooks).

``WRONG`` holds one plausible wrong answer per exercise (grade_id → (what is wrong, answer source)):
the grader must give it zero for that exercise and full marks for the others. Add a line here
when a notebook gets a new exercise (a test fails until you do).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

from lecture13 import release

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"

WRONG: dict[str, tuple[str, str]] = {
    # 00_generative_models
    "ex-fit-bernoulli": ("no smoothing: the plain mean", '''
def fit_bernoulli(x, alpha=1.0):
    return x.mean(dim=0)
'''),
    "ex-bernoulli-nll": ("the mean over pixels instead of the sum", '''
def bernoulli_nll(theta, x):
    log_p = x * torch.log(theta) + (1 - x) * torch.log1p(-theta)
    return -log_p.flatten(1).mean(dim=1)
'''),
    "ex-sample-factorized": ("on with probability 1 - theta (uniform above theta)", '''
def sample_factorized(theta, n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *theta.shape, generator=g) > theta).float()
'''),
    "ex-choose-alpha": ("alpha chosen by the training NLL", '''
def choose_alpha(x_train, x_val, alphas):
    nlls = torch.stack([factorized.bernoulli_nll(factorized.fit_bernoulli(x_train, a), x_train).mean() for a in alphas])
    return alphas[int(nlls.argmin())], nlls
'''),
    # 01_autoregressive_models
    "ex-causal-mask": ("mask types swapped (A keeps the centre, B hides it)", '''
def causal_mask(kernel_size, mask_type):
    k = kernel_size
    mask = torch.zeros(k, k)
    mask[: k // 2, :] = 1
    mask[k // 2, : k // 2] = 1
    if mask_type == "A":
        mask[k // 2, k // 2] = 1
    return mask
'''),
    "ex-bits-per-dim": ("not divided by log 2 (nats per dimension)", '''
def bits_per_dim(nll_nats, num_dims):
    return nll_nats / num_dims
'''),
    "ex-sample-pixels": ("every pixel from one forward pass on a blank image (not sequential)", '''
def sample_pixels(model, uniforms):
    with torch.no_grad():
        p = torch.sigmoid(model(torch.zeros_like(uniforms)))
    return (uniforms < p).float()
'''),
    "ex-masked-conv": ("the mask flipped, as if F.conv2d flipped the kernel: every layer sees the future", '''
def masked_conv2d(x, weight, bias, mask_type):
    k = weight.shape[-1]
    mask = ar.causal_mask(k, mask_type).flip(0, 1)
    return F.conv2d(x, weight * mask, bias, padding=k // 2)
'''),
    "ex-complete": ("conditioned on zeros: the observed rows pasted in after sampling", '''
def complete(model, top, uniforms):
    x = torch.zeros_like(uniforms)
    for r in range(top.shape[2], x.shape[2]):
        for c in range(x.shape[3]):
            p = torch.sigmoid(model.pixel_logits(x, r, c)[:, 0])
            x[:, 0, r, c] = (uniforms[:, 0, r, c] < p).float()
    x[:, :, :top.shape[2]] = top
    return x
'''),
    "ex-categorical-nll": ("log(softmax) written out: infinite for confident logits", '''
def categorical_nll(logits, x):
    p = torch.softmax(logits, dim=1).gather(1, (x * 255).round().long())
    return -torch.log(p).flatten(1).sum(dim=1)
'''),
    # 02_autoencoders
    "ex-ae-loss": ("summed over the batch instead of the mean", '''
def reconstruction_loss(x_hat, x):
    return (x - x_hat).pow(2).sum()
'''),
    "ex-train-step": ("no zero_grad: gradients of earlier batches accumulate", '''
def train_step(model, optimizer, x):
    loss = autoencoders.reconstruction_loss(model(x), x)
    loss.backward()
    optimizer.step()
    return loss.item()
'''),
    "ex-pca": ("the SVD of the uncentred images", '''
def linear_autoencoder(x, latent_dim):
    flat = x.flatten(1).double()
    _, _, vh = torch.linalg.svd(flat, full_matrices=False)
    return flat.mean(0), vh[:latent_dim].T
'''),
    "ex-standardize": ("the test set standardised with its own statistics", '''
def standardize(train_features, test_features):
    def z(f):
        return (f - f.mean(0)) / (f.std(0) + 1e-6)
    return z(train_features), z(test_features)
'''),
    "ex-linear-probes": ("each probe fitted on the test features (the test set used for training)", '''
def linear_probes(train_features, train_labels, test_features, test_labels, weight_decay=1e-2):
    runs, classes = len(train_features), int(max(train_labels.max(), test_labels.max())) + 1
    weight = torch.zeros(runs, test_features.shape[1], classes, requires_grad=True)
    bias = torch.zeros(runs, 1, classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")
    x, y = test_features.expand(runs, -1, -1), test_labels.expand(runs, -1)

    def objective():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy((x @ weight + bias).flatten(0, 1), y.flatten(), reduction="sum") / x.shape[1]
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    with torch.no_grad():
        return ((test_features @ weight + bias).argmax(-1) == test_labels).float().mean(-1)
'''),
    # 03_variational_autoencoders
    "ex-gaussian-kl": ("KL with the wrong sign", '''
def gaussian_kl(mu, logvar):
    return -0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)
'''),
    "ex-reparameterize": ("sigma = exp(logvar) instead of exp(logvar / 2)", '''
def reparameterize(mu, logvar, eps):
    return mu + torch.exp(logvar) * eps
'''),
    "ex-negative-elbo": ("the KL subtracted instead of added", '''
def negative_elbo(x, logits, mu, logvar):
    recon = -likelihood.bernoulli_log_likelihood(logits, x)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)
    return {"loss": (recon - kl).mean(), "recon": recon.mean(), "kl": kl.mean()}
'''),
    "ex-vae-train-step": ("the step at z = mu: the noise eps ignored", '''
def vae_train_step(model, optimizer, x, eps):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    parts = vae.negative_elbo(x, model.decode(mu), mu, logvar)
    parts["loss"].backward()
    optimizer.step()
    return {k: v.item() for k, v in parts.items()}
'''),
    "ex-iw-bound": ("log of the mean of exp(log w): underflows to -inf (no logsumexp)", '''
def iw_bound(log_px_given_z, log_pz, log_qz):
    return torch.log(torch.exp(log_px_given_z + log_pz - log_qz).mean(dim=0))
'''),
    "ex-latent-usage": ("the KL summed over the images instead of averaged", '''
def latent_usage(mu, logvar, threshold=0.01):
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(dim=0)
    activity = mu.var(dim=0)
    return {"kl": kl, "activity": activity, "active": int((activity > threshold).sum())}
'''),
    # 04_generative_adversarial_networks
    "ex-discriminator-loss": ("log(sigmoid) written out: infinite for confident logits (no softplus)", '''
def discriminator_loss(real_logits, fake_logits):
    return -(torch.log(torch.sigmoid(real_logits)).mean() + torch.log(1 - torch.sigmoid(fake_logits)).mean())
'''),
    "ex-optimal-discriminator": ("the two densities exponentiated and divided: 0/0 = NaN for log-densities of -800", '''
def optimal_discriminator(log_p_data, log_p_g):
    return log_p_data.exp() / (log_p_data.exp() + log_p_g.exp())
'''),
    "ex-nonsaturating-loss": ("the saturating loss E[log(1 - D(G(z)))] instead of -E[log D(G(z))]", '''
def generator_loss_nonsaturating(fake_logits):
    return -torch.nn.functional.softplus(fake_logits).mean()
'''),
    "ex-gan-iteration": ("the discriminator step without detach: gradients flow into G", '''
def gan_iteration(G, D, opt_d, opt_g, real, k=1, generator_loss=gan.generator_loss_nonsaturating):
    d_losses = []
    for x in real.tensor_split(k):
        fake = G(torch.randn(len(x), G.z_dim))
        loss_d = gan.discriminator_loss(D(x), D(fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_losses.append(float(loss_d.detach()))
    loss_g = generator_loss(D(G(torch.randn(len(real) // k, G.z_dim))))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return {"loss_d": sum(d_losses) / k, "loss_g": float(loss_g.detach())}
'''),
    "ex-mode-shares": ("counts instead of shares (not divided by the number of samples)", '''
def mode_shares(samples, centres, std):
    distance, nearest = torch.cdist(samples, centres).min(dim=1)
    nearest[distance > 3 * std] = len(centres)
    return torch.bincount(nearest, minlength=len(centres) + 1).float()
'''),
    # 05_dcgan
    "ex-generator-block": ("LeakyReLU (the discriminator's activation) instead of ReLU", '''
def generator_block(in_channels, out_channels):
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2))
'''),
    "ex-interpolate": ("t = 0, 1/steps, …: the end point z1 is never reached", '''
def interpolate(z0, z1, steps):
    t = (torch.arange(steps) / steps).unsqueeze(1)
    return (1 - t) * z0.unsqueeze(0) + t * z1.unsqueeze(0)
'''),
    "ex-discriminator": ("max pooling instead of strided convolutions", '''
def build_discriminator(width):
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))
'''),
    "ex-nearest-neighbours": ("squared distances returned", '''
def nearest_neighbours(queries, pool, k=1, batch_size=128):
    q, p = queries.flatten(1), pool.flatten(1)
    out = [(torch.cdist(q[i:i + batch_size], p) ** 2).topk(k, dim=1, largest=False) for i in range(0, len(q), batch_size)]
    return torch.cat([d for d, _ in out]), torch.cat([j for _, j in out])
'''),
    "ex-frechet-distance": ("Tr(Σ_a Σ_b): the matrix square root missing", '''
def frechet_distance(features_a, features_b):
    a, b = features_a.double(), features_b.double()
    c_a, c_b = torch.cov(a.T), torch.cov(b.T)
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + torch.trace(c_a) + torch.trace(c_b) - 2 * torch.trace(c_a @ c_b))
'''),
    # 06_comparing_generative_models
    "ex-to-bits-per-dim": ("bits per image divided by ln 2 as well", '''
def to_bits_per_dim(value, unit, num_dims=784):
    if unit in ("nats", "bits"):
        return value / (num_dims * math.log(2))
    return value
'''),
    "ex-decide": ("an upper bound read as an exact value", """
def decide(a, b):
    if a["test set"] != b["test set"]:
        return None
    if a["nats"] == b["nats"]:
        return None
    return a["model"] if a["nats"] < b["nats"] else b["model"]
"""),
    # 07_flows_and_diffusion
    "ex-coupling-inverse": ("the scale applied again instead of undone", '''
def coupling_inverse(layer, z):
    b = layer.mask
    s, t = layer.log_scale_and_shift(b * z)
    return b * z + (1 - b) * (z - t) * torch.exp(s)
'''),
    "ex-coupling-log-det": ("the log-scales of every dimension summed (the unchanged ones too)", '''
def coupling_log_det(layer, x):
    s, _ = layer.log_scale_and_shift(layer.mask * x)
    return s.sum(dim=1)
'''),
    "ex-q-sample": ("no square roots: ᾱ_t x_0 + (1 − ᾱ_t) ε", '''
def q_sample(x0, t, noise, alpha_bars):
    a = alpha_bars[t - 1].view(-1, *([1] * (x0.dim() - 1)))
    return a * x0 + (1 - a) * noise
'''),
    "ex-ddpm-loss": ("the clean image as the target instead of the noise", '''
def ddpm_loss(eps_model, x0, t, noise, alpha_bars):
    a = alpha_bars[t - 1].view(-1, *([1] * (x0.dim() - 1)))
    return ((eps_model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t) - x0) ** 2).mean()
'''),
    "ex-reverse-step": ("noise added at the last step too", '''
def reverse_step(eps_model, x_t, t, z, alpha_bars, sigmas):
    a_t = float(alpha_bars[t - 1])
    a_prev = float(alpha_bars[t - 2]) if t > 1 else 1.0
    beta_t = 1 - a_t / a_prev
    eps = eps_model(x_t, torch.full((len(x_t),), t, dtype=torch.long))
    x0_hat = ((x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
    mean = (math.sqrt(a_prev) * beta_t / (1 - a_t)) * x0_hat + (math.sqrt(1 - beta_t) * (1 - a_prev) / (1 - a_t)) * x_t
    return mean + float(sigmas[t - 1]) * z
'''),
}


def sandbox_column(mode: str = "auto") -> str:
    """What the CSV's sandbox column says for a run with ``--sandbox mode`` on this machine."""
    from lecture13 import grading_sandbox

    used, note = grading_sandbox.choose(mode)
    return "bwrap" if used == "bwrap" else note.removeprefix("sandbox: ")


def solution_notebooks() -> list[Path]:
    """The solutions notebooks that have exercises."""
    return [p for p in sorted(SOLUTIONS.glob("*.ipynb")) if exercise_ids(nbformat.read(p, as_version=4))]


def exercise_ids(nb) -> list[str]:
    return [release.nbgrader(c)["grade_id"] for c in nb.cells
            if c.cell_type == "code" and release.is_answer_cell(c) and not release.nbgrader(c).get("grade")]


def solution_answers(nb) -> dict[str, str]:
    return {release.nbgrader(c)["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and release.is_answer_cell(c)}


def released(solution_path: Path):
    """The student release of a solutions notebook (what `python -m lecture13 release` writes)."""
    return release.student_version(nbformat.read(solution_path, as_version=4), solution_path.name)


def submission(solution_path: Path, answers: dict[str, str] | None = None, *, correct: bool = True,
               edit=None) -> str:
    """A filled-in student notebook as JSON text: the release with the solutions' answers
    (``correct``) and then ``answers`` (grade_id → source) put into the answer cells;
    ``edit(nb)`` may change the notebook further (delete cells, ...)."""
    nb = released(solution_path)
    fill = dict(solution_answers(nbformat.read(solution_path, as_version=4))) if correct else {}
    fill.update(answers or {})
    for cell in nb.cells:
        grade_id = release.nbgrader(cell).get("grade_id")
        if cell.cell_type == "code" and release.is_answer_cell(cell) and grade_id in fill:
            cell.source = fill[grade_id]
    if edit is not None:
        edit(nb)
    return nbformat.writes(nb)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def drop_test_cells_and_reorder(nb) -> None:
    """A student who deletes every test cell and the markdown, and moves the cells around."""
    nb.cells = [c for c in nb.cells if not release.is_test_cell(c) and c.cell_type == "code"][::-1]


def json_without_nbformat(text: str) -> str:
    data = json.loads(text)
    return json.dumps(copy.deepcopy(data["cells"]))  # a list, not a notebook


# ------------------------------------------------------------------ planted answers through the grader
def points(solution_path: Path, grade_id: str) -> float:
    """The nbgrader points of exercise ``grade_id`` (its test cell's metadata) in a solutions notebook."""
    nb = nbformat.read(solution_path, as_version=4)
    test = next(c for c in nb.cells if release.nbgrader(c).get("grade_id") == grade_id + "-test")
    return float(release.nbgrader(test)["points"])


def grade_planted(folder: Path, solution_path: Path, wrong: dict[str, list],
                  different: dict[str, str]):
    """One grading run of a notebook's planted answers, and the points each submission must get.

    ``wrong``: grade_id → [(what is wrong, answer source)] (or bare sources), each must score 0;
    ``different``: grade_id → a correct answer written differently from the solution (full marks).
    Submissions: the solution, the untouched release, one with every different right answer, and
    wrong-i with the i-th wrong answer of every exercise (the others left correct).
    Returns ``(grades by student, {student: {grade_id: expected points}})``."""
    from lecture13 import grading

    ids = exercise_ids(nbformat.read(solution_path, as_version=4))
    full = {gid: points(solution_path, gid) for gid in ids}
    expected = {"correct.ipynb": full, "different.ipynb": full, "untouched.ipynb": dict.fromkeys(full, 0.0)}
    write(folder, "correct.ipynb", submission(solution_path))
    write(folder, "different.ipynb", submission(solution_path, different))
    write(folder, "untouched.ipynb", submission(solution_path, correct=False))
    for i in range(max((len(answers) for answers in wrong.values()), default=0)):
        answers = {gid: _source(items[i]) for gid, items in wrong.items() if i < len(items)}
        write(folder, f"wrong-{i}.ipynb", submission(solution_path, answers))
        expected[f"wrong-{i}.ipynb"] = full | dict.fromkeys(answers, 0.0)
    grades = grading.grade([folder], SOLUTIONS, jobs=2, progress=False)
    return {g.student: g for g in grades}, expected


def _source(item) -> str:
    return item if isinstance(item, str) else item[1]


def assert_points(grades, expected) -> None:
    """Every submission got exactly the expected points; the untouched release scores zero because
    nothing is implemented, and every other zero comes with a reason that is the answer's fault
    (a failed check, not tampering, a call of the reference, a grader error or a missing answer)."""
    assert set(grades) == set(expected), (sorted(grades), sorted(expected))
    for student, want in expected.items():
        g = grades[student]
        got = {r.grade_id: r.points for r in g.results}
        assert got == want, (student, g.reasons())
        for r in g.results:
            if student == "untouched.ipynb":
                assert r.reason == "not implemented (NotImplementedError)", (r.grade_id, r.reason)
            elif r.points == 0:
                assert r.reason and not r.reason.startswith(
                    ("tampered", "calls the reference", "grader error", "not implemented")), (student, r.grade_id, r.reason)
