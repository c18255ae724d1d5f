"""The student release: solutions stubbed, hidden tests gone, outputs cleared, and always up to date."""
import nbformat
import pytest

from lecture13 import course, release
from lecture13.release import ReleaseError, strip_hidden_tests, strip_solution, student_version

from notebook_tools import NOTEBOOKS, ROOT, SOLUTIONS, exercises, read, run_exercise

SOURCES = sorted(SOLUTIONS.glob("*.ipynb"))


def test_solution_regions_become_stubs_at_their_indent():
    source = "def f(x):\n    \"\"\"doc\"\"\"\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nprint(1)"
    assert strip_solution(source) == ("def f(x):\n    \"\"\"doc\"\"\"\n    # YOUR CODE HERE\n"
                                      "    raise NotImplementedError()\n\nprint(1)")
    with pytest.raises(ReleaseError, match="without ### END SOLUTION"):
        strip_solution("### BEGIN SOLUTION\nx = 1")


def test_hidden_tests_are_removed():
    source = "check(f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 3\n### END HIDDEN TESTS"
    assert strip_hidden_tests(source) == "check(f)"
    with pytest.raises(ReleaseError, match="without ### BEGIN HIDDEN TESTS"):
        strip_hidden_tests("### END HIDDEN TESTS")


def test_student_version_of_a_small_notebook():
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    answer.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "ex", "locked": False, "schema_version": 3}
    tests = nbformat.v4.new_code_cell("check(f)\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS")
    tests.metadata["nbgrader"] = {"solution": False, "grade": True, "grade_id": "ex-test", "locked": True,
                                  "points": 1, "schema_version": 3}
    tests.outputs = [nbformat.v4.new_output("stream", text="✅")]
    tests.execution_count = 3
    written = nbformat.v4.new_markdown_cell("Explain.")
    written.metadata["nbgrader"] = {"solution": True, "grade": True, "grade_id": "essay", "points": 1, "schema_version": 3}
    nb.cells = [answer, tests, written]
    out = student_version(nb)
    assert "return 1" not in out.cells[0].source and "raise NotImplementedError()" in out.cells[0].source
    assert out.cells[1].source == "check(f)" and out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert out.cells[2].source == "YOUR ANSWER HERE"
    no_markers = nbformat.v4.new_code_cell("x = 1")
    no_markers.metadata["nbgrader"] = {"solution": True, "grade_id": "bad"}
    nb.cells = [no_markers]
    with pytest.raises(ReleaseError, match="answer cell without"):
        student_version(nb)


def test_notebooks_folder_is_what_the_release_produces_now():
    stale = release.release(SOLUTIONS, NOTEBOOKS, check_only=True, readme=ROOT / "README.md")
    assert stale == [], f"run `python -m lecture13 release`; out of date: {stale}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_notebook_structure_and_nbgrader_metadata(path):
    nb = read(path)
    assert [c.get("id") for c in nb.cells[:3]] == ["course-header", "colab-setup", "imports"]
    assert "[![Binder]" in nb.cells[0].source and course.REPOSITORY in nb.cells[0].source
    assert "google.colab" in nb.cells[1].source
    assert path.name in {entry[0] for entry in course.NOTEBOOKS}
    grade_ids = []
    for cell in nb.cells:
        meta = release.nbgrader(cell)
        if not meta:
            continue
        assert meta["schema_version"] == 3
        for key in ("grade", "grade_id", "locked", "solution"):
            assert key in meta, f"{meta.get('grade_id')}: nbgrader metadata lacks {key}"
        if meta["grade"]:
            assert meta["points"] > 0
        grade_ids.append(meta["grade_id"])
    assert len(grade_ids) == len(set(grade_ids)), "grade_ids must be unique"
    assert exercises(nb), f"{path.name} has no exercise"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_released_notebook_holds_no_answers(path):
    released = read(NOTEBOOKS / path.name)
    for cell in released.cells:
        assert "### BEGIN SOLUTION" not in cell.source and "### BEGIN HIDDEN TESTS" not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def _exercise_cases():
    for path in SOURCES:
        for grade_id, answer, test in exercises(read(path)):
            yield pytest.param(path, answer, test, id=f"{path.stem}:{grade_id}")


@pytest.mark.parametrize("path,answer,test", list(_exercise_cases()))
def test_each_exercise_solution_passes_and_the_stub_fails(path, answer, test):
    nb = read(path)
    assert "✅" in run_exercise(nb, answer, test, grading=True)
    with pytest.raises(AssertionError, match="not implemented"):
        run_exercise(nb, release.strip_solution(answer), test, grading=True)
    # Outside grading the stub falls back to the reference and says so.
    out = run_exercise(nb, release.strip_solution(answer), test.split("### BEGIN HIDDEN TESTS")[0], grading=False)
    assert "not implemented yet" in out and "reference implementation" in out


def test_readme_tables_are_regenerated_between_their_markers():
    text = "intro\n<!-- notebooks:start -->\nold\n<!-- notebooks:end -->\nmiddle\n<!-- weights:start -->\nold\n<!-- weights:end -->\nend\n"
    fresh = release.readme_with_tables(text)
    assert fresh.startswith("intro\n") and "\nmiddle\n" in fresh and fresh.endswith("end\n") and "\nold\n" not in fresh
    assert "| `gated_pixelcnn` | GatedPixelCNN |" in fresh and "00_generative_models.ipynb" in fresh
    assert release.readme_with_tables(fresh) == fresh
    with pytest.raises(ReleaseError, match="weights:start"):
        release.readme_with_tables(text.replace("<!-- weights:start -->", ""))


def test_the_readme_lists_every_graded_exercise_with_the_points_the_grader_gives():
    from lecture13 import grading

    table = release.exercises_table(SOLUTIONS)
    course = grading.load_course(SOLUTIONS)
    exercises = [(nb.name[:2], e.grade_id, e.points) for nb in course for e in nb.exercises]
    for prefix, grade_id, points in exercises:
        assert f"| {prefix} | `{grade_id}` |" in table and table.split(f"`{grade_id}` |")[1].split("|")[1].strip() == f"{points:g}"
    assert f"**{len(exercises)} exercises**" in table and f"**{sum(p for _, _, p in exercises):g}**" in table
    readme = (SOLUTIONS.parent / "README.md").read_text()
    assert table in readme, "README.md's exercise table is stale: run python -m lecture13 release"
