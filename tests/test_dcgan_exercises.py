"""Notebook 05's exercises through the real grader: realistic wrong answers score 0, correct answers
written differently from the solution score full marks, and the visible checks say what is wrong.

The generator block is checked inside a DCGAN generator (its sizes at 7 → 14 and 14 → 28, the overlap
of its kernel), the discriminator on a batch and by a few steps of training against noise, the nearest
neighbours on planted copies of training images and on feature vectors, and the Fréchet distance against
the package's on random and on near-singular covariances.
"""
import pytest

import grading_cases as gc
from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise

PATH = SOLUTIONS / "05_dcgan.ipynb"
NB05 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB05)}


def _block(conv: str, rest: str = "nn.BatchNorm2d(out_channels), nn.ReLU()") -> str:
    """A generator block: nn.ConvTranspose2d(in_channels, out_channels, ``conv``), then the layers ``rest``."""
    return ("def generator_block(in_channels, out_channels):\n"
            f"    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, {conv}), {rest})\n")


def _discriminator(layers: str) -> str:
    return "def build_discriminator(width):\n    return nn.Sequential(\n" + layers


def _nearest(body: str) -> str:
    return "def nearest_neighbours(queries, pool, k=1, batch_size=128):\n" + body


def _frechet(cross: str, mean: str = "(mu_a - mu_b).pow(2).sum()", root: str = "vals.clamp(min=0).sqrt()") -> str:
    """A Fréchet distance with the given mean term, square roots of Σ_a's eigenvalues and cross term."""
    return f"""def frechet_distance(features_a, features_b):
    a, b = features_a.double(), features_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    c_a, c_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(c_a)
    root_a = vecs @ torch.diag({root}) @ vecs.T
    return float({mean} + torch.trace(c_a) + torch.trace(c_b) - {cross})
"""


ROOT_CROSS = "2 * torch.linalg.eigvalsh(root_a @ c_b @ root_a).clamp(min=0).sqrt().sum()"

# grade_id → [(what is wrong, answer source)]: each must score 0.
WRONG = {
    "ex-generator-block": [
        ("stride 1 with kernel 8: 7 → 14, but 14 → 21", _block("kernel_size=8, stride=1, padding=0, bias=False")),
        ("kernel 3, stride 2, no padding: 7 → 15", _block("kernel_size=3, stride=2, padding=0, bias=False")),
        ("kernel 3, stride 2, padding 1, output_padding 1: doubles, but overlaps unevenly (checkerboard)",
         _block("kernel_size=3, stride=2, padding=1, output_padding=1, bias=False")),
        ("LeakyReLU (the discriminator's activation) instead of ReLU",
         _block("kernel_size=4, stride=2, padding=1, bias=False", "nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2)")),
        ("no batch norm", _block("kernel_size=4, stride=2, padding=1", "nn.ReLU()")),
    ],
    "ex-discriminator": [
        ("max pooling instead of strided convolutions", _discriminator(
            "        nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.2), nn.MaxPool2d(2),\n"
            "        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2), nn.MaxPool2d(2),\n"
            "        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))\n")),
        ("ReLU instead of LeakyReLU", _discriminator(
            "        nn.Conv2d(1, width, 4, stride=2, padding=1), nn.ReLU(),\n"
            "        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),\n"
            "        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))\n")),
        ("a sigmoid at the end: probabilities, not logits", _discriminator(
            "        nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),\n"
            "        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),\n"
            "        nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1), nn.Sigmoid())\n")),
        ("no padding: 28 → 13 → 5, and the linear layer does not fit", _discriminator(
            "        nn.Conv2d(1, width, 4, stride=2), nn.LeakyReLU(0.2),\n"
            "        nn.Conv2d(width, 2 * width, 4, stride=2, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),\n"
            "        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))\n")),
        ("nn.LeakyReLU() with its default slope 0.01, and batch norm on the input layer", _discriminator(
            "        nn.Conv2d(1, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(),\n"
            "        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(),\n"
            "        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))\n")),
        ("a fully connected hidden layer", _discriminator(
            "        nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),\n"
            "        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),\n"
            "        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))\n")),
    ],
    "ex-nearest-neighbours": [
        ("the nearest other sample instead of the nearest training image", _nearest(
            "    q = queries.flatten(1)\n"
            "    d = torch.cdist(q, q)\n"
            "    d.fill_diagonal_(float('inf'))\n"
            "    return d.topk(k, dim=1, largest=False)\n")),
        ("argmax: the farthest training images", _nearest(
            "    q, p = queries.flatten(1), pool.flatten(1)\n"
            "    out = [torch.cdist(q[i:i + batch_size], p).topk(k, dim=1) for i in range(0, len(q), batch_size)]\n"
            "    return torch.cat([d for d, _ in out]), torch.cat([j for _, j in out])\n")),
        ("squared distances returned", _nearest(
            "    q, p = queries.flatten(1), pool.flatten(1)\n"
            "    ds, js = [], []\n"
            "    for i in range(0, len(q), batch_size):\n"
            "        d, j = (q[i:i + batch_size, None, :] - p[None]).pow(2).sum(-1).topk(k, dim=1, largest=False)\n"
            "        ds.append(d)\n"
            "        js.append(j)\n"
            "    return torch.cat(ds), torch.cat(js)\n")),
        ("every image flattened to 784 values: wrong for feature vectors", _nearest(
            "    q, p = queries.reshape(-1, 784), pool.reshape(-1, 784)\n"
            "    ds, js = [], []\n"
            "    for i in range(0, len(q), batch_size):\n"
            "        d, j = torch.cdist(q[i:i + batch_size], p).topk(k, dim=1, largest=False)\n"
            "        ds.append(d)\n"
            "        js.append(j)\n"
            "    return torch.cat(ds), torch.cat(js)\n")),
        ("the last, partial batch of queries dropped", _nearest(
            "    q, p = queries.flatten(1), pool.flatten(1)\n"
            "    ds, js = [], []\n"
            "    for b in range(max(len(q) // batch_size, 1)):\n"
            "        d, j = torch.cdist(q[b * batch_size:(b + 1) * batch_size], p).topk(k, dim=1, largest=False)\n"
            "        ds.append(d)\n"
            "        js.append(j)\n"
            "    return torch.cat(ds), torch.cat(js)\n")),
    ],
    "ex-interpolate": [
        ("t = 0, 1/steps, …: the end point z1 is never reached",
         "def interpolate(z0, z1, steps):\n"
         "    t = (torch.arange(steps) / steps).unsqueeze(1)\n"
         "    return (1 - t) * z0.unsqueeze(0) + t * z1.unsqueeze(0)\n"),
        ("from z1 to z0: the weights swapped",
         "def interpolate(z0, z1, steps):\n"
         "    t = torch.linspace(0, 1, steps).unsqueeze(1)\n"
         "    return t * z0 + (1 - t) * z1\n"),
        ("shape (z_dim, steps): the points stacked as columns",
         "def interpolate(z0, z1, steps):\n"
         "    return torch.stack([(1 - t) * z0 + t * z1 for t in torch.linspace(0, 1, steps)], dim=1)\n"),
    ],
    "ex-frechet-distance": [
        ("the elementwise square root of Σ_a Σ_b", _frechet("2 * torch.trace((c_a @ c_b).sqrt())")),
        ("Tr(Σ_a Σ_b): the square root missing", _frechet("2 * torch.trace(c_a @ c_b)")),
        ("the cross term without its factor 2", _frechet(ROOT_CROSS.removeprefix("2 * "))),
        ("eig of the non-symmetric Σ_a Σ_b, real parts square-rooted: NaN for singular covariances",
         _frechet("2 * torch.linalg.eigvals(c_a @ c_b).real.sqrt().sum()")),
        ("the mean term not squared: ‖μ_a − μ_b‖", _frechet(ROOT_CROSS, mean="(mu_a - mu_b).norm()")),
        ("eigh's tiny negative eigenvalues square-rooted: NaN", _frechet(
            "2 * torch.linalg.eigvalsh(root_a @ c_b @ root_a).sqrt().sum()", root="vals.sqrt()")),
        ("Tr(Σ_a^{1/2} Σ_b^{1/2}): the square roots taken separately",
         "def frechet_distance(features_a, features_b):\n"
         "    def sqrtm(c):\n"
         "        vals, vecs = torch.linalg.eigh(c)\n"
         "        return vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T\n"
         "    a, b = features_a.double(), features_b.double()\n"
         "    c_a, c_b = torch.cov(a.T), torch.cov(b.T)\n"
         "    mean = (a.mean(0) - b.mean(0)).pow(2).sum()\n"
         "    return float(mean + torch.trace(c_a) + torch.trace(c_b) - 2 * torch.trace(sqrtm(c_a) @ sqrtm(c_b)))\n"),
    ],
}

# grade_id → a correct answer written differently from the solution: must score full marks.
DIFFERENT = {
    "ex-generator-block":
        "def generator_block(in_channels, out_channels):\n"
        "    # kernel 2, stride 2, no padding: (H - 1) * 2 + 2 = 2H, each output pixel from exactly one tap\n"
        "    up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=(2, 2), stride=(2, 2))\n"
        "    return nn.Sequential(up, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))\n",
    "ex-discriminator":
        "def build_discriminator(width):\n"
        "    layers = [nn.Conv2d(1, width, kernel_size=3, stride=2, padding=1), nn.LeakyReLU(negative_slope=0.2)]\n"
        "    layers += [nn.Conv2d(width, 2 * width, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(2 * width),\n"
        "               nn.LeakyReLU(negative_slope=0.2)]\n"
        "    layers += [nn.Conv2d(2 * width, 1, kernel_size=7), nn.Flatten()]   # a 7x7 convolution as the logit\n"
        "    return nn.Sequential(*layers)\n",
    "ex-nearest-neighbours": _nearest(
        "    p = pool.reshape(len(pool), -1).double()\n"
        "    p_sq = (p ** 2).sum(1)\n"
        "    distances, indices = [], []\n"
        "    for start in range(0, len(queries), batch_size):\n"
        "        q = queries[start:start + batch_size].reshape(-1, p.shape[1]).double()\n"
        "        d2 = (q ** 2).sum(1, keepdim=True) + p_sq - 2 * q @ p.T\n"
        "        d, i = torch.sort(d2.clamp(min=0).sqrt(), dim=1)\n"
        "        distances.append(d[:, :k].float())\n"
        "        indices.append(i[:, :k])\n"
        "    return torch.cat(distances), torch.cat(indices)\n"),
    "ex-interpolate":
        "def interpolate(z0, z1, steps):\n"
        "    return torch.stack([z0 + (z1 - z0) * (i / (steps - 1)) for i in range(steps)])\n",
    "ex-frechet-distance":
        "def frechet_distance(features_a, features_b):\n"
        "    def fit(f):\n"
        "        f = f.double()\n"
        "        mu = f.mean(dim=0)\n"
        "        return mu, (f - mu).T @ (f - mu) / (len(f) - 1)\n"
        "    def psd_sqrt(m):\n"
        "        w, v = torch.linalg.eigh(m)\n"
        "        return (v * w.clamp(min=0).sqrt()) @ v.T\n"
        "    (mu_a, c_a), (mu_b, c_b) = fit(features_a), fit(features_b)\n"
        "    r = psd_sqrt(c_a)\n"
        "    middle = r @ c_b @ r\n"
        "    cross = torch.trace(psd_sqrt((middle + middle.T) / 2))\n"
        "    return (torch.sum((mu_a - mu_b) ** 2) + torch.trace(c_a) + torch.trace(c_b) - 2 * cross).item()\n",
}


def test_every_exercise_has_three_wrong_answers_and_a_different_right_one():
    assert set(EXERCISES) == set(WRONG) == set(DIFFERENT) and len(EXERCISES) == 5
    assert all(len(answers) >= 3 for answers in WRONG.values())
    assert {"ex-discriminator", "ex-nearest-neighbours", "ex-frechet-distance"} <= set(gc.WRONG)


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in WRONG.items() for _, a in answers],
                         ids=[f"{g}: {what}" for g, answers in WRONG.items() for what, _ in answers])
def test_the_visible_check_reports_each_wrong_answer(grade_id, answer):
    assert_check_catches(NB05, answer, EXERCISES[grade_id][1])


@pytest.mark.parametrize("grade_id", list(DIFFERENT))
def test_a_different_right_answer_passes_the_visible_and_hidden_checks(grade_id):
    out = run_exercise(NB05, DIFFERENT[grade_id], EXERCISES[grade_id][1], grading=True)
    assert "✅" in out, out


@pytest.mark.parametrize("grade_id,what,needles", [
    ("ex-generator-block", "stride 1 with kernel 8: 7 → 14, but 14 → 21",
     ["14×14 → 28×28", "expected (2, 4, 28, 28)", "with stride 1"]),
    ("ex-generator-block", "kernel 3, stride 2, no padding: 7 → 15",
     ["in the DCGAN generator", "(2, 8, 15, 15), expected (2, 8, 14, 14)", "2·in + 1"]),
    ("ex-generator-block", "kernel 3, stride 2, padding 1, output_padding 1: doubles, but overlaps unevenly (checkerboard)",
     ["checkerboard", "multiple of the stride"]),
    ("ex-generator-block", "LeakyReLU (the discriminator's activation) instead of ReLU", ["LeakyReLU is D's activation"]),
    ("ex-discriminator", "max pooling instead of strided convolutions", ["no pooling", "strided convolutions"]),
    ("ex-discriminator", "a sigmoid at the end: probabilities, not logits", ["not a probability", "loss is"]),
    ("ex-discriminator", "no padding: 28 → 13 → 5, and the linear layer does not fit",
     ["4×13×13, 8×5×5", "expected 4×14×14 and then 8×7×7", "⌊(28 + 2·0 − 4)/2⌋ + 1 = 13"]),
    ("ex-discriminator", "nn.LeakyReLU() with its default slope 0.01, and batch norm on the input layer", ["defaults to 0.01"]),
    ("ex-nearest-neighbours", "the nearest other sample instead of the nearest training image", ["nearest other queries"]),
    ("ex-nearest-neighbours", "argmax: the farthest training images", ["farthest pool images"]),
    ("ex-nearest-neighbours", "squared distances returned", ["squared distances"]),
    ("ex-nearest-neighbours", "the last, partial batch of queries dropped", ["last, partial batch"]),
    ("ex-frechet-distance", "the elementwise square root of Σ_a Σ_b", ["not the square root of its entries"]),
    ("ex-frechet-distance", "the cross term without its factor 2", ["subtracted twice"]),
    ("ex-frechet-distance", "eig of the non-symmetric Σ_a Σ_b, real parts square-rooted: NaN for singular covariances",
     ["got NaN", "singular"]),
    ("ex-frechet-distance", "the mean term not squared: ‖μ_a − μ_b‖", ["squared distance ‖μ_a − μ_b‖²"]),
])
def test_the_messages_name_the_input_expected_got_and_a_hint(grade_id, what, needles):
    answer = dict(WRONG[grade_id])[what]
    visible = EXERCISES[grade_id][1].split("### BEGIN HIDDEN TESTS")[0]
    out = run_exercise(NB05, answer, visible, grading=False)
    assert all(needle in out for needle in needles) and "❌" in out, out


def test_the_stubs_leave_the_numbers_to_the_student():
    """The release says what each function returns, not the kernel, stride and padding or the formula's parts."""
    student = {gid: answer for gid, answer, _ in exercises(gc.released(PATH))}
    assert "stride=2" not in student["ex-generator-block"] and "padding=1" not in student["ex-generator-block"]
    assert "kernel_size" not in student["ex-discriminator"]
    assert "eigh" not in student["ex-frechet-distance"] and "cdist" not in student["ex-nearest-neighbours"]
    prose = "\n".join(c.source for c in gc.released(PATH).cells if c.cell_type == "markdown")
    assert "kernel 4" not in prose and "padding 1" not in prose


# ----------------------------------------------------------------------------- through the grader
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: the i-th wrong answer of every exercise in submission wrong-i, every different
    right answer in one submission, the solution and the untouched release."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb05"), PATH, WRONG, DIFFERENT)


def test_the_grader_gives_each_wrong_answer_zero_and_the_right_ones_full_marks(graded):
    grades, expected = graded
    gc.assert_points(grades, expected)
    assert sum(r.points for r in grades["correct.ipynb"].results) == sum(gc.points(PATH, gid) for gid in EXERCISES) == 16


def test_the_grader_says_what_is_wrong(graded):
    grades, _ = graded
    reason = {student: {r.grade_id: r.reason + r.detail for r in g.results} for student, g in grades.items()}
    assert "LeakyReLU is D's activation" in reason["wrong-3.ipynb"]["ex-generator-block"]
    assert "no pooling" in reason["wrong-0.ipynb"]["ex-discriminator"]
    assert "farthest pool images" in reason["wrong-1.ipynb"]["ex-nearest-neighbours"]
    assert "got NaN" in reason["wrong-3.ipynb"]["ex-frechet-distance"]
