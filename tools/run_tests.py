"""The kit's test command (`make test`): every notebook through `nbdev_test`, then `pytest tests/`.

Fails when either fails, and also when a runner collects nothing: an empty run is never a pass.
Extra arguments are passed to pytest (e.g. `python tools/run_tests.py -k noise`).
"""
import os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def notebooks():
    "Notebooks nbdev_test will run: those under nbs/ not starting with `_` or `.`."
    return sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT/'nbs').parts))


def run(cmd):
    print('$', ' '.join(map(str, cmd)), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout, flush=True)
    print(f'({time.time()-t0:.0f} s)', flush=True)
    return proc


def main(pytest_args):
    expected = notebooks()
    if not expected: sys.exit('No notebooks found under nbs/: nothing to test is a failure.')
    nb = run([BIN/'nbdev_test', '--do_print', '--timing'])
    done = len(re.findall(r'^- Completed ', nb.stdout, flags=re.M))
    if nb.returncode != 0: sys.exit(f'nbdev_test failed (exit {nb.returncode}).')
    if done != len(expected):
        sys.exit(f'nbdev_test completed {done} notebooks, expected {len(expected)}.')
    py = run([sys.executable, '-m', 'pytest', 'tests/', '-q', *pytest_args])
    if py.returncode == 5: sys.exit('pytest collected no tests: that is a failure, not a pass.')
    if py.returncode != 0: sys.exit(f'pytest failed (exit {py.returncode}).')
    print(f'All tests passed: {done} notebooks, pytest ok.')


if __name__ == '__main__': main(sys.argv[1:])
