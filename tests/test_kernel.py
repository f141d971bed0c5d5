"""A researcher's kernel: runs made one after another in one long-lived process (JupyterLab), some stopped by Ctrl-C.

- Ctrl-C (KeyboardInterrupt) at a chosen batch of epoch 2 of a `run_training` call: the error says where the run stands
  and how to continue it in Python, the work dir's lock is free, no temporary file is left, and the run resumed in the
  same process ends exactly as the uninterrupted run made by a fresh process (the session's `quick_run`).
- Ctrl-C before the run wrote anything says so.
- A run with `deterministic=True` leaves PyTorch's process-wide switches as it found them, so the kernel's next run
  computes as it would in a fresh process.
- The Learner a finished run returns, fitted some more, writes none of the run's files.
- A sweep's numpy numbers (`np.arange`, `np.linspace`) as options: the run trains and its checkpoint loads again.
- A cell that registers a noise kind, a peer or a backbone, run again: unchanged, it replaces the entry without a word;
  changed, it replaces it and says so, and what runs next uses the new definition.
"""
import fcntl, json, linecache, warnings

import pytest
import torch
from fastai.callback.core import Callback

import stitchup_nb.train as train_mod
from stitchup_nb import speed
from stitchup_nb.speed import torch_switches
from stitchup_nb.train import run_training, train_config

QUICK = dict(dataset='digits-small', noise_rate=0.5, epochs=2, warmup_iters=10, quiet=True)   # tests/conftest.py's QUICK, in Python


class CtrlC(Callback):
    "Ctrl-C after batch `it` of epoch `epoch` (fastai counts both from 0)."
    order = 99
    def __init__(self, epoch:int, it:int): self.at = epoch, it
    def after_batch(self):
        if (self.epoch, self.iter) == self.at: raise KeyboardInterrupt


def stopping(monkeypatch, cb):
    "Make the next `run_training` build its Learner with `cb` added."
    real = train_mod.build_learner
    def build(*a, **k):
        learn, train, test = real(*a, **k)
        learn.add_cb(cb)
        return learn, train, test
    monkeypatch.setattr(train_mod, 'build_learner', build)


def lock_is_free(work) -> bool:
    with open(work/'.lock') as f:
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError: return False
        return True


SWITCHES = lambda: (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """One finished 2-epoch run (`pretrained=False`) that the tests of a finished run's Learner, folder and switches share:
    (learn, cfg, work, said, was, after). It is made with train_mod.gpu_speed acting as on a GPU (setting the switches needs
    none) and recording what it set in `said`; `was` and `after` are the kernel's switches before and after run_training."""
    work, said = tmp_path_factory.mktemp('finished')/'run', []
    cfg = train_config(**QUICK, pretrained=False, work_dir=str(work))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, 'gpu_speed', lambda precision, deterministic=False, device=None:
                   said.append(speed.gpu_speed(precision, deterministic, 'cuda')))
        was = SWITCHES()
        learn, _ = run_training(cfg)
        after = SWITCHES()
    return learn, cfg, work, said, was, after


def test_ctrl_c_in_a_kernel_says_how_to_continue_and_the_resume_ends_as_a_fresh_run(quick_run, tmp_path, monkeypatch):
    work = tmp_path/'run'
    stopping(monkeypatch, CtrlC(epoch=1, it=3))
    with pytest.raises(KeyboardInterrupt) as e: run_training(train_config(**QUICK, work_dir=str(work)))
    assert str(e.value) == (f"run_training interrupted; last checkpoint: {work/'epoch_1.pth'}; continue the run with the same "
                            "options and resume='auto': run_training(train_config(..., resume='auto'))")
    assert lock_is_free(work) and not list(work.glob('*.tmp')) and not (work/'epoch_2.pth').exists()
    assert [r['epoch'] for r in json.loads((work/'metrics.json').read_text())['epochs']] == [0]   # the epochs up to the checkpoint
    monkeypatch.undo()
    learn, _ = run_training(train_config(**QUICK, work_dir=str(work), resume='auto'))
    assert not any(isinstance(c, CtrlC) for c in learn.cbs)
    got, want = (json.loads((w/'metrics.json').read_text()) for w in (work, quick_run[0]))
    assert got['final'] == want['final']
    a, b = (torch.load(w/'epoch_2.pth', weights_only=True)['model'] for w in (work, quick_run[0]))
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_ctrl_c_before_the_run_wrote_anything_says_so(tmp_path, monkeypatch):
    def ctrl_c(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(train_mod, 'build_learner', ctrl_c)
    with pytest.raises(KeyboardInterrupt) as e: run_training(train_config(**QUICK, work_dir=str(tmp_path/'run')))
    assert str(e.value) == f"run_training interrupted before it wrote anything ({tmp_path/'run'} holds no run); call it again"
    assert not (tmp_path/'run').exists()


def test_a_deterministic_run_leaves_the_kernels_switches_as_it_found_them():
    was = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    run_training(train_config(**{**QUICK, 'epochs': 1}, deterministic=True, pretrained=False, work_dir=None))
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == was


def test_a_further_fit_of_a_finished_runs_learner_writes_none_of_its_files(finished):
    "Fitting the returned Learner some more (a notebook's 'one more epoch') trains in memory, with a warning: the run's files stay."
    learn, _, work, *_ = finished
    files = {p.name: p.read_bytes() for p in work.iterdir()}
    with pytest.warns(UserWarning, match=f"the run in {work} has ended: a further fit of its Learner trains in memory"):
        learn.fit_reference(1, warmup_iters=2)
    assert {p.name: p.read_bytes() for p in work.iterdir()} == files     # epoch_2.pth and metrics.json (its final table) kept


def cell(src:str, n:int, ns:dict):
    "Run `src` as JupyterLab runs a cell: under a file name of its own whose source is kept (IPython's linecache), in namespace `ns`."
    name = f'<ipython-input-{n}-test>'
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    exec(compile(src, name, 'exec'), ns)


REGISTER = {   # what a cell registers: the registry (module, name), the entry's name, the cell's code ({v}: what it returns),
               # and how a run calls the entry
    'noise kind': ('stitchup_nb.config', 'NOISE_KINDS', 'k_shift', """
from stitchup_nb.noise import noise_kind
@noise_kind('k_shift')
def k_shift(pos, hit, rng): return {v}
""", lambda e: e(None, None, None)),
    'peer': ('stitchup_nb.peers', 'PEERS', 'k_peer', """
from stitchup_nb.peers import Peer, register_peer
@register_peer('k_peer')
class KPeer(Peer):
    def labels(self, train, noisy): return {v}
""", lambda e: e.labels(None, None, None)),
    'backbone': ('stitchup_nb.config', 'BACKBONES', 'k_cnn', """
from stitchup_nb.backbones import register_backbone
@register_backbone('k_cnn', stages=1, has_weights=False)
def k_cnn(pretrained, train_stages, seed): return {v}
""", lambda e: e.build(False, 1, 0)),
    'data source': ('stitchup_nb.sources', 'SOURCES', 'k_set', """
from stitchup_nb.sources import register_source
@register_source('k_set')
def k_set(preset, data_root=None, appendix=None, size=None, data_seed=0): return {v}
""", lambda e: e.load(None)),
}


@pytest.mark.parametrize('what', list(REGISTER))
def test_a_registering_cell_run_again_replaces_and_says_so_when_changed(what):
    import importlib
    where, registry, name, code, call = REGISTER[what]
    reg, ns = getattr(importlib.import_module(where), registry), {'__name__': '__main__'}
    try:
        cell(code.format(v=1), 1, ns)
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            cell(code.format(v=1), 2, ns)                       # the same cell again: replaced, nothing said
        assert call(reg[name]) == 1
        with pytest.warns(UserWarning, match=f"^{what} {name!r} is replaced by a changed definition of .* \\(from __main__\\): "
                          'runs in this process that name it use the new one$'):
            cell(code.format(v=2), 3, ns)                       # changed, and run again
        assert call(reg[name]) == 2                              # what a run calls now
    finally: reg.pop(name, None)


def test_a_run_stopped_while_it_scored_is_finished_by_the_resume_it_names(quick_run, tmp_path, monkeypatch):
    "Ctrl-C after the last epoch, while the test set is scored: resume='auto' with the same epochs trains nothing and scores it."
    def ctrl_c(*a, **k): raise KeyboardInterrupt
    work = tmp_path/'run'
    monkeypatch.setattr(train_mod, 'evaluate', ctrl_c)
    with pytest.raises(KeyboardInterrupt, match=f"last checkpoint: {work/'epoch_2.pth'}; .* resume='auto'"):
        run_training(train_config(**QUICK, work_dir=str(work)))
    assert 'final' not in json.loads((work/'metrics.json').read_text())
    monkeypatch.undo()
    run_training(train_config(**QUICK, work_dir=str(work), resume='auto'))
    got, want = (json.loads((w/'metrics.json').read_text()) for w in (work, quick_run[0]))
    assert got['final'] == want['final'] and [e['epoch'] for e in got['epochs']] == [0, 1]


def test_resume_auto_from_nbs_names_the_run_of_the_repository_root(tmp_path, monkeypatch):
    "JupyterLab's kernel starts in nbs/: resume='auto' into 'work_dirs/x', a run of the repository root, is refused by name."
    (tmp_path/'nbs').mkdir(); (tmp_path/'work_dirs'/'x').mkdir(parents=True); (tmp_path/'work_dirs'/'x'/'epoch_2.pth').touch()
    monkeypatch.setattr(train_mod, 'repo_root', lambda: tmp_path, raising=False)
    monkeypatch.chdir(tmp_path/'nbs')
    with pytest.raises(FileNotFoundError, match=f"holds no run, but {tmp_path/'work_dirs'/'x'} does .*: pass `work_dir` "
                       f"{tmp_path/'work_dirs'/'x'} to continue that run"):
        run_training(train_config(**QUICK, work_dir='work_dirs/x', resume='auto'))
    assert not (tmp_path/'nbs'/'work_dirs').exists()          # nothing made on the way


def test_an_option_cell_changed_and_run_again_replaces_the_notebooks_own_option_and_says_so():
    from stitchup_nb.config import OPTIONS
    code = "from stitchup_nb.config import option\noption('k_eps', {v}, help='my smoothing', by='loss', loss='k_loss')\n"
    ns = {'__name__': '__main__'}
    try:
        cell(code.format(v=.1), 1, ns)
        with pytest.warns(UserWarning, match=r"^option 'k_eps' is declared again, differently \(it was: default 0.1, 'my smoothing'\)"):
            cell(code.format(v=.2), 2, ns)
        assert OPTIONS['k_eps'].default == .2
        with pytest.raises(ValueError, match="option 'lr' is declared already, differently, by the kit"):
            cell("from stitchup_nb.config import option\noption('lr', .5, help='mine')\n", 3, ns)
    finally:
        import stitchup_nb.config as config
        OPTIONS.pop('k_eps', None); config._DECLARED_IN.pop('k_eps', None)


def test_resume_auto_outside_the_repository_starts_a_new_run_there(tmp_path, monkeypatch):
    "From a job's own folder, outside the checkout, resume='auto' into 'work_dirs/x' is a new run there, though the root has one."
    root, job = tmp_path/'repo', tmp_path/'job'
    (root/'work_dirs'/'x').mkdir(parents=True); (root/'work_dirs'/'x'/'epoch_2.pth').touch(); job.mkdir()
    class Built(Exception): pass
    def built(*a, **k): raise Built        # the run got as far as building its Learner: not refused
    monkeypatch.setattr(train_mod, 'repo_root', lambda: root, raising=False)
    monkeypatch.setattr(train_mod, 'build_learner', built)
    monkeypatch.chdir(job)
    with pytest.raises(Built): run_training(train_config(**QUICK, work_dir='work_dirs/x', resume='auto'))


def test_a_run_stopped_while_it_scored_is_scored_only_with_the_options_it_trained_with(tmp_path, monkeypatch):
    "A resume that trains nothing would record a new lr (or score at another precision) that no epoch used: refused, nothing written."
    def ctrl_c(*a, **k): raise KeyboardInterrupt
    work = tmp_path/'run'
    monkeypatch.setattr(train_mod, 'evaluate', ctrl_c)
    with pytest.raises(KeyboardInterrupt): run_training(train_config(**{**QUICK, 'epochs': 1}, work_dir=str(work)))
    monkeypatch.undo()
    files = {p.name: p.read_bytes() for p in work.iterdir()}
    with pytest.raises(ValueError, match=r"trained all its 1 epochs and stopped before it was scored; .*: pass `lr` 0\.02 \(not 0\.5\)$"):
        run_training(train_config(**{**QUICK, 'epochs': 1}, work_dir=str(work), resume='auto', lr=0.5))
    assert {p.name: p.read_bytes() for p in work.iterdir()} == files        # config.json still says the lr it trained with


def test_a_module_reloaded_after_an_edit_elsewhere_in_it_replaces_its_entries_without_a_word(tmp_path, monkeypatch):
    "`%autoreload`: a script's module edited above its noise kind, reloaded: the kind's code is the same, so nothing is said."
    import importlib, os, sys
    from stitchup_nb.config import NOISE_KINDS
    mod = tmp_path/'k_kinds.py'
    code = "from stitchup_nb.noise import noise_kind\n@noise_kind('k_drop')\ndef k_drop(pos, hit, rng): return pos & ~hit\n"
    mod.write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import k_kinds
        mod.write_text('"My noise kinds: a docstring added above, k_drop unchanged."\n\n' + code)
        os.utime(mod, (mod.stat().st_mtime + 5,) * 2)
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            importlib.reload(k_kinds)
        assert NOISE_KINDS['k_drop'] is k_kinds.k_drop
    finally: NOISE_KINDS.pop('k_drop', None); sys.modules.pop('k_kinds', None)


@pytest.mark.parametrize('what,registry,name,code,a,b', [
    ('backbone', 'BACKBONES', 'k_cnn2', "from stitchup_nb.backbones import register_backbone\n@register_backbone('k_cnn2', stages={v}, "
     "has_weights=False)\ndef k_cnn2(pretrained, train_stages, seed): return 1\n", 1, 2),
    ('noise kind', 'NOISE_KINDS', 'k_shift2', "from stitchup_nb.noise import noise_kind\n@noise_kind('k_shift2', takes={v})\n"
     "def k_shift2(pos, hit, rng, **kw): return pos\n", (), ('k_eps2',)),
])
def test_a_registering_cell_run_again_with_other_arguments_says_so(what, registry, name, code, a, b):
    "The same function registered again by a cell whose decorator changed (a backbone's stages, a kind's options): said."
    import stitchup_nb.config as config
    reg, ns = getattr(config, registry), {'__name__': '__main__'}
    try:
        cell(code.format(v=a), 1, ns)
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            cell(code.format(v=a), 2, ns)                       # the same cell again: nothing said
        with pytest.warns(UserWarning, match=f"^{what} {name!r} is replaced by a changed definition"):
            cell(code.format(v=b), 3, ns)
    finally: reg.pop(name, None)


def test_a_rows_scores_are_computed_under_the_switches_its_run_trained_with(monkeypatch):
    "run_training puts the kernel's switches back as it returns; the experiments' row is scored after it, under the run's "
    "own again (run_switches): a deterministic run's row was scored with deterministic kernels off (and, on a GPU, an "
    "exact fp32 run's with TF32 convolutions)."
    from types import SimpleNamespace
    from stitchup_nb import experiments
    ran = SimpleNamespace(run_record=SimpleNamespace(config={'precision': 'fp32', 'deterministic': True}),
                          dls=SimpleNamespace(device=torch.device('cpu')))
    seen = []
    monkeypatch.setattr(experiments, '_fill_caches', lambda cfg: None)
    monkeypatch.setattr(experiments, 'run_training', lambda cfg: (ran, None))
    monkeypatch.setattr(experiments, 'result_row', lambda *a: seen.append(torch.are_deterministic_algorithms_enabled()) or {})
    was = torch.are_deterministic_algorithms_enabled()
    experiments.one_run('BCE', {'method': 'bce'}, 'flip', .5, 0, 1, extra={'deterministic': True})
    assert seen == [True] and torch.are_deterministic_algorithms_enabled() == was


def test_loading_a_run_leaves_the_kernels_switches_as_they_were(finished, monkeypatch):
    """A kernel that only loads a run to browse it (load_run, build_learner) keeps its own switches; run_training sets the
    run's while it trains (gpu_speed, made here to act as on a GPU: setting the switches needs none) and puts them back.
    build_learner set the run's cuDNN autotuning (and TF32) for good in a kernel that loaded a run."""
    from stitchup_nb.finished import load_run
    _, _, work, said, was, after = finished       # the run made with gpu_speed recording into `said`
    assert was[0] is False                   # PyTorch's default: the run's autotuning (True) would show
    assert said == [{'tf32': False, 'cudnn_benchmark': True}] and after == was     # set for the run, put back after it
    said = list(said)
    monkeypatch.setattr(train_mod, 'gpu_speed', lambda precision, deterministic=False, device=None:
                        said.append(speed.gpu_speed(precision, deterministic, 'cuda')))
    learn, *_ = load_run(work)
    assert SWITCHES() == was and len(said) == 1


def test_a_learner_built_for_a_runs_folder_and_fitted_directly_writes_none_of_its_files(finished):
    """build_learner(cfg) of a configuration with a work_dir holds no lock on it (run_training does): learn.fit trains in
    memory and says how to train a run there. It wrote epoch_1.pth and metrics.json over the run's, without the lock."""
    _, cfg, work, *_ = finished
    files = {p.name: p.read_bytes() for p in work.iterdir()}
    learn, *_ = train_mod.build_learner(cfg)
    with pytest.warns(UserWarning, match=f"build_learner's Learner does not hold {work} .*call run_training"):
        learn.fit_reference(1, warmup_iters=2)
    assert {p.name: p.read_bytes() for p in work.iterdir()} == files


def test_the_correction_browser_predicts_under_the_switches_its_run_trained_with(finished, monkeypatch):
    """CorrectionBrowser.from_checkpoint (each snapshot of its history) and from_learner of a run's learner predict under the
    run's switches (run_switches; gpu_speed made to act as on a GPU: an exact fp32 run's cuDNN TF32 off, autotuning on), and
    put the kernel's back. They predicted under the kernel's (TF32 convolutions in an exact fp32 run's snapshots)."""
    from stitchup_nb import corrections, speed
    from stitchup_nb.corrections import CorrectionBrowser
    real_speed, real_snapshot, seen = speed.gpu_speed, corrections.correction_snapshot, []
    monkeypatch.setattr(speed, 'gpu_speed', lambda precision, deterministic=False, device=None: real_speed(precision, deterministic, 'cuda'))
    switches = lambda: (torch.backends.cudnn.benchmark, torch.backends.cudnn.conv.fp32_precision == 'tf32')
    learn, _, work, *_ = finished
    was = switches()
    assert was == (False, True)              # PyTorch's defaults: the run's (autotuning, no TF32) would show
    monkeypatch.setattr(corrections, 'correction_snapshot', lambda learn: seen.append(switches()) or real_snapshot(learn))
    CorrectionBrowser.from_checkpoint(work, history=True)
    CorrectionBrowser.from_learner(learn)
    assert seen == [(True, False)] * 3 and switches() == was


def tf32_reads() -> list:
    "What a kernel reads of PyTorch's TF32 settings, both APIs: each value, or 'raises' (PyTorch's mixed-API RuntimeError)."
    B, out = torch.backends, []
    for read in (torch.get_float32_matmul_precision, lambda: B.cuda.matmul.allow_tf32, lambda: B.cudnn.allow_tf32,
                 lambda: B.fp32_precision, lambda: B.cudnn.fp32_precision, lambda: B.mkldnn.fp32_precision,
                 lambda: B.cuda.matmul.fp32_precision, lambda: B.cudnn.conv.fp32_precision, lambda: B.cudnn.rnn.fp32_precision,
                 lambda: B.mkldnn.matmul.fp32_precision, lambda: B.mkldnn.conv.fp32_precision, lambda: B.mkldnn.rnn.fp32_precision):
        try: out.append(read())
        except RuntimeError: out.append('raises')
    return out

TF32_DEFAULTS = ['highest', False, True, 'none', 'none', 'none', 'none', 'tf32', 'tf32', 'none', 'none', 'none']   # a fresh process's

def tf32_defaults():
    "Put PyTorch's TF32 settings back as a fresh process has them."
    B = torch.backends
    for backend in ('generic', 'cuda', 'mkldnn'): torch._C._set_fp32_precision_setter(backend, 'all', 'none')
    torch.set_float32_matmul_precision('highest'); B.cudnn.allow_tf32 = True
    B.cuda.matmul.fp32_precision = B.mkldnn.matmul.fp32_precision = 'none'
    assert tf32_reads() == TF32_DEFAULTS

KERNEL_TF32 = {   # a kernel's own TF32 settings, made with either API or both
    'defaults': '',
    'old API': 'torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = False',
    'old API, medium': "torch.set_float32_matmul_precision('medium')",
    'new API': "torch.backends.cuda.matmul.fp32_precision = 'tf32'; torch.backends.cudnn.conv.fp32_precision = 'ieee'",
    'new API, generic': "torch.backends.fp32_precision = 'tf32'",
    'new API, oneDNN bf16': "torch.backends.mkldnn.matmul.fp32_precision = 'bf16'",
    'mixed': "torch.backends.cuda.matmul.fp32_precision = 'tf32'; torch.backends.cudnn.allow_tf32 = False",
    'mixed, medium': "torch.set_float32_matmul_precision('medium'); torch.backends.cuda.matmul.fp32_precision = 'ieee'",
}

@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
@pytest.mark.parametrize('kernel', list(KERNEL_TF32))
def test_a_gpu_runs_tf32_switches_read_in_both_apis_and_the_kernels_read_as_before_after_it(kernel, precision):
    """gpu_speed (setting TF32 needs no GPU) inside torch_switches, over a kernel that set TF32 with PyTorch's legacy API
    (allow_tf32, set_float32_matmul_precision), its new one (fp32_precision) or both: nothing raises, the run's TF32 reads the
    same in both APIs, and after the block every setting reads as before (or raises as before). gpu_speed set the legacy
    flags only: reading them, or torch.get_float32_matmul_precision (inductor's cache key), raised under a new-API kernel."""
    exec(KERNEL_TF32[kernel])
    try:
        before = tf32_reads()
        with torch_switches():
            speed.gpu_speed(precision, device='cuda')
            inside = tf32_reads()
        on = precision != 'fp32'
        legacy = ('medium' if before[9] == 'bf16' else 'high') if on else 'highest'     # the kernel's oneDNN bf16 kept, but not in exact fp32
        assert inside[:3] == [legacy, on, on] and inside[9] == (before[9] if on or before[9] not in ('tf32', 'bf16') else 'ieee')
        assert [v == 'tf32' for v in inside[6:9]] == [on] * 3               # cuBLAS, cuDNN's convolutions and RNNs
        assert tf32_reads() == before
    finally: tf32_defaults()

def test_a_loaded_runs_ensemble_weight_is_chosen_under_the_switches_it_trained_with(tmp_path, monkeypatch):
    """load_run (stitchup_test) chooses a --holdout run's ensemble weight again from its held-out predictions: under the
    run's switches (gpu_speed, made to act as on a GPU), as run_training chose it, so that TF32 gives the same weight. It
    chose it under the kernel's own (no autotuning, no TF32) once build_learner stopped setting them."""
    from stitchup_nb import speed
    from stitchup_nb.finished import load_run
    real = speed.gpu_speed
    on_gpu = lambda precision, deterministic=False, device=None: real(precision, deterministic, 'cuda')
    monkeypatch.setattr(train_mod, 'gpu_speed', on_gpu)
    monkeypatch.setattr(speed, 'gpu_speed', on_gpu)
    seen, choose = [], train_mod.choose_t
    monkeypatch.setattr(train_mod, 'choose_t', lambda *a, **k: seen.append(torch.backends.cudnn.benchmark) or choose(*a, **k))
    was, work = torch.backends.cudnn.benchmark, tmp_path/'run'
    run_training(train_config(**{**QUICK, 'epochs': 1}, pretrained=False, holdout=.2, work_dir=str(work)))
    learn, *_ = load_run(work)
    assert seen == [True, True] and torch.backends.cudnn.benchmark == was, seen


def test_a_sweep_over_numpy_numbers_trains_and_its_run_loads_again(tmp_path):
    """Options a sweep takes from `np.linspace` or `np.arange` (numpy scalars), which the checks accept: the run trains
    (fastai's schedule took no numpy `lr`: a TypeError in the first batch), config.json records `bs` 16, not 16.0, and the
    checkpoint loads again (the safe unpickler refused the numpy scalars in its configuration)."""
    import numpy as np
    from stitchup_nb.finished import load_run
    work = tmp_path/'run'
    cfg = train_config(**{**QUICK, 'epochs': np.int64(1), 'lr': np.linspace(.01, .02, 2)[1], 'bs': np.int64(16),
                          'seed': np.arange(3)[1]}, method='bce', pretrained=False, work_dir=str(work))
    run_training(cfg)
    said = json.loads((work/'config.json').read_text())
    assert [said[k] for k in ('epochs', 'lr', 'bs', 'seed')] == [1, .02, 16, 1] and type(said['bs']) is int, said
    learn, train, test = load_run(work/'epoch_1.pth')
    assert learn.run_record.config['seed'] == 1, learn.run_record.config
