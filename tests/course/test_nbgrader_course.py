"""nbgrader on the course, as a teacher runs it: ``generate_assignment`` gives students no
solution code, and ``autograde`` runs the reference solutions without an error in any cell and
gives them full marks, and the blank student notebooks zero.

The course (``course/nbgrader_config.py`` + ``course/source``) is copied into a temporary
course directory; nbgrader runs as a subprocess of this venv with Jupyter's directories under
the temp dir (``hermetic_env``), so no user kernelspec or config leaks in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from tests.browser._jupyter import hermetic_env
from tests.course.test_course_layout import ASSIGNMENTS, BEGIN, COURSE, END, nbgrader_cells

pytest.importorskip("nbgrader", reason="nbgrader is in the test extra: pip install -e .[test]")
# generate_assignment alone takes 20-50 s on 2 busy cores (gradebook migrations, 4 notebooks)
pytestmark = pytest.mark.slow

GENERATE_S = 300
AUTOGRADE_S = 1500  # 8 notebook runs (4 reference, 4 blank), 4 in each of 2 processes


@dataclass(frozen=True)
class Course:
    root: Path
    env: dict[str, str]

    def start_nbgrader(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "nbgrader", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def nbgrader(self, *args: str, timeout: float) -> None:
        finish_nbgrader(self.start_nbgrader(*args), args, timeout)

    def notebook(self, step: str, *parts: str) -> Path:
        (path,) = self.root.joinpath(step, *parts).glob("*.ipynb")
        return path

    def copy(self, base: Path) -> Course:
        """The course as it stands (gradebook and release included) under ``base``, with
        Jupyter directories of its own, for an nbgrader run beside this one's."""
        root = base / "course"
        shutil.copytree(self.root, root)
        return Course(root, course_env(base / "jupyter"))


def finish_nbgrader(process: subprocess.Popen[str], args: tuple[str, ...], timeout: float) -> None:
    try:
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{stderr[-4000:]}"
    # nbgrader reports per-notebook failures in its log and still exits 0 for some
    assert "[ERROR]" not in stderr and "| ERROR]" not in stderr, stderr


def course_env(jupyter_dirs: Path) -> dict[str, str]:
    env = hermetic_env(jupyter_dirs)
    # nbgrader runs `alembic` (gradebook migrations) and kernels from PATH: this venv first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    base = tmp_path_factory.mktemp("nbgrader")
    root = base / "course"
    root.mkdir()
    shutil.copy(COURSE / "nbgrader_config.py", root)
    shutil.copytree(COURSE / "source", root / "source")
    course = Course(root, course_env(base / "jupyter"))
    course.nbgrader(
        "generate_assignment", "--CourseDirectory.assignment_id=*", "--force", timeout=GENERATE_S
    )
    yield course


def solution_regions(source: str) -> list[str]:
    return re.findall(rf"{BEGIN}\n(.*?){END}", source, re.DOTALL)


def solution_lines(source: str) -> list[str]:
    return [
        line.strip()
        for region in solution_regions(source)
        for line in region.splitlines()
        if line.strip()
    ]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_has_no_solution_code(course: Course, assignment: str) -> None:
    source = nbformat.read(course.notebook("source", assignment), as_version=4)
    student = nbformat.read(course.notebook("release", assignment), as_version=4)
    assert len(student.cells) == len(source.cells)
    student_text = "\n".join(cell.source for cell in student.cells)
    assert BEGIN not in student_text and END not in student_text
    solutions = nbgrader_cells(source, solution=True)
    hidden = [line for cell in solutions for line in solution_lines(cell.source)]
    assert hidden
    student_lines = {line.strip() for line in student_text.splitlines()}
    # generic lines (a bare `)` or `]`) may also appear elsewhere; code lines may not
    leaked = [line for line in hidden if len(line) > 3 and line in student_lines]
    assert not leaked, f"solution code in the student notebook: {leaked}"
    by_id = {cell.metadata["nbgrader"]["grade_id"]: cell for cell in student.cells}
    for cell in solutions:
        stub = by_id[cell.metadata["nbgrader"]["grade_id"]].source
        assert stub.count("raise NotImplementedError()") == len(solution_regions(cell.source))
        # what stays around a region (a function's signature) is handed out
        assert stub.splitlines()[0] == cell.source.splitlines()[0] or cell.source.startswith(BEGIN)
    for cell in nbgrader_cells(source, grade=True):
        assert by_id[cell.metadata["nbgrader"]["grade_id"]].source == cell.source
    assert all(not cell.get("outputs") for cell in student.cells if cell.cell_type == "code")


def test_autograde_full_marks_for_the_reference_and_zero_for_blank(
    course: Course, tmp_path: Path
) -> None:
    # two copies of the course, half of the assignments each, autograded at once: nbgrader runs
    # its notebooks one after another on one core (a kernel each, OMP_NUM_THREADS=1)
    halves = {assignment: course for assignment in ASSIGNMENTS[0::2]}
    other = course.copy(tmp_path)
    halves.update({assignment: other for assignment in ASSIGNMENTS[1::2]})
    for assignment, half in halves.items():
        for student, step in (("reference", "source"), ("blank", "release")):
            target = half.root / "submitted" / student / assignment
            target.mkdir(parents=True)
            shutil.copy(half.notebook(step, assignment), target)
    args = ("autograde", "--CourseDirectory.assignment_id=*", "--create", "--force")
    running = [half.start_nbgrader(*args) for half in (course, other)]
    for process in running:
        finish_nbgrader(process, args, AUTOGRADE_S)

    from nbgrader.api import Gradebook

    points = {
        assignment: sum(
            cell.metadata["nbgrader"]["points"]
            for cell in nbgrader_cells(
                nbformat.read(course.notebook("source", assignment), as_version=4), grade=True
            )
        )
        for assignment in ASSIGNMENTS
    }
    scores = {}
    for half in (course, other):
        with Gradebook(f"sqlite:///{half.root / 'gradebook.db'}") as gradebook:
            for assignment in (a for a, h in halves.items() if h is half):
                for student in ("reference", "blank"):
                    submission = gradebook.find_submission(assignment, student)
                    scores[assignment, student] = (submission.score, submission.max_score)
    expected = {
        **{(a, "reference"): (float(points[a]), float(points[a])) for a in ASSIGNMENTS},
        **{(a, "blank"): (0.0, float(points[a])) for a in ASSIGNMENTS},
    }
    # every cell of the reference solutions runs without an error: this is the end-to-end run
    # of course/source (which is therefore not also run under nbval)
    reference_errors = {a: cell_errors(halves[a], "reference", a) for a in ASSIGNMENTS}
    assert reference_errors == {a: {} for a in ASSIGNMENTS}
    assert scores == expected
    # the blank notebooks failed on the stubs, not on something else (a missing import)
    for assignment in ASSIGNMENTS:
        errors = {name for name, _ in cell_errors(halves[assignment], "blank", assignment).values()}
        assert "NotImplementedError" in errors, (assignment, errors)


def cell_errors(course: Course, student: str, assignment: str) -> dict[str, tuple[str, str]]:
    """grade id -> (exception name, message) of each cell that raised in the autograded run."""
    graded = nbformat.read(course.notebook("autograded", student, assignment), as_version=4)
    return {
        cell.metadata["nbgrader"]["grade_id"]: (output.ename, output.evalue[:300])
        for cell in graded.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    }
