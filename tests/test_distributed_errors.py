"""Multi-process launches that must fail, and how they fail (CPU, gloo; the launches that train are tests/test_distributed.py's,
a file of its own so that the two run side by side under `pytest -n 2 --dist loadfile`):

- a non-finite loss on one rank only stops every rank at the same step: one message, from rank 0,
  naming the bad rank; no peer dies on a broken connection; no checkpoint of the bad epoch;
- a method that trains in one process (confident learning) is refused by name before anything is written;
- an error on one rank is said by that rank, named, and leaves the work dir without a run; one every rank meets
  (a flag's value, an argument the parser refuses) is said once; an option only one rank finds wrong is said by it;
- an error every rank meets in `run_training`'s setup (a damaged checkpoint that each reads) is said once, as one process
  says it; every rank stops, nothing written;
- an error only rank 0 meets inside `main_process_first` (its data) is said by rank 0, named, while rank 1, let on, meets an
  error of another kind (a bug's: a traceback): no rank waits for good, and rank 0's line is not lost;
- a folder another run holds (rank 0 alone locks it) stops rank 0 before the data is read, while rank 1 would go on to
  `main_process_first`'s barrier: every rank stops, rank 0 says it, named, and the holder's run is untouched;
- Ctrl-C while the ranks check their options (torchrun passes it on to each) is said once, by the machine's first process;
- a console script of one process (stitchup_test, stitchup_noise, stitchup_estimate_noise) refuses a launch of several,
  said once, before it reads or writes anything: each rank would write the same file;
- a process that no launcher started (WORLD_SIZE and LOCAL_RANK inherited) says that refusal at once, naming its rank:
  no launcher will stop it; a launched program's child (its parent started with the launch's variables) runs, as one process;
- stitchup_train started by a launched program (a rank's subprocess.run) refuses at once, naming its rank and the ways out,
  before anything is written: it would join its parent's launch as that rank and hang there, silent;
- under mpirun or srun, which set no WORLD_SIZE, every console script refuses before it reads or writes anything:
  stitchup_train naming torchrun, a script of one process the command to leave out;
- an error in writing the run's first file (`config.json`, which rank 0 alone writes: a full disk) is said by rank 0, named,
  and every rank stops: rank 0 exited inside the process group while rank 1 waited in DDP's first broadcast;
- so is an error in writing an epoch's checkpoint (rank 0 alone writes it, as it writes metrics.json): rank 0 exited while
  rank 1 waited in the next epoch's collectives; and in writing the final metrics.json, after the scoring: rank 0 exited
  while rank 1 waited in the barrier of leaving the process group.
"""
import os, subprocess, sys, textwrap

import pytest

from stitchup_nb.distributed import free_port

from tests.conftest import BIN, QUICK


POISON = textwrap.dedent('''
    # stitchup_train with one rank's batch poisoned: NaN images into the balanced branch on rank 1 at one
    # iteration of epoch 0 (POISON_ITER: a number or "last"); CHECK_EVERY sets CoLearning's NaN-look interval
    import os, sys
    from fastai.callback.core import Callback
    from fastai.torch_core import rank_distrib
    import stitchup_nb.cli as cli, stitchup_nb.train as train
    from stitchup_nb.colearn import CoLearning

    class Poison(Callback):
        order = 20
        def before_fit(self):
            self.learn.cbs.filter(lambda c: isinstance(c, CoLearning))[0].check_every = int(os.environ['CHECK_EVERY'])
        def before_batch(self):
            at = os.environ['POISON_ITER']
            at = self.n_iter - 1 if at == 'last' else int(at)
            if self.training and rank_distrib() == 1 and self.epoch == 0 and self.iter == at:
                xs = list(self.xb[0]); xs[1] = xs[1] * float('nan'); self.learn.xb = (tuple(xs),) + tuple(self.xb[1:])

    make = train.colearner
    train.colearner = lambda *a, cbs=(), **kw: make(*a, cbs=list(cbs) + [Poison()], **kw)
    sys.argv = ['stitchup_train'] + sys.argv[1:]
    cli.stitchup_train()
''')


@pytest.mark.parametrize('every,at', [(1, '2'),            # looked at every step (the CPU default): stops at once
                                      (1000, 'last')])     # looked at only at the epoch's end, the bad step its last
def test_nan_on_one_rank_stops_every_rank_together(tmp_path, every, at):
    # Before the ranks compared records, rank 1 quit alone: rank 0 went on into a collective with it and died on
    # gloo's "Connection closed by peer" (a traceback), or was killed by torchrun with the rank never named.
    script, work = tmp_path/'poison.py', tmp_path/'run'
    script.write_text(POISON)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'CHECK_EVERY': str(every), 'POISON_ITER': at}
    p = subprocess.run([str(c) for c in (BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), script,
                                         *QUICK, '--work_dir', work)], capture_output=True, text=True, env=env, timeout=600)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-3000:]
    assert out.count('stitchup_train: non-finite loss') == 1, out[-3000:]          # rank 0 alone reports
    assert "non-finite loss in branch ['balanced'] at epoch 0, iteration" in out and 'on rank 1;' in out, out[-3000:]
    if at != 'last': assert 'iteration 2 on rank 1' in out
    # (torchrun may still SIGTERM the rank that exits second, already past the group: harmless, the status is 1 either way)
    assert 'Connection closed' not in out and '[rank0]: Traceback' not in out and '[rank1]: Traceback' not in out, out[-3000:]
    assert sorted(q.name for q in work.iterdir()) == ['.lock', 'config.json']      # the bad epoch was never saved


def test_a_one_process_peer_is_refused_under_torchrun(tmp_path):
    "confident_learning trains its fold models in one process: under torchrun it is refused by name, before anything is written."
    # Before, its fold models' collectives met the ranks waiting in main_process_first's barrier: both ranks hung, for good
    work = tmp_path/'cl'
    p = subprocess.run([str(c) for c in (BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), BIN/'stitchup_train',
                                         *QUICK, '--method', 'confident_learning', '--work_dir', work)],
                       capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, timeout=120)
    assert p.returncode != 0
    assert "stitchup_train: method 'confident_learning' cannot train on 2 processes" in p.stderr, p.stderr[-3000:]
    assert not work.exists()


RANK_FAILS = textwrap.dedent('''
    # stitchup_train where rank 1 alone cannot read its data (a folder missing on its machine only)
    import sys
    from fastai.torch_core import rank_distrib
    import stitchup_nb.cli as cli, stitchup_nb.train as train
    real = train.run_data
    def run_data(*a, **kw):
        if rank_distrib() == 1: raise FileNotFoundError(2, 'no such folder (--data_root)', '/data/node1/VOCdevkit')
        return real(*a, **kw)
    train.run_data = run_data
    sys.argv = ['stitchup_train'] + sys.argv[1:]
    cli.stitchup_train()
''')


def test_an_error_on_one_rank_is_said_by_it_and_writes_nothing(tmp_path):
    "A rank that cannot build its run names itself, and rank 0 writes no config.json: the folder is left as it was."
    # Before, the message did not say which rank met the error, and rank 0, built first, had written config.json: a
    # second try into the folder was refused as a run already there
    script, work = tmp_path/'fails.py', tmp_path/'run'
    script.write_text(RANK_FAILS)
    err = _torchrun_fails([script, *QUICK, '--work_dir', work])
    assert 'stitchup_train (rank 1 of 2): /data/node1/VOCdevkit: no such folder (--data_root)' in err, err[-3000:]
    assert not (work/'config.json').exists(), sorted(q.name for q in work.iterdir())


def _torchrun_fails(argv, timeout=300):
    "stitchup_train (or a script) under `torchrun --nproc_per_node 2` with `argv`, which must fail: its stderr."
    p = subprocess.run([str(c) for c in (BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), *argv)],
                       capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, timeout=timeout)
    assert p.returncode != 0, p.stderr[-3000:]
    return p.stderr


@pytest.mark.parametrize('bad,said', [(['--bs', '1'], 'stitchup_train: --bs must be an integer >= 2'),        # an option's value
                                      (['--bs', 'x'], "stitchup_train: argument --bs: invalid int value: 'x'"),   # argparse's refusal
                                      (['--bss', '3'], 'stitchup_train: unknown flag --bss (did you mean --bs?)')])
def test_an_error_every_rank_meets_is_said_once(tmp_path, bad, said):
    "An error of the flags, the same on every rank, is said once, by rank 0, as one process says it; the launch fails, nothing written."
    # Before, every rank said it: rank 0 as one process, the others naming themselves, 8 lines under --nproc_per_node 8
    err = _torchrun_fails([BIN/'stitchup_train', *QUICK, *bad, '--work_dir', tmp_path/'run'])
    lines = [l for l in err.splitlines() if l.startswith('stitchup_train')]
    assert len(lines) == 1 and lines[0].startswith(said), err[-3000:]
    assert not (tmp_path/'run').exists()


RANK_RESUMES = textwrap.dedent('''
    # stitchup_train where rank 1 alone is given a checkpoint that is not there (a file missing on its machine's disk)
    import os, sys
    import stitchup_nb.cli as cli
    sys.argv = ['stitchup_train'] + sys.argv[1:] + (['--resume', '/nowhere/epoch_1.pth'] if os.environ['RANK'] == '1' else [])
    cli.stitchup_train()
''')


def test_an_option_error_of_one_rank_is_said_by_it(tmp_path):
    "An option only one rank finds wrong (its checkpoint missing on its machine) is said by that rank, named; every rank stops."
    script = tmp_path/'resumes.py'; script.write_text(RANK_RESUMES)
    err = _torchrun_fails([script, *QUICK, '--work_dir', tmp_path/'run'])
    lines = [l for l in err.splitlines() if l.startswith('stitchup_train')]
    assert lines == ["stitchup_train (rank 1 of 2): --resume must be 'auto' or an existing checkpoint file, got '/nowhere/epoch_1.pth'"], err[-3000:]
    assert not (tmp_path/'run').exists()                  # rank 0, whose options passed, did not go on


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
    import signal, time
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


ONE_PROCESS = ('runs in one process, not under a launcher: this launch started 2 (WORLD_SIZE=2), each of which would write the same files; '
               'run {0} without torchrun (where no launcher started it, WORLD_SIZE=2 came from its environment: run WORLD_SIZE=1 {0} ...)')


def test_stitchup_test_under_torchrun_is_refused_once(quick_run):
    "`stitchup_test` scores in one process: under torchrun it says so once, before it reads anything, and writes nothing."
    # Before, each rank scored the checkpoint whole, printed the table and wrote test_metrics.json: the same file, N writers
    work, _ = quick_run
    scores = work/'test_metrics.json'      # another test of this worker's copy of the run may have written it: left as it is
    stamp = lambda: (scores.stat().st_mtime_ns, scores.read_bytes()) if scores.exists() else None
    was = stamp()
    err = _torchrun_fails([BIN/'stitchup_test', work/'epoch_2.pth'])
    assert [l for l in err.splitlines() if l.startswith('stitchup_test')] == ['stitchup_test: ' + ONE_PROCESS.format('stitchup_test')], err[-3000:]
    assert 'Traceback' not in err.split('torch/distributed/elastic')[0], err[-3000:]
    assert stamp() == was                  # nothing written


def test_the_noise_scripts_under_a_launcher_are_refused(tmp_path):
    """`stitchup_noise` and `stitchup_estimate_noise`, started as a launcher starts rank 0 of 2 (its environment): refused in
    one line, their --out not written, the line naming WORLD_SIZE=1 for an environment that inherited WORLD_SIZE, which then
    runs. (A rank other than 0 waits for the launcher to stop it: `00k_flags`.)"""
    # Before, each rank ran the script whole and wrote the same --out file
    import subprocess
    env = {**os.environ, 'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '2', 'OMP_NUM_THREADS': '1'}
    for prog, args in (('stitchup_noise', ['--dataset', 'digits-small']), ('stitchup_estimate_noise', ['--dataset', 'digits-small'])):
        out = tmp_path/f'{prog}.out'
        p = subprocess.run([str(BIN/prog), *args, '--out', str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert (p.returncode, p.stdout, p.stderr) == (2, '', f'{prog}: {ONE_PROCESS.format(prog)}\n'), p.stderr[-3000:]
        assert not out.exists()
    # the way out the line names where no launcher started it (WORLD_SIZE inherited, here with a rank): WORLD_SIZE=1 runs
    out = tmp_path/'inherited.out'
    p = subprocess.run([str(BIN/'stitchup_noise'), '--dataset', 'digits-small', '--out', str(out)], capture_output=True, text=True,
                       env={**env, 'RANK': '1', 'LOCAL_RANK': '1', 'WORLD_SIZE': '1'}, timeout=300)
    assert p.returncode == 0 and out.exists(), p.stderr[-3000:]


FULL_DISK = textwrap.dedent('''
    # stitchup_train where rank 0, which alone writes the run's files, meets a full disk as it writes FILE (through
    # stitchup_nb.MODULE's FUNC, its path the argument AT)
    import sys
    import stitchup_nb.cli as cli, stitchup_nb.MODULE as m
    was = m.FUNC
    def fails(*a, **kw):
        if a[AT].name == 'FILE': raise OSError(28, 'No space left on device', str(a[AT]))
        return was(*a, **kw)
    m.FUNC = fails
    sys.argv = ['stitchup_train'] + sys.argv[1:]
    cli.stitchup_train()
''')


@pytest.mark.parametrize('module,func,at,file,left,more', [
    # config.json, written once every rank has set its run up. Before, rank 0 said it and exited inside the process group
    # while rank 1 waited in DDP's first broadcast: 'Connection closed by peer' (its traceback), rank 0 aborted at exit
    # (-6), or the launch hung until it was killed
    ('train', 'write_json', 1, 'config.json', None, []),
    # epoch 1's checkpoint (epoch_2.pth). Before, rank 1 went on into the scoring's collectives (the last epoch's) or the
    # next epoch's: 'Connection closed by peer', or a hang; epoch_1.pth must stay whole
    ('checkpoints', 'atomic_write', 0, 'epoch_2.pth', ['.lock', 'config.json', 'epoch_1.pth', 'metrics.json'], []),
    # the final metrics.json, once the test set is scored (train's write_json: the epochs' rows go through checkpoints').
    # Before, rank 1 waited in the barrier of leaving the process group: 'Connection closed by peer' (its traceback), or
    # killed by torchrun. One epoch: the cheapest launch that scores (this case costs about 30 s on 2 CPU cores)
    ('train', 'write_json', 1, 'metrics.json', ['.lock', 'config.json', 'epoch_1.pth', 'metrics.json'], ['--epochs', '1'])])
def test_rank_0s_error_in_writing_a_run_file_stops_every_rank(tmp_path, module, func, at, file, left, more):
    "A full disk as rank 0 writes a run's file: rank 0 says it, named, and rank 1 stops with it, quietly, left in no collective."
    script, work = tmp_path/'no_space.py', tmp_path/'run'
    script.write_text(FULL_DISK.replace('MODULE', module).replace('FUNC', func).replace('AT', str(at)).replace('FILE', file))
    err = _torchrun_fails([script, *QUICK, *more, '--work_dir', work], timeout=120)
    assert _said(err) == [f"stitchup_train (rank 0 of 2): {work/file}: No space left on device"], err[-3000:]
    assert 'Traceback' not in err.split('torch/distributed/elastic')[0], err[-3000:]
    assert 'Connection closed' not in err, err[-3000:]
    if left is not None: assert sorted(q.name for q in work.iterdir()) == left


def test_a_process_no_launcher_started_refuses_at_once(tmp_path):
    """A console script of one process whose WORLD_SIZE and LOCAL_RANK it inherited (a cluster job's shell: no MASTER_ADDR,
    MASTER_PORT or TORCHELASTIC_RUN_ID, which a launcher sets) says its refusal at once, naming its rank: no launcher will
    stop it, so it waits for none (`00k_flags`' `_launcher_started`)."""
    # Before, a LOCAL_RANK other than 0 waited 60 s (_STOPPED_WITHIN) for a launcher to stop it, then spoke
    env = {k: v for k, v in os.environ.items() if k not in ('MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_RUN_ID')}
    env.update(RANK='1', LOCAL_RANK='1', WORLD_SIZE='2', OMP_NUM_THREADS='1')
    out = tmp_path/'noise.out'
    p = subprocess.run([str(BIN/'stitchup_noise'), '--dataset', 'digits-small', '--out', str(out)], capture_output=True,
                       text=True, env=env, timeout=40)
    assert (p.returncode, p.stderr) == (2, f"stitchup_noise (rank 1 of 2): {ONE_PROCESS.format('stitchup_noise')}\n"), p.stderr[-3000:]
    assert not out.exists()


def test_the_console_scripts_under_mpirun_or_srun_are_refused(tmp_path):
    """Started as mpirun (Open MPI) or srun starts the first of 2 processes (their variables, no WORLD_SIZE): stitchup_train
    is refused, naming torchrun and accelerate launch, and stitchup_noise, naming the command to leave out; nothing written."""
    # Before, neither launcher was seen: each process ran the script whole, N trainings of one --work_dir, N writers of one --out
    clean = {k: v for k, v in os.environ.items() if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK')}
    mpirun = {'OMPI_COMM_WORLD_SIZE': '2', 'OMPI_COMM_WORLD_RANK': '0', 'OMPI_COMM_WORLD_LOCAL_RANK': '0'}
    work = tmp_path/'run'
    p = subprocess.run([str(c) for c in (BIN/'stitchup_train', *QUICK, '--work_dir', work)], capture_output=True, text=True,
                       env={**clean, **mpirun, 'OMP_NUM_THREADS': '1'}, timeout=300)
    assert (p.returncode, p.stdout) == (2, ''), p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stderr == ('stitchup_train: mpirun/mpiexec started 2 processes (OMPI_COMM_WORLD_SIZE=2), which stitchup_train does not join '
                        'into one run (it reads the WORLD_SIZE, RANK and MASTER_ADDR that torchrun sets): each would train the whole '
                        'run into the same --work_dir; launch it with torchrun --nproc_per_node 2 $(which stitchup_train) ... or accelerate '
                        'launch, or run it in one process without mpirun/mpiexec (where no launcher started it, OMPI_COMM_WORLD_SIZE=2 came '
                        'from its environment: run OMPI_COMM_WORLD_SIZE=1 stitchup_train ...)\n'), p.stderr[-3000:]
    assert not work.exists()
    out, srun = tmp_path/'noise.out', {'SLURM_STEP_NUM_TASKS': '2', 'SLURM_NTASKS': '2', 'SLURM_PROCID': '1', 'SLURM_LOCALID': '1'}
    p = subprocess.run([str(BIN/'stitchup_noise'), '--dataset', 'digits-small', '--out', str(out)], capture_output=True, text=True,
                       env={**clean, **srun}, timeout=300)
    assert p.returncode == 2 and p.stderr.startswith('stitchup_noise (rank 1 of 2): runs in one process, not under a launcher: '
                                                     'srun started 2 (SLURM_STEP_NUM_TASKS=2)'), p.stderr[-3000:]
    assert not out.exists()


def test_a_launched_processs_child_runs_as_one_process(tmp_path):
    """A console script of one process started by a launched process (a training script's `subprocess.run(['stitchup_noise',
    ...])`) inherits all of torchrun's variables, and its parent started with them: it is one process, started once, and
    runs as one, its inherited rank and world ignored (`00k_flags`' `_one_process`, `_leave_launch`). Its parent, a launched
    process itself (a launcher did not start with the variables it gives), counts as launched (`_launcher_started`). Inside
    an srun step (`srun torchrun ...`) it runs too: srun's variables, left once torchrun's are dropped, are inherited as well."""
    # Before, it was refused as one of 2 processes ('runs in one process, not under a launcher'), exit status 2, nothing written
    launched = {**os.environ, 'RANK': '1', 'LOCAL_RANK': '1', 'WORLD_SIZE': '2', 'MASTER_ADDR': '127.0.0.1',
                'MASTER_PORT': str(free_port()), 'TORCHELASTIC_RUN_ID': 'none', 'OMP_NUM_THREADS': '1'}
    # inside an srun step of 2 too (`srun torchrun ...`): its torchrun variables dropped, srun's are left, which its parent
    # started with; before, refused as one of srun's 2 ('run stitchup_noise without srun'), exit status 2
    srun = {'SLURM_STEP_NUM_TASKS': '2', 'SLURM_PROCID': '1', 'SLURM_LOCALID': '0'}
    for i, env in enumerate((launched, {**launched, **srun})):
        out = tmp_path/f'noise{i}.out'
        parent = (f'import subprocess, sys; p = subprocess.run([{str(BIN/"stitchup_noise")!r}, "--dataset", "digits-small", "--out", '
                  f'{str(out)!r}], capture_output=True, text=True); sys.stderr.write(p.stderr); sys.exit(p.returncode)')
        p = subprocess.run([sys.executable, '-c', parent], capture_output=True, text=True, env=env, timeout=120)
        assert (p.returncode, p.stderr) == (0, ''), (i, p.stderr[-3000:])
        assert out.is_file()
    # the same process as a launcher's: its parent (this test) did not start with the variables, so it counts as launched
    probe = 'from stitchup_nb.flags import _launcher_started; print(_launcher_started())'
    got = [subprocess.run([sys.executable, '-c', c], capture_output=True, text=True, env=launched, timeout=60).stdout.strip()
           for c in (probe, f'import subprocess, sys; subprocess.run([sys.executable, "-c", {probe!r}])')]
    assert got == ['True', 'False'], got


def test_a_shell_torchrun_started_is_its_launched_process(tmp_path):
    """`torchrun --no-python job.sh`: the shell is the process torchrun started and watches, and the console script its
    child, with the shell's launch variables. It is launched all the same: its argument error is said once, by rank 0, as
    without the shell (`00k_flags`' `_launcher_started` looks past a shell to the process that started it)."""
    # Before, the shell looked like a launched program whose child no launcher watches: rank 1 said it too, at once
    out = tmp_path/'noise.out'
    job = tmp_path/'job.sh'
    job.write_text(f'#!/bin/sh\n{BIN/"stitchup_noise"} --dataset digits-small --out {out}\nexit $?\n')
    job.chmod(0o755)
    err = _torchrun_fails(['--no-python', job], timeout=120)
    assert err.count('runs in one process, not under a launcher') == 1, err[-3000:]
    assert err.startswith(f"stitchup_noise: {ONE_PROCESS.format('stitchup_noise')}\n"), err[-3000:]
    assert not out.exists()


def test_stitchup_train_started_by_a_launched_program_is_refused_at_once(tmp_path):
    """`stitchup_train` started by a launched program (a training script under torchrun that calls `subprocess.run([
    'stitchup_train', ...])`) has its parent's RANK, WORLD_SIZE and MASTER_PORT: it would join that launch as its parent's
    rank. It says so at once, naming the rank and the ways out, exit status 2, nothing written (`00k_flags`' `_launched_child`)."""
    # Before, it joined: on gloo a child of rank 0 alone waited at the rendezvous for a rank 1 that never came, and the children
    # of every rank of a script that had joined its own process group waited too, for good, silent, nothing written (here the
    # parent's 45 s timeout ran out)
    launched = {**os.environ, 'RANK': '1', 'LOCAL_RANK': '1', 'WORLD_SIZE': '2', 'LOCAL_WORLD_SIZE': '2', 'MASTER_ADDR': '127.0.0.1',
                'MASTER_PORT': str(free_port()), 'TORCHELASTIC_RUN_ID': 'none', 'OMP_NUM_THREADS': '1'}
    work = tmp_path/'run'
    parent = (f'import subprocess, sys; p = subprocess.run([{str(BIN/"stitchup_train")!r}, *{QUICK!r}, "--work_dir", {str(work)!r}], '
              'capture_output=True, text=True, timeout=45); sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); sys.exit(p.returncode)')
    p = subprocess.run([sys.executable, '-c', parent], capture_output=True, text=True, env=launched, timeout=60)   # a hang: killed
    assert (p.returncode, p.stdout) == (2, ''), p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stderr == ('stitchup_train: started by a launched program (rank 1 of 2 of a torchrun launch, whose RANK, WORLD_SIZE and '
                        'MASTER_PORT it inherited), it would join that launch as its rank 1, where it hangs, silent, unless every rank '
                        'started it and none joined its process group; run it as the launch itself (torchrun --nproc_per_node 2 '
                        '$(which stitchup_train) ...), or as one process, started once (env -u RANK -u LOCAL_RANK -u WORLD_SIZE stitchup_train '
                        '...), or train in the launched program itself, on every rank (run_training(train_config(...)), '
                        'stitchup_nb.train)\n'), p.stderr[-3000:]
    assert not work.exists()


def test_stitchup_train_under_a_wrapper_torchrun_started_is_launched(tmp_path):
    """`torchrun --no-python timeout 100 stitchup_train ...`: `timeout` started with the launch's variables too, but runs no
    Python: it is looked past (`00k_flags`' `_inherited`), so stitchup_train is torchrun's process, and goes on to its flags."""
    # Before, `timeout` counted as a launched program: every rank refused as its child ('started by a launched program')
    err = _torchrun_fails(['--no-python', 'timeout', '100', BIN/'stitchup_train', *QUICK, '--epochs', 'two', '--work_dir', tmp_path/'run'],
                          timeout=120)
    assert 'started by a launched program' not in err, err[-3000:]
    assert err.startswith("stitchup_train: argument --epochs: invalid int value: 'two'; stitchup_train --help lists the flags\n"), err[-3000:]
    assert not (tmp_path/'run').exists()


def test_stitchup_train_help_started_by_a_launched_program_answers(tmp_path):
    """`stitchup_train --help` started by a launched program (a rank's `subprocess.run`) prints its help, exit status 0: help
    joins nothing, so the refusal of a launched program's child (`00k_flags`' `_launched_child`) leaves it be."""
    # Before, it was refused ('started by a launched program ...', exit status 2), the help never printed
    launched = {**os.environ, 'RANK': '1', 'LOCAL_RANK': '1', 'WORLD_SIZE': '2', 'LOCAL_WORLD_SIZE': '2', 'MASTER_ADDR': '127.0.0.1',
                'MASTER_PORT': str(free_port()), 'TORCHELASTIC_RUN_ID': 'none', 'OMP_NUM_THREADS': '1'}
    parent = (f'import subprocess, sys; p = subprocess.run([{str(BIN/"stitchup_train")!r}, "--help"], capture_output=True, text=True, '
              'timeout=45); sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); sys.exit(p.returncode)')
    p = subprocess.run([sys.executable, '-c', parent], capture_output=True, text=True, env=launched, timeout=60)
    assert (p.returncode, p.stderr) == (0, ''), p.stderr[-3000:]
    assert p.stdout.startswith('usage: stitchup_train'), p.stdout[:2000]
