"""Notebook 01's exercises on the PixelCNN's pieces through the real grader: realistic wrong answers score 0,
correct answers written differently from the solution score full marks, and the visible checks say what the
model then does wrong.

* ``masked_conv2d``: put into small PixelCNNs by the check; a leaking layer is reported as an output pixel
  that sees an input pixel from the future (or itself), with the positions the layer uses;
* ``complete``: completion given the top rows, from an ``ar.Conditionals`` model (one conditional at a time);
* ``categorical_nll``: the 256-way softmax NLL per image, finite for confident logits.

The notebook's first three exercises (causal_mask, bits_per_dim, sample_pixels) keep their solutions in
every submission here; tests/test_grading.py plants their wrong answers.
"""
import pytest
import torch

import grading_cases as gc
from lecture13 import autoregressive as ar
from lecture13 import release, sampling
from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read, run_exercise

PATH = SOLUTIONS / "01_autoregressive_models.ipynb"
NB01 = read(PATH)
EXERCISES = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB01)}
NEW = ("ex-masked-conv", "ex-complete", "ex-categorical-nll")


def _conv(mask: str = "ar.causal_mask(k, mask_type)", padding: str = "k // 2") -> str:
    return ("def masked_conv2d(x, weight, bias, mask_type):\n"
            "    k = weight.shape[-1]\n"
            f"    mask = {mask}\n"
            f"    return F.conv2d(x, weight * mask, bias, padding={padding})\n")


def _complete(start: str = "known", x0: str = "top", read: str = "x", cmp: str = "<", paste: bool = False) -> str:
    """The solution's completion with one thing changed: the first sampled row, what the image starts from,
    which image the conditionals are read from, the comparison, or the observed rows pasted in at the end."""
    return ("def complete(model, top, uniforms):\n"
            "    known = top.shape[2]\n"
            "    x = torch.zeros_like(uniforms)\n"
            + ("    x[:, :, :known] = top\n" if x0 == "top" else "")
            + "    first = x.clone()\n"
            f"    for r in range({start}, x.shape[2]):\n"
            "        for c in range(x.shape[3]):\n"
            f"            p = torch.sigmoid(model.pixel_logits({read}, r, c)[:, 0])\n"
            f"            x[:, 0, r, c] = (uniforms[:, 0, r, c] {cmp} p).float()\n"
            + ("    x[:, :, :known] = top\n" if paste else "")
            + "    return x\n")


def _nll(body: str) -> str:
    return "def categorical_nll(logits, x):\n    levels = (x[:, 0] * 255).round().long()\n" + body


# grade_id → [(what is wrong, answer source)]: each must score 0.
WRONG = {
    "ex-masked-conv": [
        ("no mask: an ordinary convolution", _conv(mask="torch.ones(k, k)")),
        ("the mask flipped, as if F.conv2d flipped the kernel", _conv(mask="ar.causal_mask(k, mask_type).flip(0, 1)")),
        ("mask_type ignored: every layer of type B (the first layer sees its own pixel)",
         _conv(mask="ar.causal_mask(k, 'B')")),
        ("rows and columns swapped when building the mask",
         "def masked_conv2d(x, weight, bias, mask_type):\n"
         "    k = weight.shape[-1]\n"
         "    mask = torch.zeros(k, k)\n"
         "    mask[:, : k // 2] = 1\n"
         "    mask[: k // 2, k // 2] = 1\n"
         "    if mask_type == 'B':\n"
         "        mask[k // 2, k // 2] = 1\n"
         "    return F.conv2d(x, weight * mask, bias, padding=k // 2)\n"),
        ("no padding: the output shrinks", _conv(padding="0")),
    ],
    "ex-complete": [
        ("the observed rows sampled again (the loop starts at row 0)", _complete(start="0")),
        ("one pass: every conditional read from the image before sampling", _complete(read="first")),
        ("conditioned on zeros: the observed rows pasted in after sampling", _complete(x0="zeros", paste=True)),
        ("off by one: sampling starts a row late", _complete(start="known + 1")),
        ("the comparison reversed: 1 where the uniform is above the probability", _complete(cmp=">")),
    ],
    "ex-categorical-nll": [
        ("log(softmax) written out: infinite for confident logits",
         _nll("    p = torch.softmax(logits, dim=1)\n"
              "    return -torch.log(p.gather(1, levels[:, None])).flatten(1).sum(dim=1)\n")),
        ("F.cross_entropy's default reduction: one mean over every pixel of the batch",
         _nll("    return F.cross_entropy(logits, levels)\n")),
        ("the mean over the pixels instead of the sum",
         _nll("    return F.cross_entropy(logits, levels, reduction='none').flatten(1).mean(dim=1)\n")),
        ("the intensity used as the class: x.long() instead of the level k",
         "def categorical_nll(logits, x):\n"
         "    return F.cross_entropy(logits, x[:, 0].long(), reduction='none').flatten(1).sum(dim=1)\n"),
        ("the softmax over the last axis (the image's columns) instead of the 256 levels",
         _nll("    logp = logits.log_softmax(dim=-1)\n"
              "    return -logp.gather(1, levels[:, None]).flatten(1).sum(dim=1)\n")),
        ("the mean over the batch instead of one NLL per image",
         _nll("    return F.cross_entropy(logits, levels, reduction='none').flatten(1).sum(dim=1).mean()\n")),
    ],
}

# grade_id → a correct answer written differently from the solution: must score full marks.
DIFFERENT = {
    "ex-masked-conv":
        "def masked_conv2d(x, weight, bias, mask_type):\n"
        "    k = weight.shape[-1]\n"
        "    c = k // 2\n"
        "    rows, cols = torch.arange(k).view(k, 1), torch.arange(k).view(1, k)\n"
        "    keep = (rows < c) | ((rows == c) & (cols < c + (1 if mask_type == 'B' else 0)))\n"
        "    out = F.conv2d(F.pad(x, (c, c, c, c)), weight * keep.to(weight.dtype))\n"
        "    return out if bias is None else out + bias.view(1, -1, 1, 1)\n",
    "ex-complete":
        "def complete(model, top, uniforms):\n"
        "    n, _, height, width = uniforms.shape\n"
        "    rows = top.shape[2]\n"
        "    x = torch.cat([top.to(uniforms.dtype), uniforms.new_zeros(n, 1, height - rows, width)], dim=2)\n"
        "    for i in range(rows * width, height * width):         # the unknown pixels, in raster order\n"
        "        r, c = divmod(i, width)\n"
        "        logit = model.pixel_logits(x, r, c).squeeze(1)\n"
        "        x[:, 0, r, c] = torch.where(uniforms[:, 0, r, c] < 1 / (1 + torch.exp(-logit)), 1.0, 0.0)\n"
        "    return x\n",
    "ex-categorical-nll":
        "def categorical_nll(logits, x):\n"
        "    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)\n"
        "    k = torch.round(x * 255).long()                      # (N, 1, H, W): the level of each pixel\n"
        "    return -torch.gather(log_p, 1, k).sum(dim=(1, 2, 3))\n",
}


def test_every_new_exercise_has_realistic_wrong_answers_and_a_different_right_one():
    assert set(NEW) <= set(EXERCISES) and len(EXERCISES) == 6
    assert set(WRONG) == set(DIFFERENT) == set(NEW)
    assert all(len(answers) >= 3 for answers in WRONG.values())
    assert set(NEW) <= set(gc.WRONG)
    assert [gc.points(PATH, g) for g in NEW] == [3.0, 3.0, 2.0]


def test_the_stubs_say_what_not_how():
    stub = release.student_version(NB01, PATH.name)
    for grade_id, giveaways in {"ex-masked-conv": ("padding", "F.conv2d", "weight *", "k // 2"),
                                "ex-complete": ("sigmoid", "range(", "zeros"),
                                "ex-categorical-nll": ("cross_entropy", "log_softmax", "logsumexp", "* 255", "round")
                                }.items():
        source = next(c.source for c in stub.cells if release.nbgrader(c).get("grade_id") == grade_id)
        assert "raise NotImplementedError()" in source
        assert not any(g in source for g in giveaways), (grade_id, source)


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in WRONG.items() for _, a in answers],
                         ids=[f"{g}: {what}" for g, answers in WRONG.items() for what, _ in answers])
def test_the_visible_check_reports_each_wrong_answer(grade_id, answer):
    assert_check_catches(NB01, answer, EXERCISES[grade_id][1])


@pytest.mark.parametrize("grade_id", list(DIFFERENT))
def test_a_different_right_answer_passes_the_visible_and_hidden_checks(grade_id):
    out = run_exercise(NB01, DIFFERENT[grade_id], EXERCISES[grade_id][1], grading=True)
    assert "✅" in out, out


@pytest.mark.parametrize("grade_id,what,needles", [
    ("ex-masked-conv", "no mask: an ordinary convolution",
     ("output pixel (0, 0) sees input pixel (0, 0), its own value", "the causal mask is not applied")),
    ("ex-masked-conv", "the mask flipped, as if F.conv2d flipped the kernel",
     ("sees input pixel (0, 1), from the future", "does not flip the kernel")),
    ("ex-masked-conv", "mask_type ignored: every layer of type B (the first layer sees its own pixel)",
     ("its own value", "type A must hide the centre", "512 binary 3×3 images sum to")),
    ("ex-masked-conv", "rows and columns swapped when building the mask", ("from the future", "rows and columns")),
    ("ex-complete", "the observed rows sampled again (the loop starts at row 0)", ("must come back unchanged",)),
    ("ex-complete", "one pass: every conditional read from the image before sampling",
     ("not distributed as p(x_bottom | x_top)", "before sampling")),
    ("ex-complete", "conditioned on zeros: the observed rows pasted in after sampling",
     ("not distributed as p(x_bottom | x_top)", "completions of an all-zero top")),
    ("ex-complete", "off by one: sampling starts a row late", ("the first unobserved row, is not sampled",)),
    ("ex-categorical-nll", "log(softmax) written out: infinite for confident logits", ("infinite", "log 0 = −inf")),
    ("ex-categorical-nll", "F.cross_entropy's default reduction: one mean over every pixel of the batch",
     ("one NLL per image", "default reduction")),
    ("ex-categorical-nll", "the intensity used as the class: x.long() instead of the level k", ("level k",)),
])
def test_the_messages_say_what_the_model_does_wrong(grade_id, what, needles):
    visible = EXERCISES[grade_id][1].split(release.BEGIN_HIDDEN)[0]
    out = run_exercise(NB01, dict(WRONG[grade_id])[what], visible, grading=False)
    assert all(needle in out for needle in needles), out


def test_conditionals_answers_exactly_and_completes_like_the_samplers():
    torch.manual_seed(0)
    model = ar.GatedPixelCNN(channels=8, layers=2, kernel_size=3, first_kernel=3).eval()
    view = ar.Conditionals(model)
    x = (torch.rand(3, 1, 4, 5) < 0.5).float()
    with torch.no_grad():
        full = model(x)
    for r, c in [(2, 3), (0, 0), (3, 4), (1, 2)]:          # backwards too: the cache starts again
        assert torch.allclose(view.pixel_logits(x, r, c), full[:, :, r, c], atol=1e-5)
    with pytest.raises(TypeError, match="one conditional at a time"):
        view(x)
    u = torch.rand(3, 1, 4, 5, generator=torch.Generator().manual_seed(1))
    expected = sampling.sample_naive(model, uniforms=u, start=x, known_rows=2)
    assert torch.equal(ar.complete_given_top(ar.Conditionals(model), x[:, :, :2], u), expected)


# ----------------------------------------------------------------------------- through the grader
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run: the i-th wrong answer of every new exercise in submission wrong-i (the solutions
    elsewhere), every different right answer in one submission, the solution and the untouched release."""
    return gc.grade_planted(tmp_path_factory.mktemp("nb01"), PATH, WRONG, DIFFERENT)


def test_the_grader_gives_each_wrong_answer_zero_and_the_right_ones_full_marks(graded):
    grades, expected = graded
    gc.assert_points(grades, expected)
    assert sum(r.points for r in grades["correct.ipynb"].results) == sum(gc.points(PATH, g) for g in EXERCISES) == 14


def test_the_grader_names_the_leak_and_the_unchanged_rows(graded):
    grades, _ = graded
    reasons = {student: {r.grade_id: r.reason for r in g.results} for student, g in grades.items()}
    assert "sees input pixel" in reasons["wrong-0.ipynb"]["ex-masked-conv"]
    assert "is observed as" in reasons["wrong-0.ipynb"]["ex-complete"]
    assert "infinite" in reasons["wrong-0.ipynb"]["ex-categorical-nll"]
