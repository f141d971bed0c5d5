"""Every tool answers `--help` and does nothing else: no tool writes a file (README.md, the notebooks' recorded outputs)
or runs anything (`run_tests.py` runs no notebook) when asked for its help."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_tool_answers_help_and_writes_nothing():
    tools = sorted((ROOT/'tools').glob('*.py'))
    watched = [ROOT/'README.md', *sorted((ROOT/'_docs'/'outputs').glob('*.json'))]
    before = {p: p.stat().st_mtime_ns for p in watched if p.exists()}
    procs = {t.name: subprocess.Popen([sys.executable, t, '--help'], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for t in tools}
    said = {name: (p.communicate(timeout=300)[0], p.returncode) for name, p in procs.items()}
    bad = {name: out[-500:] for name, (out, rc) in said.items() if rc != 0 or not ('usage:' in out or len(out.strip()) > 100)}
    assert not bad, bad
    changed = [str(p.relative_to(ROOT)) for p in before if not p.exists() or p.stat().st_mtime_ns != before[p]]
    assert not changed, f'written or removed while the tools answered --help (or by another process meanwhile): {changed}'
    assert len(tools) >= 12                                                        # the audit saw the tools
