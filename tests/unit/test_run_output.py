"""``cvpipe run``'s default output: one line per step as it starts and ends, the step's result, no colour into a file."""

from __future__ import annotations

import io

from rich.console import Console

from pipelines.cli.progress import StepFeed

KFP_LINES = [
    "10:00:00.001 - INFO - Executing task \x1b[96m'ingest'\x1b[0m\n",
    "10:00:00.002 - INFO - Streamed logs:\n\n",
    '    {"inputs": {"parameterValues": {"spec_json": "{...}"}}, "outputs": {"artifacts": {}}}\n',
    "    2026-12-05 10:00:01.000000: I tensorflow/core/platform/cpu_feature_guard.cc:210] noise\n",
    "    10:00:01 cvpipe.ingest: data/annotations.json: 60 images accepted, 0 items quarantined (none)\n",
    "\n\n",
    "10:00:02.000 - INFO - Task \x1b[96m'ingest'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n",
    "10:00:02.001 - INFO - Task 'ingest' outputs:\n    manifest: Artifact( name='manifest', uri='/x', metadata={} )\n",
    "10:00:02.100 - INFO - Executing task \x1b[96m'validate'\x1b[0m\n",
    "    10:00:03 cvpipe.validate: checking images: 60 done\n",
    "    Traceback (most recent call last):\n",
    "    components.core.errors.DataError: validation failed: 3 findings with policy fail\n",
    "10:00:04.000 - ERROR - Task \x1b[96m'validate'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m\n",
]


def test_one_line_per_step_start_and_end_with_its_result_and_the_log_of_a_failure() -> None:
    out = io.StringIO()
    feed = StepFeed(Console(file=out, width=200))  # a file: no terminal, so no colour and no live line
    for chunk in KFP_LINES:
        feed.write(chunk)
    feed.close()
    lines = out.getvalue().splitlines()
    assert "\x1b[" not in out.getvalue()
    assert lines[0].startswith("ingest") and "started" in lines[0]
    assert lines[1].split()[:2] == ["ingest", "SUCCESS"] and lines[1].endswith("60 images accepted, 0 items quarantined (none)")
    assert lines[2].startswith("validate") and "started" in lines[2]
    assert lines[3].split()[:2] == ["validate", "FAILURE"]
    # a failed step's log follows, so the error is never hidden; a successful step's executor JSON never shows
    assert any("DataError: validation failed" in line for line in lines[4:])
    assert not any("parameterValues" in line or "cpu_feature_guard" in line for line in lines)
    assert [(s, st) for s, st, _, _ in feed.steps] == [("ingest", "SUCCESS"), ("validate", "FAILURE")]


def test_a_long_result_stays_on_one_line() -> None:
    out = io.StringIO()
    feed = StepFeed(Console(file=out, width=80))
    feed.write("10:00:00.001 - INFO - Executing task 'evaluate'\n")
    feed.write("    10:00:01 cvpipe.evaluate: " + "map = 0.5; " * 40 + "\n")
    feed.write("10:00:02.000 - INFO - Task 'evaluate' finished with status SUCCESS\n")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].endswith("…") and len(lines[1]) < 200


def test_colour_only_on_a_terminal() -> None:
    out = io.StringIO()
    feed = StepFeed(Console(file=out, width=200, force_terminal=True))
    for chunk in KFP_LINES[:7]:
        feed.write(chunk)
    feed.close()
    assert "\x1b[" in out.getvalue()
