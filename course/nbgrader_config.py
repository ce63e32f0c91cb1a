"""nbgrader configuration of the llmasos-widgets course (run nbgrader from this directory).

Layout (nbgrader's defaults): ``source/<assignment>/<notebook>.ipynb`` holds the instructor
versions with solutions and tests (committed, run under nbval by the test suite);
``release/``, ``submitted/``, ``autograded/``, ``feedback/`` and ``gradebook.db`` are made by
nbgrader and not committed. See docs/course.md.
"""

c = get_config()  # noqa: F821 -- injected by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "llmasos-widgets"
c.CourseDirectory.db_assignments = [
    {"name": "01_find_the_induction_head"},
    {"name": "02_agreement_saliency"},
    {"name": "03_probing_selectivity"},
    {"name": "04_where_copies_come_from"},
]

# The bundled model loads and explains in seconds, but the probing, saliency and ablation
# exercises run dozens of forward/backward passes: 30 s per cell (nbgrader's default) is too
# tight, and on a 2-core machine shared with other jobs one cell took minutes.
c.Execute.timeout = 600
# Student notebooks get this in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
