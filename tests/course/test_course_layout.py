"""The nbgrader course in ``course/``: every source notebook is in nbgrader's form (checked
without running nbgrader; ``test_nbgrader_course.py`` runs it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

COURSE = Path(__file__).resolve().parents[2] / "course"
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def source_notebook(assignment: str) -> nbformat.NotebookNode:
    (path,) = (COURSE / "source" / assignment).glob("*.ipynb")
    return nbformat.read(path, as_version=4)


def nbgrader_cells(nb: nbformat.NotebookNode, **flags: bool) -> list[nbformat.NotebookNode]:
    return [
        cell
        for cell in nb.cells
        if all(cell.metadata["nbgrader"][key] == value for key, value in flags.items())
    ]


def test_the_course_has_the_four_assignments() -> None:
    assert ASSIGNMENTS == [
        "01_find_the_induction_head",
        "02_agreement_saliency",
        "03_probing_selectivity",
        "04_where_copies_come_from",
    ]


def test_the_config_lists_every_assignment() -> None:
    tree = ast.parse((COURSE / "nbgrader_config.py").read_text(encoding="utf-8"))
    names = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert set(ASSIGNMENTS) <= names


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_is_in_nbgrader_form(assignment: str) -> None:
    nb = source_notebook(assignment)
    nbformat.validate(nb)
    ids = [cell.metadata["nbgrader"]["grade_id"] for cell in nb.cells]
    assert len(ids) == len(set(ids)), "grade ids must be unique within a notebook"
    text = "\n".join(cell.source for cell in nb.cells)
    assert "instructors: delete it" not in text and "Reference solution" not in text
    solutions = nbgrader_cells(nb, solution=True)
    tests = nbgrader_cells(nb, grade=True)
    assert solutions and tests
    for cell in solutions:
        assert cell.cell_type == "code" and not cell.metadata["nbgrader"]["locked"]
        # balanced regions, each with code in it
        regions = re.findall(rf"{BEGIN}\n(.*?){END}", cell.source, re.DOTALL)
        assert regions and cell.source.count(BEGIN) == cell.source.count(END) == len(regions)
        assert all(region.strip() for region in regions)
    for cell in tests:
        meta = cell.metadata["nbgrader"]
        assert cell.cell_type == "code" and meta["locked"] and not meta["solution"]
        assert meta["points"] > 0 and "assert" in cell.source
    # everything a student does not write is read-only
    for cell in nb.cells:
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] != meta["solution"], meta["grade_id"]
    # outputs are not committed: nbgrader would hand them to students
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def test_every_exercise_is_graded() -> None:
    """Each "## Exercise n (k points)" heading announces the points its test cells give."""
    for assignment in ASSIGNMENTS:
        nb = source_notebook(assignment)
        announced = [
            int(points)
            for cell in nb.cells
            if cell.cell_type == "markdown"
            for points in re.findall(r"^## Exercise \d+ \((\d+) points?\)", cell.source, re.M)
        ]
        graded = sum(cell.metadata["nbgrader"]["points"] for cell in nbgrader_cells(nb, grade=True))
        assert announced and sum(announced) == graded, assignment
