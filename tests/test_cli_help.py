"""Every command answers --help fast, with help on every option, and without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hanet.cli import COMMANDS, build_parser

PROBE = """
import sys, time, io, contextlib
t = time.perf_counter()
from hanet.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main([{cmd!r}, "--help"])
    except SystemExit:
        pass
print(time.perf_counter() - t, "torch" in sys.modules, len(out.getvalue()))
"""


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_imports_no_torch(command: str) -> None:
    """What keeps --help fast (0.1-0.2 s here; importing torch alone takes seconds): it loads no torch."""
    res = subprocess.run([sys.executable, "-c", PROBE.format(cmd=command)], capture_output=True, text=True,
                         timeout=60)
    seconds, torch_loaded, chars = res.stdout.split()
    assert torch_loaded == "False", f"hanet {command} --help imports torch"
    assert int(chars) > 100


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_has_help(command: str) -> None:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]

    def actions(p):
        for a in p._actions:
            if a.dest == "help":
                continue
            if hasattr(a, "choices") and isinstance(a.choices, dict):  # nested subcommands (index ...)
                for child in a.choices.values():
                    yield from actions(child)
                continue
            yield a

    missing = [a.option_strings or a.dest for a in actions(sub) if not a.help]
    assert not missing, f"hanet {command}: options without help: {missing}"
