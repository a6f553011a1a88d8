"""What ``cvpipe run`` prints: one line per step as it starts and ends, and a live line for long steps.

kfp.local prints, for every task, its executor JSON, the task's whole log and
its outputs (hundreds of lines for a small run, with ANSI colours even into a
file). :class:`StepFeed` stands in for ``sys.stdout`` while a pipeline runs:
it reads kfp.local's lines, keeps each task's log, and prints instead

    ingest     started   10:02:11
    ingest     SUCCESS   4.1s  240 images accepted, 0 items quarantined ...

with the last line the step logged as its one-line result (a user step that
vetoes the run, a function or a component raising ``cvpipe.Veto``, ends
``VETOED`` with its reason). On a terminal a
live line under it shows the running step, its time so far and its latest
log line (rich); colour only on a terminal. A failed step's whole log is
printed, so the error is never hidden. ``cvpipe run -v`` bypasses all this.
"""

from __future__ import annotations

import io
import re
import time
from typing import Any

from rich.console import Console
from rich.text import Text

from components.user_step.api import veto_in_log

__all__ = ["StepFeed"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_VETO = re.compile(r"cvpipe\.[\w.-]+: vetoed the run: (.*)$")
_STEP_LOG = re.compile(r"^\s*\d\d:\d\d:\d\d(?:[.,]\d+)? (?:- \w+ - )?cvpipe\.[\w.-]+: (.*)$")


_MAX_RESULT = 140


def _one_line(text: str) -> str:
    return text if len(text) <= _MAX_RESULT else text[: _MAX_RESULT - 1] + "…"


class StepFeed(io.TextIOBase):
    """A text stream that turns kfp.local's output into one line per step start and end.

    Args:
        console: where the lines go (rich decides colour and live display from whether it is a terminal).
        name_width: the width of the step-name column (the longest task name, for user steps).
    """

    def __init__(self, console: Console, name_width: int = 12):
        self.console = console
        self.name_width = name_width
        self._buf = ""
        self._step: str | None = None
        self._started = 0.0
        self._log: list[str] = []
        self._result = ""
        self._veto: str | None = None
        self._live: Any = None
        self.steps: list[tuple[str, str, float, str]] = []

    def writable(self) -> bool:
        """Always: this is an output stream."""
        return True

    def write(self, s: str) -> int:
        """Takes kfp.local's text; complete lines are handled as they arrive.

        Args:
            s: the text.

        Returns:
            Characters taken.
        """
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._line(_ANSI.sub("", line))
        return len(s)

    def _line(self, line: str) -> None:
        start = _START.search(line)
        if start:
            self._begin(start.group(1))
            return
        end = _END.search(line)
        if end:
            self._finish(end.group(1), end.group(2))
            return
        if self._step is None:
            return
        self._log.append(line)
        veto = _VETO.search(line)
        if veto:
            self._veto = veto.group(1).strip()
        elif (raised := veto_in_log(line)) is not None:  # a user component raised cvpipe.Veto: its traceback's last line
            self._veto = raised
        found = _STEP_LOG.match(line)
        if found and found.group(1).strip():
            self._result = found.group(1).strip()
            if self._live is not None:
                self._live.update(self._status_text())

    def _status_text(self) -> Text:
        took = time.monotonic() - self._started
        return Text(f"{self._step}: running {took:.0f}s  {self._result[:100]}", style="dim")

    def _begin(self, step: str) -> None:
        self._step, self._started, self._log, self._result, self._veto = step, time.monotonic(), [], "", None
        self.console.print(f"[bold]{step:<{self.name_width}}[/bold] started   {time.strftime('%H:%M:%S')}", highlight=False, soft_wrap=True)
        if self.console.is_terminal:
            self._live = self.console.status(self._status_text())
            self._live.start()

    def _finish(self, step: str, status: str) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        took = time.monotonic() - self._started
        ok = status == "SUCCESS"
        colour = "green" if ok else "red"
        result = _one_line(self._result) if ok else "the step's log follows"
        if not ok and self._veto is not None:  # a user step's quality gate said no: its reason is the news, not a traceback
            status, result = "VETOED", self._veto
        ended = Text.assemble((f"{step:<{self.name_width}} ", "bold"), (f"{status:<9}", colour), f" {took:.1f}s  {result}")
        self.console.print(ended, highlight=False, soft_wrap=True)
        if not ok and self._veto is None:
            for logged in self._log:
                self.console.print(Text("    " + logged), soft_wrap=True)
        self.steps.append((step, status, took, self._result))
        self._step = None

    def close(self) -> None:
        """Stops the live line (the run ended, or failed between steps)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._step is not None and self._log:  # interrupted inside a step: show what it said
            for line in self._log[-40:]:
                self.console.print(Text("    " + line), soft_wrap=True)
        super().close()
