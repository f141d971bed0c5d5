"""How a tool starts itself again in the arithmetic its evidence is computed in (stitchup_nb.pins: CPU_ENV for the
benchmark's rows, FP_ENV for the fingerprints) before torch starts: the libraries read the variables then, never after.
A module of the tools, not of the package, which starts no process (tests/test_untrusted.py)."""
import os, sys

from stitchup_nb.pins import in_force


def restart_in(env:dict, script, argv=None) -> None:
    """Replace this process by `python script ARGV` with `env` added to its environment (`os.execve`: the same process, so
    a terminal's Ctrl-C and a parent's wait still reach it), unless every variable of `env` already has its value. `argv`:
    the arguments (default `sys.argv[1:]`). Call it before torch is imported: one start-up of torch per command."""
    if in_force(env): return
    os.execve(sys.executable, [sys.executable, str(script), *(sys.argv[1:] if argv is None else argv)], {**os.environ, **env})
