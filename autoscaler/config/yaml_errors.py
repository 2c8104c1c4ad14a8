"""YAML syntax errors in one line: where (line, column) and the parser's own phrase, never the source text.

PyYAML's message quotes the offending line with a caret under it, over six to eight lines. The files read
here (profiles, scenarios) may hold what an error must not repeat into a status condition or a log, and a
command-line error is one line.
"""

from __future__ import annotations

import yaml


def describe(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem or 'syntax error'}"
    return type(error).__name__
