"""Every tool answers `--help` and does nothing else: no tool writes a file (README.md, the notebooks' recorded outputs)
or runs anything (`run_tests.py` runs no notebook) when asked for its help. And the tools that compute evidence start
themselves again in its arithmetic before they import torch."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_tool_answers_help_and_writes_nothing():
    tools = sorted(p for p in (ROOT/'tools').glob('*.py') if not p.name.startswith('_'))     # _restart.py: a helper of theirs
    watched = [ROOT/'README.md', *sorted((ROOT/'_docs'/'outputs').glob('*.json'))]
    before = {p: p.stat().st_mtime_ns for p in watched if p.exists()}
    procs = {t.name: subprocess.Popen([sys.executable, t, '--help'], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for t in tools}
    said = {name: (p.communicate(timeout=300)[0], p.returncode) for name, p in procs.items()}
    bad = {name: out[-500:] for name, (out, rc) in said.items() if rc != 0 or not ('usage:' in out or len(out.strip()) > 100)}
    assert not bad, bad
    warned = {name: out[-500:] for name, (out, _) in said.items() if 'Warning' in out}    # e.g. a library's deprecation
    assert not warned, warned
    changed = [str(p.relative_to(ROOT)) for p in before if not p.exists() or p.stat().st_mtime_ns != before[p]]
    assert not changed, f'written or removed while the tools answered --help (or by another process meanwhile): {changed}'
    assert len(tools) >= 12                                                        # the audit saw the tools


# the tool run as `python TOOL ARGS`, its restart (os.execve) replaced by a report: was torch imported, are the variables set
RESTART_DRIVER = '''
import json, os, runpy, sys
env_wanted = json.loads(sys.argv[1])
def execve(exe, args, env):
    print('torch imported:', 'torch' in sys.modules, '| variables set:', all(env.get(k) == v for k, v in env_wanted.items()))
    sys.stdout.flush(); os._exit(0)
os.execve = execve
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))      # as `python TOOL` puts its folder first
runpy.run_path(sys.argv[0], run_name='__main__')
print('no restart')
'''


@pytest.mark.parametrize('tool,args,env', [('benchmark.py', ['--quick', '--verify', '1'], 'CPU_ENV'),
                                           ('fingerprints.py', ['--check'], 'FP_ENV'),
                                           ('trace_row.py', ['--csv', 'QUICK', '--row', '0', '--out', 'OUT'], 'CPU_ENV')])
def test_a_tool_restarts_in_its_arithmetic_before_it_imports_torch(tmp_path, tool, args, env):
    """The tools that compute evidence start themselves again in `stitchup_nb.pins`' environment before torch starts
    (the libraries read it then): the restart comes before the first import of torch, so a command starts torch once."""
    from stitchup_nb import pins
    wanted = getattr(pins, env)
    args = [str(pins.RESULTS/'benchmark_quick.csv') if a == 'QUICK' else str(tmp_path/'t.json') if a == 'OUT' else a for a in args]
    clean = {k: v for k, v in os.environ.items() if k not in {**pins.CPU_ENV, **pins.FP_ENV}}
    p = subprocess.run([sys.executable, '-c', RESTART_DRIVER, json.dumps(wanted), str(ROOT/'tools'/tool), *args], cwd=tmp_path,
                       capture_output=True, text=True, env=clean, timeout=300)
    assert p.stdout.strip() == 'torch imported: False | variables set: True', (p.stdout[-500:], p.stderr[-2000:])
    assert not (tmp_path/'t.json').exists()


# the tool run as `python TOOL --help` in its arithmetic already (no restart): which modules its answer imported
HELP_DRIVER = '''
import os, runpy, sys
sys.argv = [sys.argv[1], '--help']
sys.path.insert(0, os.path.dirname(sys.argv[0]))      # as `python TOOL` puts its folder first
try: runpy.run_path(sys.argv[0], run_name='__main__')
except SystemExit: pass
print('torch imported:', 'torch' in sys.modules, '| pandas imported:', 'pandas' in sys.modules)
'''


@pytest.mark.parametrize('tool,env', [('benchmark.py', 'CPU_ENV'), ('fingerprints.py', 'FP_ENV'), ('trace_row.py', 'CPU_ENV')])
def test_the_evidence_tools_answer_help_without_torch(tool, env):
    """The tools that compute evidence import the kit's heavy modules once their command line is read, so `--help` answers
    at once (it took 4 to 5 s when they imported torch first)."""
    from stitchup_nb import pins
    p = subprocess.run([sys.executable, '-c', HELP_DRIVER, str(ROOT/'tools'/tool)], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, **getattr(pins, env)}, timeout=300)
    assert p.stdout.strip().endswith('torch imported: False | pandas imported: False'), (p.stdout[-500:], p.stderr[-2000:])
    assert 'usage:' in p.stdout
