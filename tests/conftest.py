"""Shared pytest fixtures: tiny VOC / COCO / appendix folders in the real formats (see `stitchup_nb.fixtures`, nbs/00d_fixtures),
and one short CLI training run that the CLI and reliability tests share (`quick_run`)."""
import importlib.util, os, shutil, subprocess, sys
from pathlib import Path

# One PyTorch thread a process, for the whole suite and every process it starts (set before torch is imported): the
# suite runs two test files at a time on two cores (pytest-xdist), and two threads a process would only contend, each
# spinning while the other's process holds its core. No test's numbers depend on it: a test compares runs made alike,
# and a benchmark row re-runs with the threads it records (tools/benchmark.py --threads).
os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

import pytest

from stitchup_nb.fixtures import make_appendix, make_coco, make_voc


@pytest.fixture
def voc(tmp_path):
    "A fresh tiny VOCdevkit (VOC2007 + VOC2012); see `make_voc` for what it returns."
    return make_voc(tmp_path)


@pytest.fixture
def coco(tmp_path):
    "A fresh tiny COCO 2017 layout (train2017, val2017, annotations); see `make_coco`."
    return make_coco(tmp_path)


@pytest.fixture
def voc_appendix(voc, tmp_path):
    "VOC-MLT-style appendix for the first 10 VOC2012 fixture images (clean file + 0.5 and 0.7 noise)."
    y = voc['VOC2012']
    return make_appendix(tmp_path/'appendix'/'VOCdevkit'/'longtail2012', y['ids'][:10], y['labels'][:10],
                         noise_rates=(0.5, 0.7))


@pytest.fixture
def coco_appendix(coco, tmp_path):
    "COCO-MLT-style appendix for 10 train2017 fixture images, id file `img_id.pkl` as plain text, no clean file."
    y = coco['train2017']
    return make_appendix(tmp_path/'appendix'/'coco'/'longtail2017', y['ids'][1:11], y['labels'][1:11],
                         id_file='img_id.pkl', clean_file=False)


BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def load_tool(name):
    "The script `tools/<name>.py` as a module (tools/ is not a package), for a test to call its functions or patch them."
    if str(ROOT/'tools') not in sys.path: sys.path.insert(0, str(ROOT/'tools'))     # its helpers, as run: tools/_restart.py
    spec = importlib.util.spec_from_file_location(f'{name}_tool', ROOT/'tools'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def locked() -> dict:
    "requirements-lock.txt as {canonical package name: exact version}."
    from packaging.utils import canonicalize_name
    lines = (ROOT/'requirements-lock.txt').read_text().splitlines()
    return {canonicalize_name(n): v for n, v in (l.split('==') for l in lines if '==' in l and not l.startswith('#'))}
# the full method as the preset sets it (stitchup_nb.methods), shortened: 2 epochs of the 304-image Digits-MLT
QUICK = ['--dataset', 'digits-small', '--noise_rate', '0.5', '--epochs', '2', '--warmup_iters', '10', '--quiet']


def run_cli(*args, cwd=None):
    "Run a console script to completion; fail with its output unless it exits with status 0. Returns stdout."
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, f'{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout


@pytest.fixture(scope='session')
def quick_run(tmp_path_factory):
    """`stitchup_train` with the QUICK options, uninterrupted, on Digits-MLT-Noise-0.5 (CPU): (work_dir, stdout).

    Under pytest-xdist the run is made once for all workers (the first to need it makes it, under a lock, in the run's
    shared temporary folder) and each worker gets its own copy of the folder, as if it had made it: the run is
    deterministic (tests/test_reliability.py), and a test may write beside its checkpoints (stitchup_test does)."""
    if not os.environ.get('PYTEST_XDIST_WORKER'):
        work = tmp_path_factory.mktemp('run')
        return work, run_cli(BIN/'stitchup_train', *QUICK, '--work_dir', work)
    from filelock import FileLock
    shared = tmp_path_factory.getbasetemp().parent/'quick_run'       # the folder every worker's temporary folder is in
    with FileLock(f'{shared}.lock'):
        if not (shared/'stdout.txt').is_file():
            out = run_cli(BIN/'stitchup_train', *QUICK, '--work_dir', shared/'run')
            (shared/'stdout.txt').write_text(out)                     # written last: the run is complete
    work = tmp_path_factory.mktemp('run')
    shutil.copytree(shared/'run', work, dirs_exist_ok=True)
    return work, (shared/'stdout.txt').read_text()
