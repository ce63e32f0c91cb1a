"""``python -m llmasos_widgets``: the ``llmasos-widgets`` command line (see ``cli.py``)."""

from llmasos_widgets.cli import run

if __name__ == "__main__":
    run()
