"""One line from an exception (what the command line prints and what wrapped errors quote), and the exception
an interrupted run ends with.

TorchScript errors (``torch.jit.Error``, and OpenMM's exceptions that carry one) hold the interpreter's traceback
with the message raised inside the model on the last line (``builtins.RuntimeError: maskpot: ...``); that
line is the one that says what happened.
"""

from __future__ import annotations

import re

__all__ = ["Interrupted", "first_line"]

_RAISED = re.compile(r"^\s*(?:builtins\.)?[A-Za-z_][\w.]*(?:Error|Exception): (.+)$")
MAX_LENGTH = 300


class Interrupted(Exception):
    """A run stopped by Ctrl-C, with what it kept: library code raises it (``from`` the KeyboardInterrupt) after
    saving what it can; the command line prints ``interrupted: <message>`` and exits with status 130."""


def first_line(exc: BaseException | str) -> str:
    """The line of ``exc``'s message (or of a program's output) that says what went wrong, at most
    ``MAX_LENGTH`` characters.

    Plain exceptions give their first non-empty line (the type's name when the message is empty); text with a
    TorchScript traceback gives the message raised inside the model, without its type prefix.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__ if isinstance(exc, BaseException) else ""
    line = lines[0]
    if any("TorchScript" in text for text in lines):
        raised = [m.group(1) for m in map(_RAISED.match, lines) if m]
        if raised:
            line = raised[-1]
    return line if len(line) <= MAX_LENGTH else line[:MAX_LENGTH - 3] + "..."
