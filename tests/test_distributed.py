"""Multi-process training and evaluation on the CPU (gloo), as a user launches them (the launches that must fail, and how
they fail, are tests/test_distributed_errors.py's: a file of its own, so that the two run side by side under
`pytest -n 2 --dist loadfile`).

- sampler sharding: ranks' index sets are disjoint positions of the epoch's stream and cover it;
- evaluation: each rank scores its shard and the gathered predictions are the whole test set,
  once each, in dataset order;
- `stitchup_train` under `torchrun --nproc_per_node 2` (and `accelerate launch`): training
  completes, the loss falls, rank 0 alone writes, and `stitchup_test` of its checkpoint in one
  process gives the metrics the distributed evaluation gave;
- label correction counted over every rank's batches, as one process drawing the same global batches counts;
- each rank its own augmentation stream (rank 0's is one process's); full_plus trains;
- metrics.json's train_loss is the mean of the ranks' smoothed losses;
- a resume on another number of processes is said, and recorded (config.json's world_size, the row's resumed_with);
- Ctrl-C under torchrun names the same launch as the way on, which ends where the uninterrupted run ends;
- a resume whose ranks see other checkpoints (no shared --work_dir) is refused before anything is written.
"""
import json, os, socket, subprocess, sys, textwrap

import numpy as np
import pytest

from stitchup_nb.digits import digits_mlt
from stitchup_nb.runs import read_scores
from stitchup_nb.distributed import free_port
from stitchup_nb.sampling import ClassAwareSampler, RandomSampler

from tests.conftest import BIN, QUICK


@pytest.mark.parametrize('make', [lambda lab, **kw: RandomSampler(len(lab), **kw),
                                  lambda lab, **kw: ClassAwareSampler(lab, **kw)])
@pytest.mark.parametrize('world', [2, 3])
def test_shards_are_disjoint_and_cover_the_draw(make, world):
    labels = digits_mlt()[0].labels
    shards = [make(labels, seed=4, rank=r, world=world).indices(7) for r in range(world)]
    n = len(shards[0])
    assert all(len(s) == n for s in shards)
    full = make(labels, seed=4).draw(7, n * world)
    # rank r holds positions r, r+world, ...: together exactly the global stream
    assert np.array_equal(np.stack(shards, 1).ravel(), full)
    again = [make(labels, seed=4, rank=r, world=world).indices(7) for r in range(world)]
    assert all(np.array_equal(a, b) for a, b in zip(shards, again))


GATHER = textwrap.dedent('''
    import os, sys, torch, numpy as np
    import torch.distributed as dist
    from stitchup_nb.digits import digits_mlt
    from stitchup_nb.loaders import EvalDL
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    _, test = digits_mlt()
    dl = EvalDL(test, bs=64, rank=rank, world=world, device='cpu')
    got = torch.cat([dl.to_detach(y) for _, y in dl])
    assert torch.equal(got, torch.as_tensor(test.labels).float()), (got.shape, rank)
    open(os.path.join(sys.argv[1], f'rank{rank}'), 'w').write(f'ok {rank} {len(got)}')   # torchrun interleaves stdout
    dist.barrier(); dist.destroy_process_group()    # leave together: a rank exiting inside the group can abort its peers
''')


def test_distributed_evaluation_scores_each_image_once(tmp_path):
    script = tmp_path/'gather.py'; script.write_text(GATHER)
    p = subprocess.run([BIN/'torchrun', '--nproc_per_node', '3', '--master_port', str(free_port()), script, tmp_path],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert [(tmp_path/f'rank{r}').read_text() for r in range(3)] == ['ok 0 1000', 'ok 1 1000', 'ok 2 1000']


def _launch(cmd, env_extra=None):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', **(env_extra or {})}
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-4000:]
    return p.stdout


@pytest.fixture(scope='module')
def torchrun_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('ddp')
    out = _launch([BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), BIN/'stitchup_train',
                   *QUICK, '--work_dir', work])
    return work, out


def test_torchrun_trains_and_rank0_alone_writes(torchrun_run):
    work, out = torchrun_run
    assert sorted(p.name for p in work.iterdir()) == ['.lock', 'config.json', 'epoch_1.pth', 'epoch_2.pth', 'metrics.json']
    m = json.loads((work/'metrics.json').read_text())
    assert m['world_size'] == 2
    losses = [e['train_loss'] for e in m['epochs']]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert out.count('training images') == 1                     # one final report, from rank 0


def test_single_process_test_matches_distributed_evaluation(torchrun_run):
    work, _ = torchrun_run
    _launch([BIN/'stitchup_test', work/'epoch_2.pth'])
    got, _ = read_scores(work/'test_metrics.json')
    want = json.loads((work/'metrics.json').read_text())['final']
    for mode in want:
        for k in want[mode]: assert got[mode][k] == pytest.approx(want[mode][k], abs=1e-3), (mode, k)


# head alphas near 0 switch every head negative on, whatever the weights: the counts depend on the draws alone; without
# partners (--stitch none) 2 processes of bs 16 draw exactly the batches one process of bs 32 draws
CORRECTING = [*QUICK, '--epochs', '1', '--stitch', 'none', '--random_head_alpha', '1e-6', '--balance_head_alpha', '1e-6']


@pytest.fixture(scope='module')
def accelerate_run(tmp_path_factory):
    """One epoch under `accelerate launch` on 2 processes, with the options the corrections count below compares (CORRECTING,
    --bs 16 a process): one launch for the two tests that check it. Its work_dir."""
    # accelerate's multi-process launcher is `--multi_gpu` (torchrun underneath); on a machine without GPUs the kit
    # then joins a gloo group. (`--cpu` with several processes would need MPI: it starts one process.)
    work = tmp_path_factory.mktemp('acc')/'run'
    _launch([BIN/'accelerate', 'launch', '--num_processes', '2', '--num_machines', '1', '--multi_gpu',
             '--main_process_port', free_port(), '--mixed_precision', 'no', '--dynamo_backend', 'no',
             BIN/'stitchup_train', *CORRECTING, '--bs', '16', '--work_dir', work])
    return work


def test_accelerate_launch(accelerate_run):
    m = json.loads((accelerate_run/'metrics.json').read_text())
    assert m['world_size'] == 2 and len(m['epochs']) == 1 and (accelerate_run/'epoch_1.pth').exists()


def test_corrections_count_every_ranks_draws(accelerate_run, tmp_path):
    """metrics.json counts label corrections over every rank's batches, each draw once: what one process drawing the same
    global batches counts. (They were rank 0's batches alone: half the count on 2 processes, an eighth on 8.)"""
    one = tmp_path/'one'
    _launch([BIN/'stitchup_train', *CORRECTING, '--bs', '32', '--work_dir', one])
    rows = lambda w: json.loads((w/'metrics.json').read_text())['epochs'][0]
    got, want = rows(accelerate_run)['corrections'], rows(one)['corrections']
    assert got == want
    assert min(r['on'] for r in want if r['group'] == 'head') > 100          # the counts are not empty


def test_launch_from_a_notebook(tmp_path):
    # what a notebook cell does: accelerate's notebook_launcher forks the processes from this one
    code = ('from stitchup_nb.train import launch; t = launch(2, dataset="digits-small", epochs=1, warmup_iters=10, '
            f'quiet=True, work_dir={str(tmp_path/"nb")!r}); print("TABLE", sorted(t.index))')
    with socket.socket() as held:       # accelerate's default port, in use (another launch, a torchrun job): launch takes a free one
        try: held.bind(('127.0.0.1', 29500)); held.listen()
        except OSError: pass            # in use already
        out = _launch([sys.executable, '-c', code])
    assert "TABLE ['balanced', 'ensemble', 'random']" in out
    assert json.loads((tmp_path/'nb'/'metrics.json').read_text())['world_size'] == 2


@pytest.fixture(scope='module')
def plus_run(tmp_path_factory):
    """One epoch of full_plus with the held-out ensemble weight it is measured with (`--holdout 0.1`) under torchrun, started with
    `--resume auto` in a folder not there yet: one launch for the three tests below, each checking its part. (work_dir, stdout)"""
    work = tmp_path_factory.mktemp('plus')/'new'
    out = _launch([BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), BIN/'stitchup_train', *QUICK,
                   '--epochs', '1', '--method', 'full_plus', '--holdout', '0.1', '--resume', 'auto', '--work_dir', work])
    return work, out


def test_full_plus_under_torchrun(plus_run):
    "full_plus stitches the class-aware branch only: the random branch's partner BatchNorm gets no gradient, which DDP is told."
    # Before, DDP was told to expect every parameter used whenever feature-level Stitch-Up was on, and the first step on
    # 2 processes died: "Expected to have finished reduction in the prior iteration ... Parameter indices which did not receive grad"
    work, _ = plus_run
    m = json.loads((work/'metrics.json').read_text())
    assert json.loads((work/'config.json').read_text())['method'] == 'full_plus'
    assert m['world_size'] == 2 and len(m['epochs']) == 1 and (work/'epoch_1.pth').exists()


def test_holdout_under_torchrun_chooses_the_t_one_process_chooses(plus_run, tmp_path):
    "`--holdout`: the ranks score the held-out images together (each once) and choose the t a single process chooses."
    work, _ = plus_run
    m = json.loads((work/'metrics.json').read_text())
    assert m['world_size'] == 2 and len(m['holdout_map']) == 11
    assert m['holdout_map'][f"{m['t_chosen']:g}"] == max(m['holdout_map'].values())
    _launch([BIN/'stitchup_test', work/'epoch_1.pth', '--out', tmp_path/'t.json'])    # one process re-chooses t
    got, said = read_scores(tmp_path/'t.json')
    assert said['t'] == m['t_chosen'], (said, m['t_chosen'])
    for mode in m['final']:
        for k in m['final'][mode]: assert got[mode][k] == pytest.approx(m['final'][mode][k], abs=1e-3), (mode, k)


def test_resume_auto_into_an_empty_folder_is_said_once(plus_run):
    "`--resume auto` with no checkpoint yet: rank 0 alone says that training starts at epoch 0 (every rank said it)."
    _, out = plus_run
    assert out.count('--resume auto: no epoch_N.pth in') == 1, out[-3000:]


TRACED = textwrap.dedent('''
    # stitchup_train with two callbacks writing, per rank, into folders the environment names:
    # - Seen: a digest of torch's random state as the first training batch arrives (after the loader's augmentation drew
    #   from it), into SEEN_OUT as rank<r>; with SEEN_EXIT set the process then exits (nothing after it is looked at)
    # - OwnLoss: the training loss smoothed as on a GPU (the kit's DeviceSmoothLoss: each rank its own batches' loss, where
    #   fastai's own gathers every step's loss from every rank), the rank's smoothed loss at each epoch's end, into LOSS_OUT
    #   as rank<r>_epoch<e>
    import hashlib, os, sys, torch
    from fastai.callback.core import Callback
    from fastai.torch_core import rank_distrib
    import stitchup_nb.cli as cli, stitchup_nb.train as train
    from stitchup_nb.speed import DeviceSmoothLoss

    class Seen(Callback):
        order = 20
        def before_batch(self):
            if self.training and self.epoch == 0 and self.iter == 0:
                d = hashlib.sha1(torch.random.get_rng_state().numpy().tobytes()).hexdigest()
                with open(os.path.join(os.environ['SEEN_OUT'], f'rank{rank_distrib()}'), 'w') as f: f.write(d)
                if os.environ.get('SEEN_EXIT'): os._exit(0)

    class OwnLoss(Callback):
        def before_fit(self): self.learn.recorder.smooth_loss = DeviceSmoothLoss(beta=self.recorder.smooth_loss.beta)
        def after_train(self):
            with open(os.path.join(os.environ['LOSS_OUT'], f'rank{rank_distrib()}_epoch{self.epoch}'), 'w') as f:
                f.write(repr(float(self.recorder.smooth_loss.value)))

    make = train.colearner
    train.colearner = lambda *a, cbs=(), **kw: make(*a, cbs=list(cbs) + [Seen(), OwnLoss()], **kw)
    sys.argv = ['stitchup_train'] + sys.argv[1:]
    cli.stitchup_train()
''')


def traced(root, world, **env):
    "TRACED with the QUICK options in `root` on `world` processes (torchrun, or one plain process): the folders it wrote into."
    root.mkdir(exist_ok=True)
    script, seen, loss = root/'traced.py', root/f'seen{world}', root/f'loss{world}'
    script.write_text(TRACED); seen.mkdir(); loss.mkdir()
    launcher = [BIN/'torchrun', '--nproc_per_node', world, '--master_port', free_port()] if world > 1 else [sys.executable]
    _launch([*launcher, script, *QUICK, '--work_dir', root/f'run{world}'], {'SEEN_OUT': str(seen), 'LOSS_OUT': str(loss), **env})
    return seen, loss, root/f'run{world}'


@pytest.fixture(scope='module')
def traced_run(tmp_path_factory):
    "TRACED under `torchrun --nproc_per_node 2`, whole: one launch for the two tests below. (root, seen, loss, work_dir)"
    root = tmp_path_factory.mktemp('traced')
    return root, *traced(root, 2)


def test_ranks_draw_their_own_augmentation(traced_run):
    "Each rank draws its own augmentation and dropout; rank 0 draws what one process draws (a run stays reproducible)."
    # Before, every rank seeded torch alike each epoch: the images at one place of every rank's batch were augmented alike
    root, seen2, _, _ = traced_run
    seen1, _, _ = traced(root, 1, SEEN_EXIT='1')          # the same options in one process, up to its first batch
    two = [(seen2/f'rank{r}').read_text() for r in range(2)]
    assert two[0] != two[1]
    assert two[0] == (seen1/'rank0').read_text()


def test_train_loss_is_the_mean_over_ranks(traced_run):
    """metrics.json's train_loss under torchrun is the mean of the ranks' smoothed losses where each rank smooths its own (a GPU's
    DeviceSmoothLoss), as the correction counts cover every rank, and as fastai's own smoothing (the CPU's) gathers every step."""
    # Before, on GPUs it was rank 0's alone: the loss of half the launch's batches on 2 processes, an eighth on 8
    _, _, out, work = traced_run
    rows = json.loads((work/'metrics.json').read_text())['epochs']
    for row in rows:
        own = [float((out/f"rank{r}_epoch{row['epoch']}").read_text()) for r in range(2)]
        assert own[0] != own[1], own                                   # the ranks' batches differ: so do their losses
        assert row['train_loss'] == pytest.approx(sum(own) / 2, rel=1e-12, abs=0), (row['train_loss'], own)
    assert len(rows) == 2


def test_resume_on_another_number_of_processes_is_said_and_recorded(torchrun_run, tmp_path):
    "A run of 2 processes resumed in one: said as it resumes, in config.json (world_size) and in the resumed row of metrics.json."
    # Before, nothing said it (each step trained on half the images from then on, --bs being per process), config.json held
    # no number of processes and metrics.json's world_size became 1 for the epochs trained on 2
    import shutil
    work = tmp_path/'w'; shutil.copytree(torchrun_run[0], work)
    assert json.loads((work/'config.json').read_text())['world_size'] == 2
    out = _launch([BIN/'stitchup_train', *QUICK, '--epochs', '3', '--work_dir', work, '--resume', 'auto'])
    assert 'resuming from' in out and 'world_size 2 -> 1 (--bs 32 is per process: its epochs so far trained on 64 anchors' in out, out
    assert json.loads((work/'config.json').read_text())['world_size'] == 1
    rows = json.loads((work/'metrics.json').read_text())['epochs']
    assert [r.get('resumed_with', {}).get('world_size') for r in rows] == [None, None, [2, 1]]


def test_interrupted_torchrun_run_goes_on_as_the_message_says(torchrun_run, tmp_path):
    "Ctrl-C under torchrun mid-epoch: the way on it names is the same launch, which ends where the uninterrupted run ended."
    # Before, the command named was `stitchup_train ... --resume auto`: one process, half the images a step, unsaid
    import shlex, signal, time
    work = tmp_path/'int'
    p = subprocess.Popen([str(c) for c in (BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), BIN/'stitchup_train',
                                           *QUICK, '--work_dir', work)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    t0 = time.time()
    while not (work/'epoch_1.pth').exists() and time.time() - t0 < 300: time.sleep(.1)
    time.sleep(.5); p.send_signal(signal.SIGINT)               # in epoch 2 (as a terminal's Ctrl-C reaches torchrun)
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0 and not (work/'epoch_2.pth').exists(), err[-3000:]
    said = [l for l in err.splitlines() if l.startswith('stitchup_train: interrupted;')]
    assert len(said) == 1, err[-3000:]
    cmd = said[0].split('continue with: ')[1]
    assert cmd.startswith('torchrun --nproc_per_node 2 $(which stitchup_train) '), cmd
    argv = shlex.split(cmd.replace('$(which stitchup_train)', str(BIN/'stitchup_train')))
    _launch([BIN/'torchrun', '--master_port', free_port(), *argv[1:]])
    got, want = (json.loads((w/'metrics.json').read_text())['final'] for w in (work, torchrun_run[0]))
    assert got == want


NO_SHARED_DIR = textwrap.dedent('''
    # stitchup_train where rank 1 sees no checkpoint in the work dir (its machine's own disk: the folder is not shared)
    import sys
    from fastai.torch_core import rank_distrib
    import stitchup_nb.cli as cli, stitchup_nb.train as train
    real = train.checkpoints
    train.checkpoints = lambda w: [] if rank_distrib() == 1 else real(w)
    sys.argv = ['stitchup_train'] + sys.argv[1:]
    cli.stitchup_train()
''')


def test_a_resume_whose_ranks_see_other_checkpoints_is_refused(torchrun_run, tmp_path):
    "--resume auto where one rank's machine sees no checkpoint (no shared --work_dir) is refused by name, before a file is written."
    # Before, rank 0 went on from epoch 1 and rank 1 from epoch 0, their steps averaged together: rank 0 wrote an epoch_2.pth
    # of that mixed training, then the ranks met in different collectives and died on gloo's 'Connection reset by peer'
    import shutil
    script, work = tmp_path/'nofs.py', tmp_path/'w'
    script.write_text(NO_SHARED_DIR)
    shutil.copytree(torchrun_run[0], work); (work/'epoch_2.pth').unlink()
    stamps = lambda: {q.name: q.stat().st_mtime_ns for q in work.iterdir() if q.name != '.lock'}    # the lock names its holder
    before = stamps()
    p = subprocess.run([str(c) for c in (BIN/'torchrun', '--nproc_per_node', '2', '--master_port', free_port(), script, *QUICK,
                                         '--work_dir', work, '--resume', 'auto')],
                       capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, timeout=300)
    assert p.returncode != 0
    assert ('the ranks would go on from different epochs (rank 0 from epoch_1.pth, rank 1 at epoch 0 (no checkpoint))'
            in p.stderr), p.stderr[-3000:]
    assert stamps() == before                          # nothing written, nothing removed
