"""tools/gpu_checks.sh is run once, on a lent GPU machine, against a budget of device minutes: a flag a tool refuses there
costs a start of the machine. So on a CPU: the script is valid bash, each of its calls of a tool parses and passes the
tool's own checks of its options (as the script chains them: the first bench_e2e call makes the JSON, the later ones
add to it), and its pytest selection collects the GPU tests it means to run."""
import re, shlex, subprocess, sys
from pathlib import Path

import pytest

from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'tools'/'gpu_checks.sh'


def calls(tmp_path) -> list:
    "Each `python3 tools/X.py ARGS` of the script as (X, [ARGS]), its shell words filled in as the script would."
    text = SCRIPT.read_text()
    text = re.sub(r'\$\(upto \d+\)', '60', text).replace('"$R"', str(tmp_path/'root')).replace('"$OUT/', f'"{tmp_path}/')
    found = re.findall(r'python3 tools/(\w+)\.py ([^\n|]*?)(?:\s+2>&1|\s*$)', text, flags=re.M)
    return [(tool, shlex.split(args)) for tool, args in found]


def test_the_script_is_valid_bash():
    p = subprocess.run(['bash', '-n', str(SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_every_bench_e2e_call_passes_the_tools_checks_in_order(tmp_path):
    e2e = load_tool('bench_e2e')
    ours = [args for tool, args in calls(tmp_path) if tool == 'bench_e2e']
    assert len(ours) >= 4 and all(('--overwrite' in a) == (i == 0) for i, a in enumerate(ours)), ours   # the first call makes the JSON
    for i, args in enumerate(ours):
        ap = e2e.parser()
        ap.error = lambda msg, args=args: pytest.fail(f'tools/gpu_checks.sh: bench_e2e {shlex.join(args)} is refused: {msg}')
        a = ap.parse_args(args)
        want = e2e.wanted_runs(ap, a)
        out = Path(a.out)
        e2e.check_out(ap, a, out)
        assert a.budget and want and out.parent == tmp_path
        if i == 0: out.write_text('{}')           # as the first call leaves it, for the next ones' --append
    runs = {n for args in ours for n in e2e.wanted_runs(e2e.parser(), e2e.parser().parse_args(args))}
    assert runs == {n for n, _, _ in e2e.RUNS}, runs         # every timed run of the tool is asked for by some call


def test_the_bench_speed_call_passes_the_tools_checks(tmp_path, monkeypatch):
    speed = load_tool('bench_speed')
    ours = [args for tool, args in calls(tmp_path) if tool == 'bench_speed']
    assert len(ours) == 1 and '--gpu' in ours[0], ours
    monkeypatch.setattr(speed.torch.cuda, 'is_available', lambda: True)     # its one check that needs the GPU
    monkeypatch.setattr(sys, 'exit', lambda *a: pytest.fail(f'tools/gpu_checks.sh: bench_speed {shlex.join(ours[0])} is refused'))
    a = speed.options(ours[0])
    assert a.gpu and a.model_list == ['digits', 'resnet50'] and Path(a.out).parent == tmp_path


def test_its_pytest_selection_collects_the_gpu_tests():
    line = next(l for l in SCRIPT.read_text().splitlines() if 'python3 -m pytest' in l)
    words = shlex.split(line.split('python3 -m pytest', 1)[1].split('2>&1')[0])
    p = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', *words], cwd=ROOT, capture_output=True, text=True)
    got = [l for l in p.stdout.splitlines() if '::' in l]    # the script's own -q: one line a test
    assert p.returncode == 0 and len(got) >= 5, p.stdout[-2000:] + p.stderr[-2000:]
    assert {l.split('::')[0] for l in got} >= {'tests/test_gpu.py', 'tests/test_losses.py'}, got
