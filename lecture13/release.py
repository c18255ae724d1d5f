"""Build the student release ``notebooks/`` from the instructor's source ``solutions/``.

The notebooks follow nbgrader's conventions, so an instructor who uses nbgrader can take them
as they are:

* answer cells (metadata ``nbgrader.solution = true``): code between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` becomes ``raise NotImplementedError()``; a markdown answer becomes
  ``YOUR ANSWER HERE``;
* test cells (``nbgrader.grade = true``, not a solution): lines between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed;
* every output and execution count is cleared.

The release also stamps the course header (badges) and the Colab set-up cell from
:mod:`lecture13.course`, in the solutions too, so the repository address lives in one place.
"""
from __future__ import annotations

import re
from pathlib import Path

from . import course
from .checkpoints import weights_table

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HEADER_ID, SETUP_ID = "course-header", "colab-setup"
BADGE_LINE = re.compile(r"^\[!\[Binder\].*$", re.MULTILINE)


class ReleaseError(ValueError):
    """A source notebook breaks the conventions (e.g. an answer cell without markers)."""


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer_cell(cell) -> bool:
    return bool(nbgrader(cell).get("solution"))


def is_test_cell(cell) -> bool:
    meta = nbgrader(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def _replace_regions(source: str, begin: str, end: str, stub: tuple[str, ...], where: str) -> str:
    """Replace every ``begin`` … ``end`` region (marker lines included) by ``stub`` lines,
    indented like the ``begin`` marker."""
    out, inside = [], False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise ReleaseError(f"{where}: nested {begin}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in stub]
        elif stripped == end:
            if not inside:
                raise ReleaseError(f"{where}: {end} without {begin}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ReleaseError(f"{where}: {begin} without {end}")
    return "\n".join(out)


def strip_solution(source: str, where: str = "") -> str:
    """Replace every solution region with a NotImplementedError stub at the marker's indent."""
    return _replace_regions(source, BEGIN_SOLUTION, END_SOLUTION,
                            ("# YOUR CODE HERE", "raise NotImplementedError()"), where)


def strip_hidden_tests(source: str, where: str = "") -> str:
    """Remove every hidden-tests region."""
    return _replace_regions(source, BEGIN_HIDDEN, END_HIDDEN, (), where).rstrip("\n")


def stamp_course_cells(nb, filename: str, folder: str) -> None:
    """Refresh the badges in the header cell and the Colab set-up cell from lecture13.course."""
    for cell in nb.cells:
        if cell.get("id") == HEADER_ID and cell.cell_type == "markdown":
            badge = course.badges(filename, folder)
            if BADGE_LINE.search(cell.source):
                cell.source = BADGE_LINE.sub(lambda _: badge, cell.source, count=1)
            else:
                cell.source = badge + "\n\n" + cell.source
        elif cell.get("id") == SETUP_ID and cell.cell_type == "code":
            cell.source = course.colab_setup_source()


def student_version(nb, filename: str = "notebook"):
    """A released copy of a source notebook (the source is not modified)."""
    import nbformat  # imported when used: its schema validator costs ~2 s to import

    released = nbformat.v4.new_notebook(metadata=nb.metadata)
    for index, cell in enumerate(nb.cells):
        cell = nbformat.from_dict(cell)
        where = f"{filename}, cell {index} ({nbgrader(cell).get('grade_id', cell.get('id'))})"
        if cell.cell_type == "code":
            if is_answer_cell(cell):
                if BEGIN_SOLUTION not in cell.source:
                    raise ReleaseError(f"{where}: answer cell without {BEGIN_SOLUTION} / {END_SOLUTION}")
                cell.source = strip_solution(cell.source, where)
            elif is_test_cell(cell):
                cell.source = strip_hidden_tests(cell.source, where)
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown" and is_answer_cell(cell):
            cell.source = "YOUR ANSWER HERE"
        cell.metadata.pop("execution", None)
        released.cells.append(cell)
    return released


def _with_block(text: str, name: str, body: str) -> str:
    """``text`` with what stands between ``<!-- name:start -->`` and ``<!-- name:end -->`` replaced by ``body``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ReleaseError(f"README has no {start} … {end} markers for the {name} table")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def exercises_table(solutions: Path | str = "solutions") -> str:
    """Every graded exercise of ``solutions/``, from its nbgrader metadata: notebook, grade_id, the
    function (or class) the student writes, points; and the totals."""
    import json

    rows, total, count = ["| notebook | exercise (`grade_id`) | the student writes | points |", "|---|---|---|---|"], 0.0, 0
    for path in sorted(Path(solutions).glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        points = {nbgrader(c)["grade_id"]: float(nbgrader(c).get("points", 0)) for c in cells if is_test_cell(c)}
        for cell in cells:
            if cell.get("cell_type") == "code" and is_answer_cell(cell) and not nbgrader(cell).get("grade"):
                grade_id = nbgrader(cell)["grade_id"]
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                names = re.findall(r"^(?:def|class) (\w+)", source, flags=re.M)
                worth = points.get(grade_id + "-test", 0.0)
                total, count = total + worth, count + 1
                rows.append(f"| {path.stem[:2]} | `{grade_id}` | {', '.join(f'`{n}`' for n in names) or '—'} | {worth:g} |")
    rows.append(f"| | **{count} exercises** | | **{total:g}** |")
    return "\n".join(rows)


def readme_with_tables(text: str, present: set[str] | None = None, solutions: Path | str | None = None) -> str:
    """The README with its generated tables regenerated: the notebooks (from lecture13.course, only
    those in ``present`` when given), the shipped weights (from lecture13/weights/manifest.json) and,
    with ``solutions``, the graded exercises (where the README has an ``exercises`` block)."""
    text = _with_block(text, "notebooks", course.readme_notebook_table(present))
    text = _with_block(text, "weights", weights_table())
    if solutions is not None and "<!-- exercises:start -->" in text:
        text = _with_block(text, "exercises", exercises_table(solutions))
    return text


def release(solutions: Path | str = "solutions", notebooks: Path | str = "notebooks",
            check_only: bool = False, readme: Path | str | None = "README.md") -> list[str]:
    """Write ``notebooks/X`` for every ``solutions/X.ipynb``; stamp the course cells in the
    sources and the README's notebook and weights tables too. With ``check_only`` nothing is written;
    returns the files that are out of date."""
    import nbformat  # imported when used: its schema validator costs ~2 s to import

    solutions, notebooks = Path(solutions), Path(notebooks)
    stale: list[str] = []
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise ReleaseError(f"no notebooks in {solutions}/")
    unknown = {p.name for p in sources} - {entry[0] for entry in course.NOTEBOOKS}
    if unknown:
        raise ReleaseError(f"{sorted(unknown)} not listed in lecture13.course.NOTEBOOKS; add a line for each")
    if readme is not None and Path(readme).exists():
        text = Path(readme).read_text()
        fresh = readme_with_tables(text, {p.name for p in sources}, solutions)
        if fresh != text:
            stale.append(str(readme))
            if not check_only:
                Path(readme).write_text(fresh)
    for src in sources:
        nb = nbformat.read(src, as_version=4)
        before = nbformat.writes(nb)
        stamp_course_cells(nb, src.name, "solutions")
        if nbformat.writes(nb) != before:
            stale.append(str(src))
            if not check_only:
                nbformat.write(nb, src)
        released = student_version(nb, src.name)
        stamp_course_cells(released, src.name, "notebooks")
        target = notebooks / src.name
        text = nbformat.writes(released) + "\n"
        if not target.exists() or target.read_text() != text:
            stale.append(str(target))
            if not check_only:
                notebooks.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    extra = sorted({p.name for p in notebooks.glob("*.ipynb")} - {p.name for p in sources})
    for name in extra:
        stale.append(str(notebooks / name))
        if not check_only:
            (notebooks / name).unlink()
    return stale
