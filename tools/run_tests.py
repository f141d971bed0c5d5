"""The kit's test command (`make test`): every notebook through `nbdev_test`, then `pytest tests/`.

Then `tools/fingerprints.py --check` recomputes the behaviour fingerprints the published tables stand on
(`nbs/experiments/results/fingerprints.json`, each recorded machine's parts) and fails if the code no longer
makes them, and `tools/benchmark.py --quick --verify 1` re-runs a random current row of the committed quick grid
(`nbs/experiments/results/benchmark_quick.csv`): exactly on the machine that made it, within the measured
cross-machine tolerance on another (it says which).

The notebooks run through `tools/nbtest.py`, which is nbdev_test keeping each notebook's outputs
under `_docs/outputs/`, so that `make docs-from-tests` renders the pages without running them again.

Fails when either fails, and also when a runner collects nothing: an empty run is never a pass.
Extra arguments are passed to pytest (e.g. `python tools/run_tests.py -k noise`).

`--code-only` (first argument; `make test-lowest`) stops after pytest: the fingerprints and the quick grid's row
stand for the published numbers, which were computed with the exact versions of requirements-lock.txt; another
version of torch or numpy may compute other floating-point results, which is not a fault of the code under test.
"""
import os, re, subprocess, sys, tempfile, time, types
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def notebooks():
    "Notebooks nbdev_test will run: those under nbs/ not starting with `_` or `.`."
    return sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT/'nbs').parts))


def run(cmd):
    "Run a command in the repository, its output printed after it with its time."
    return run_together(cmd)


def run_together(*jobs):
    """Run commands side by side (each a command, or (command, extra environment)), their outputs printed one after
    another; what the first that failed gave, else the last."""
    jobs = [j if isinstance(j, tuple) else (j, {}) for j in jobs]
    for cmd, env in jobs: print('$', *(f'{k}={v}' for k, v in env.items()), *map(str, cmd), flush=True)
    t0, outs = time.time(), []
    with ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile('w+')) for _ in jobs]   # a file each: no pipe to fill
        procs = [subprocess.Popen(cmd, cwd=ROOT, text=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
                 for (cmd, env), log in zip(jobs, logs)]
        for p, log in zip(procs, logs):
            p.wait(); log.seek(0)
            outs.append(types.SimpleNamespace(stdout=log.read(), returncode=p.returncode))
            print(outs[-1].stdout, flush=True)
    print(f'({time.time()-t0:.0f} s)', flush=True)
    return next((o for o in outs if o.returncode != 0), outs[-1])


def main(pytest_args):
    code_only = pytest_args[:1] == ['--code-only']
    if code_only: pytest_args = pytest_args[1:]
    expected = notebooks()
    if not expected: sys.exit('No notebooks found under nbs/: nothing to test is a failure.')
    # fill the disk cache notebooks and tests share, the glyph-pretrained Digits CNN, once, before nbdev_test runs notebooks
    # side by side and each would pretrain it itself; beside it, on the other core, the CNN pretrained under the benchmark's
    # pinned CPU kernels (its own cache file), which the benchmark tool's tests and the quick grid's re-run train with:
    # else a test builds it in the middle of pytest (measured: 88 s of one worker). (Digits-MLT itself is drawn in memory,
    # in seconds, by each process that uses it: no file to fill.)
    from stitchup_nb.pins import CPU_ENV
    pretrain = 'from stitchup_nb.backbones import pretrain_digits_cnn; pretrain_digits_cnn(verbose=False)'
    warm = run_together([sys.executable, '-c', pretrain], ([sys.executable, '-c', pretrain], CPU_ENV))
    if warm.returncode != 0: sys.exit(f'pretraining the Digits CNN for the cache failed (exit {warm.returncode}).')
    nb = run([sys.executable, ROOT/'tools'/'nbtest.py', '--do_print', '--timing'])   # nbdev_test, outputs kept for the docs
    done = len(re.findall(r'^- Completed ', nb.stdout, flags=re.M))
    if nb.returncode != 0: sys.exit(f'nbdev_test failed (exit {nb.returncode}).')
    if done != len(expected):
        sys.exit(f'nbdev_test completed {done} notebooks, expected {len(expected)}.')
    # two workers (pytest-xdist), each test file on one of them, every process one thread (tests/conftest.py);
    # the 25 slowest tests are listed, so a CI log shows where its time goes
    py = run([sys.executable, '-m', 'pytest', 'tests/', '-q', '-n', '2', '--dist', 'loadfile', '--durations', '25', *pytest_args])
    if py.returncode == 5: sys.exit('pytest collected no tests: that is a failure, not a pass.')
    if py.returncode != 0: sys.exit(f'pytest failed (exit {py.returncode}).')
    if code_only: return print(f'All tests passed: {done} notebooks, pytest ok (--code-only: the published numbers not checked).')
    # the published tables stand on fingerprints the code still computes
    fp = run([sys.executable, ROOT/'tools'/'fingerprints.py', '--check', '--jobs', '2'])
    if fp.returncode != 0: sys.exit(f'tools/fingerprints.py --check failed (exit {fp.returncode}).')
    # a published row re-runs to its numbers: one random current row of the quick grid, started with the CPU kernels the
    # tool would restart itself with (one start-up of torch, not two; the restart is tests/test_benchmark_tool.py's)
    ver = run_together(([sys.executable, ROOT/'tools'/'benchmark.py', '--quick', '--verify', '1'], CPU_ENV))
    if ver.returncode != 0: sys.exit(f'benchmark.py --quick --verify 1 failed (exit {ver.returncode}).')
    print(f'All tests passed: {done} notebooks, pytest ok, the fingerprints match the code, a quick-grid row re-ran to its numbers.')


if __name__ == '__main__':
    if {'-h', '--help'} & set(sys.argv[1:]): sys.exit(print(__doc__))     # before any notebook runs: pytest's own help is `pytest -h`
    main(sys.argv[1:])
