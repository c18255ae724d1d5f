"""The exercise checks: specific feedback, a fallback that keeps the notebook going, strict grading."""
import pytest
import torch

from lecture13.exercises import Case, ExerciseFailed, assert_passes, check, compare, run_checks


def reference(x, scale=2.0):
    return x * scale


def test_a_correct_answer_passes_and_is_kept(capsys):
    def answer(x, scale=2.0):
        return scale * x

    used = check(answer, reference, cases=[Case(torch.ones(3)), Case(torch.arange(4.0), scale=0.5)])
    assert used is answer
    assert "✅ answer: passes the 2 visible checks (grading runs more, hidden tests included)." in capsys.readouterr().out
    check(lambda x: x, lambda x: x, cases=[Case(1)])
    assert "✅ <lambda>: passes the visible check (grading runs more, hidden tests included)." in capsys.readouterr().out


def test_a_wrong_answer_says_which_input_expected_and_got(capsys):
    def answer(x, scale=2.0):
        return x + scale

    used = check(answer, reference, cases=[Case(torch.tensor([1.0, 2.0]), scale=3.0, label="scaled")])
    out = capsys.readouterr().out
    assert used is reference
    assert "❌ answer: 1 of 1 checks failed." in out
    assert "check 1 (scaled) failed: answer(tensor([1.0, 2.0]), scale=3.0)" in out
    assert "expected tensor([3.0, 6.0]), got tensor([4.0, 5.0])" in out
    assert "uses the reference implementation" in out and "kept for grading" in out


def test_not_implemented_is_one_line_and_falls_back(capsys):
    def answer(x, scale=2.0):
        raise NotImplementedError()

    assert check(answer, reference, cases=[Case(torch.ones(1))]) is reference
    out = capsys.readouterr().out
    assert "⏭  answer is not implemented yet" in out and "failed" not in out


def test_exceptions_and_shapes_are_reported(capsys):
    check(lambda x, scale=2.0: x.view(3, 3), reference, cases=[Case(torch.ones(4))], name="reshaper")
    assert "raised RuntimeError" in capsys.readouterr().out
    assert "has shape (1, 4), expected (4,)" in compare(torch.ones(4), torch.ones(1, 4), 1e-5, 1e-4)
    assert "should be a tensor" in compare(torch.ones(1), 1.0, 1e-5, 1e-4)
    assert compare((torch.ones(2), 3), (torch.ones(2), 3), 1e-5, 1e-4) is None
    assert "result[1]" in compare((torch.ones(2), 3), (torch.ones(2), 4), 1e-5, 1e-4)


def test_properties_check_behaviour_without_a_single_right_output(capsys):
    def must_be_positive(fn):
        assert fn(torch.tensor([-1.0])).item() > 0, "the output must be positive for negative input"

    check(lambda x: x, torch.abs, properties=[must_be_positive], name="positive")
    assert "the output must be positive" in capsys.readouterr().out


def test_answer_cannot_change_the_reference_inputs():
    def sneaky(x, scale=2.0):
        x.mul_(0)  # in place: must not affect what the reference saw
        return x

    total, failures = run_checks(sneaky, reference, cases=[Case(torch.ones(2))])
    assert total == 1 and len(failures) == 1


def test_grading_mode_raises_instead_of_falling_back(monkeypatch):
    monkeypatch.setenv("LECTURE13_GRADING", "1")
    with pytest.raises(ExerciseFailed, match="not implemented"):
        check(lambda x: (_ for _ in ()).throw(NotImplementedError()), reference, cases=[Case(torch.ones(1))])
    with pytest.raises(ExerciseFailed, match="expected 2"):
        assert_passes(lambda x, scale=2.0: x, reference, cases=[Case(torch.ones(1))])
