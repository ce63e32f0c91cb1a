"""The headless demo (README: `bash scripts/demo.sh --report report.html`) on the bundled model."""

from __future__ import annotations

from llmasos_widgets.demo import main


def test_headless_demo_writes_a_report_and_finds_the_subject(tmp_path, capsys):
    report = tmp_path / "report.html"
    assert main(["--report", str(report)]) == 0
    page = report.read_text(encoding="utf-8")
    assert "Gradient saliency" in page and "Logit lens" in page
    out = capsys.readouterr().out
    # the agreement contrast is driven by the subject "keys", not the attractor "cabinet"
    assert "(gradient): keys " in out
    assert "top induction heads: L1." in out
