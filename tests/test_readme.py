"""README's measured tables are generated from the committed result files, never typed by hand."""

from __future__ import annotations

from benchmarks import report, report_counting


def test_results_and_grounding_tables_match_the_json():
    assert report.main(["--check"]) == 0, "run: python -m benchmarks.report"


def test_counting_section_matches_the_json():
    assert report_counting.main(["--check"]) == 0, "run: python -m benchmarks.report_counting"


def test_every_result_file_is_rendered_or_named():
    text = report.README.read_text(encoding="utf-8")
    for name, _ in report.ROWS:
        if (report.RESULTS_DIR / f"{name}.json").is_file():
            assert f"bench_{name.split('-')[0].split('_')[0]}" in text, name  # pipeline_rect: bench_pipeline
