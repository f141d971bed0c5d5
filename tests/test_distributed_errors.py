"""Errors of a launch under `torchrun --nproc_per_node 2` (gloo, CPU), said as a user reads them:

- an error every rank meets in `run_training`'s setup, before the ranks' first collective (a damaged checkpoint that each
  reads), is said once, as one process says it; every rank stops, nothing written;
- an error only rank 0 meets inside `main_process_first` (its data) is said by rank 0, named, while rank 1, let on, meets an
  error of another kind (a bug's: a traceback): no rank waits for good, and rank 0's line is not lost;
- a folder another run holds (rank 0 alone locks it) stops rank 0 before the data is read, while rank 1 would go on to
  `main_process_first`'s barrier: every rank stops, rank 0 says it, named, and the holder's run is untouched;
- Ctrl-C while the ranks check their options (torchrun passes it on to each) is said once, by the machine's first process.
- a console script of one process (stitchup_test, stitchup_noise, stitchup_estimate_noise) refuses a launch of several,
  said once, before it reads or writes anything: each rank would write the same file.
"""
import os, textwrap

from tests.conftest import BIN, QUICK
from tests.test_distributed import _torchrun_fails


def _said(err:str) -> list:
    return [l for l in err.splitlines() if l.startswith('stitchup_train')]


def test_a_setup_error_every_rank_meets_is_said_once(tmp_path):
    "`--resume` of a damaged checkpoint that every rank reads: one line, as one process says it, and nothing written."
    # Before, every rank said it: rank 0 as one process, rank 1 naming itself (N lines under --nproc_per_node N)
    bad = tmp_path/'epoch_1.pth'; bad.write_text('not a checkpoint')
    err = _torchrun_fails([BIN/'stitchup_train', *QUICK, '--work_dir', tmp_path/'run', '--resume', bad])
    assert _said(err) == [f'stitchup_train: {bad}: another kind of file, not a stitchup_train checkpoint (an epoch_N.pth, a torch '
                          "archive): pass one of a run's epoch_N.pth, or its work dir"], err[-3000:]
    assert 'Traceback' not in err.split('torch/distributed/elastic')[0], err[-3000:]     # (torchrun's own report follows)
    assert not (tmp_path/'run'/'config.json').exists()


RANKS_DIFFER = textwrap.dedent('''
    # stitchup_train where rank 0 alone cannot read its data (inside main_process_first, which it runs first) and rank 1,
    # let on, meets a bug's error there
    import sys
    from fastai.torch_core import rank_distrib
    import stitchup_nb.cli as cli, stitchup_nb.train as train
    def run_data(*a, **kw):
        if rank_distrib() == 0: raise FileNotFoundError(2, 'no such folder (--data_root)', '/data/node0/VOCdevkit')
        raise TypeError('a bug on rank 1')
    train.run_data = run_data
    sys.argv = ['stitchup_train'] + sys.argv[1:]
    cli.stitchup_train()
''')


def test_rank_0s_setup_error_is_said_while_another_rank_fails_otherwise(tmp_path):
    "Rank 0's error of the run's making is said, named, and rank 1's bug shows its traceback; both stop, none hangs."
    # Before, rank 0 raised inside main_process_first without its barrier: rank 1 waited there until torchrun killed it,
    # and rank 0's line did not name it
    script = tmp_path/'differ.py'; script.write_text(RANKS_DIFFER)
    err = _torchrun_fails([script, *QUICK, '--work_dir', tmp_path/'run'], timeout=120)
    assert _said(err) == ['stitchup_train (rank 0 of 2): /data/node0/VOCdevkit: no such folder (--data_root)'], err[-3000:]
    assert 'TypeError: a bug on rank 1' in err, err[-3000:]
    assert 'Connection closed' not in err, err[-3000:]
    assert not (tmp_path/'run'/'config.json').exists()


WAITS = textwrap.dedent('''
    # stitchup_train whose option checks wait (each rank marks, in the folder READY names, that it is in them): Ctrl-C
    # finds every rank there
    import os, pathlib, sys, time
    import stitchup_nb.cli as cli, stitchup_nb.train as train
    def train_config(**opts):
        pathlib.Path(os.environ['READY'], 'rank' + os.environ['RANK']).touch()
        time.sleep(120)
    train.train_config = train_config
    sys.argv = ['stitchup_train'] + sys.argv[1:]
    cli.stitchup_train()
''')


def test_ctrl_c_before_the_run_began_is_said_once(tmp_path):
    "Ctrl-C while the ranks check their options (torchrun passes it on to each): said once, by the machine's first process."
    # Before, every rank said 'interrupted before the run began' (N lines under --nproc_per_node N)
    import signal, subprocess, time
    from tests.test_distributed import free_port
    script, ready = tmp_path/'waits.py', tmp_path/'ready'
    script.write_text(WAITS); ready.mkdir()
    p = subprocess.Popen([str(c) for c in (BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), script, *QUICK,
                                           '--work_dir', tmp_path/'run')], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', 'READY': str(ready)})
    t0 = time.time()
    while len(list(ready.iterdir())) < 2 and time.time() - t0 < 100 and p.poll() is None: time.sleep(.1)
    p.send_signal(signal.SIGINT)                     # as a terminal's Ctrl-C reaches torchrun
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and len(list(ready.iterdir())) == 2, err[-3000:]
    assert _said(err) == ['stitchup_train: interrupted before the run began; nothing was written'], err[-3000:]
    assert not (tmp_path/'run').exists()


def test_a_folder_in_use_stops_every_rank(tmp_path):
    "Rank 0 alone locks the work dir: where another run holds it, rank 0 says so, named, and no rank waits for good."
    # Before, rank 0 waited in the comparison of the setup's errors while rank 1 waited at main_process_first's barrier,
    # until torchrun's timeout: the setup compared its errors across a collective only rank 1 reached
    from stitchup_nb.runs import lock_work_dir
    work = tmp_path/'run'
    held = lock_work_dir(work)        # another run's, in this process
    try: err = _torchrun_fails([BIN/'stitchup_train', *QUICK, '--work_dir', work], timeout=120)
    finally: held.close()
    assert [l.split(' is in use')[0] for l in _said(err)] == [f'stitchup_train (rank 0 of 2): work_dir {work}'], err[-3000:]
    assert 'Traceback' not in err.split('torch/distributed/elastic')[0], err[-3000:]
    assert not (work/'config.json').exists()


ONE_PROCESS = 'runs in one process, not under a launcher: this launch started 2 (WORLD_SIZE=2), each of which would write the same files; run {} without torchrun'


def test_stitchup_test_under_torchrun_is_refused_once(quick_run):
    "`stitchup_test` scores in one process: under torchrun it says so once, before it reads anything, and writes nothing."
    # Before, each rank scored the checkpoint whole, printed the table and wrote test_metrics.json: the same file, N writers
    work, _ = quick_run
    err = _torchrun_fails([BIN/'stitchup_test', work/'epoch_2.pth'])
    assert [l for l in err.splitlines() if l.startswith('stitchup_test')] == ['stitchup_test: ' + ONE_PROCESS.format('stitchup_test')], err[-3000:]
    assert 'Traceback' not in err.split('torch/distributed/elastic')[0], err[-3000:]
    assert not (work/'test_metrics.json').exists()


def test_the_noise_scripts_under_a_launcher_are_refused(tmp_path):
    """`stitchup_noise` and `stitchup_estimate_noise`, started as a launcher starts rank 0 of 2 (its environment): refused in
    one line, their --out not written. (A rank other than 0 waits for the launcher to stop it: `00k_flags`.)"""
    # Before, each rank ran the script whole and wrote the same --out file
    import subprocess
    env = {**os.environ, 'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '2', 'OMP_NUM_THREADS': '1'}
    for prog, args in (('stitchup_noise', ['--dataset', 'digits-small']), ('stitchup_estimate_noise', ['--dataset', 'digits-small'])):
        out = tmp_path/f'{prog}.out'
        p = subprocess.run([str(BIN/prog), *args, '--out', str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert (p.returncode, p.stdout, p.stderr) == (2, '', f'{prog}: {ONE_PROCESS.format(prog)}\n'), p.stderr[-3000:]
        assert not out.exists()
