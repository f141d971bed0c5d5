"""A VOC-MLT-sized (and COCO-MLT-sized) run of `stitchup_train`, timed phase by phase, on a GPU.

    python tools/bench_e2e.py                   # VOC-sized: full method first and second run, BCE, exact fp32, compiled
    python tools/bench_e2e.py --coco            # also the COCO-sized set
    python tools/bench_e2e.py --digits 3 --grid # Digits on the GPU: fp32 vs bf16 over 3 seeds; a 24-run grid, packed
    python tools/bench_e2e.py --tiny            # a small set on a CPU (what CI runs): the same code path, in seconds
    python tools/bench_e2e.py --report          # only rewrite the README's table from the JSON

It writes synthetic sets in the real formats (`stitchup_nb.fixtures`: VOC XML, COCO JSON and the official split
pickles with flip noise 0.5), sized like the official splits: VOC-MLT 1,142 training and 4,952 test JPEGs at 500×375,
COCO-MLT 1,909 and 5,000 at 640×480. Each run is `stitchup_train` (the function behind the console script, with
`--no-pretrained`: the GPU machine has no network) in a fresh process, timed from the moment it is started:

- startup: the interpreter and the imports;        - decode: reading the images (`load_benchmark`);
- build: labels, loaders and the model;             - train / validate: each epoch's two parts;
- score: the final test-set scoring and the files;  - total: start to exit, as the user waits for it.

Beside them: the GPU's busy share in each phase (`nvidia-smi`, every 200 ms), the peak GPU memory, and the training
phase's arithmetic rate (each epoch's second step counted by `torch.utils.flop_counter`, times its steps) against the
chip's bf16 matrix rate measured in the same call. The first run of a set starts with an empty decoded-image cache;
the later ones read it (`stitchup_nb.images.decoded_images`). `--digits N` trains the Digits preset with `--precision
fp32` and `bf16` on seeds 0..N-1 (is bf16 accuracy-neutral?), `--grid` 24 Digits runs (BCE and the full method at
flip 0.3/0.5/0.7/0.9, seeds 0-2), both `--jobs` at a time on the one GPU (both need a CUDA GPU). Results go to
nbs/experiments/results/bench_e2e.json (`--tiny`: bench_e2e_tiny.json) after every run, and the table the README
includes to bench_e2e.md. A JSON already at --out is evidence: the call refuses it unless --append (add this call's
runs to it) or --overwrite (replace it) says which. A run that fails is kept there with the end of its log, and the
call then exits with status 1, naming it. Every option is checked before anything is written or run. A script, not a
test: its figures depend on the machine.
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))           # this checkout's package, as the runs' PYTHONPATH below
from stitchup_nb.pins import RESULTS     # light: this process never imports torch

SETS = {   # set: (training images, test images, JPEG (width, height), format)
    'voc':  (1142, 4952, (500, 375), 'voc'),
    'coco': (1909, 5000, (640, 480), 'coco'),
    'tiny': (40, 24, (64, 48), 'voc'),
}
RUNS = [   # name, method, precision: the first run of a set decodes the JPEGs, the later ones read the decoded-image cache
    ('first run', 'full', 'auto'), ('second run', 'full', 'auto'), ('BCE', 'bce', 'auto'), ('exact fp32', 'full', 'fp32'),
    ('compiled', 'full', 'auto')]
COMPILED = ('compiled',)   # runs whose backbones are compiled (stitchup_nb.speed.compile_bodies): inductor on a GPU, on a CPU
                           # dynamo's `eager` backend (the capture path, without code generation)
BASELINE = ('the baseline these runs are measured against, the kit without the decoded-image cache, the parallel decoding and the '
            'on-device training step (one H200, torch 2.11, a synthetic set of the same size and format, 8 epochs, `--no-pretrained`): '
            'full method 120 s end to end in fp32 (82 s training, 9-11 s an epoch), 90 s in bf16 + channels-last (56 s training, '
            '6 s an epoch), the GPU idle for the first 34-40 s; BCE 43 s (16 s training)')
TINY = dict(arch='resnet18', size=32, data_factor=1, bs=8)   # --tiny: the smallest run of the reference's model family
GRID = [(m, r) for m in ('bce', 'full') for r in (.3, .5, .7, .9)]   # --grid's 8 cells (flip noise), 3 seeds each


# ---------------------------------------------------------------- the child: one timed run in a fresh process
REC = {}

def child(spec:dict):
    "Run `stitchup_train` with `spec['opts']`, recording when each phase ends; write the record to `spec['record']`."
    REC.update(t_python=time.time(), decode=[], epochs=[])
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from fastai.callback.core import Callback
    from fastai.learner import defaults
    from stitchup_nb import cli, labels, train
    REC['t_imported'] = time.time()
    cuda = torch.cuda.is_available()
    def now():
        if cuda: torch.cuda.synchronize()
        return time.time()

    PhaseClock = phase_clock(Callback, FlopCounterMode, spec, cuda, now)
    load = labels.load_benchmark          # the pipeline reads the data through this name (run_data)
    def timed_load(*a, **k):
        t = time.time(); out = load(*a, **k); REC['decode'].append([t, time.time()]); return out
    labels.load_benchmark = timed_load
    defaults.callbacks = [*defaults.callbacks, PhaseClock]
    if spec.get('compile'):               # the Learner the pipeline builds, its backbones compiled before training
        from stitchup_nb.speed import compile_bodies
        build, REC['compile_backend'] = train.build_learner, 'inductor' if cuda else 'eager'
        def compiled_learner(*a, **k):
            learn, tr, te = build(*a, **k); compile_bodies(learn, REC['compile_backend']); return learn, tr, te
        train.build_learner = compiled_learner
    cli.stitchup_train.__wrapped__(**spec['opts'])
    REC['t_done'] = time.time()
    if cuda: REC['peak_mem_gib'] = torch.cuda.max_memory_allocated() / 2**30
    Path(spec['record']).write_text(json.dumps(REC))


def phase_clock(Callback, FlopCounterMode, spec:dict, cuda:bool, now):
    """The child's fastai callback, a class made from the ones the child imported (this module imports neither at its
    top: the child's startup phase is its imports); `now` is its clock, the GPU synchronised."""
    import torch

    class PhaseClock(Callback):
        """When each training epoch's two parts end; the FLOPs of each epoch's second training step. fastai's `get_preds`
        also sends fit and epoch events (around a prediction pass, and inside a fit): only the outermost fit that
        trains is timed."""
        order, fc, depth, prof = -100, None, 0, None     # before every other callback: its step count covers theirs
        def before_fit(self):
            self.depth += 1
            if self.depth == 1: self.t_fit, self.trained = now(), False
        def before_epoch(self):
            if self.depth == 1: REC['epochs'].append({'start': now(), 'steps': 0})
        def before_batch(self):
            if not self.training or self.depth != 1: return
            REC['epochs'][-1]['steps'] += 1
            if self.iter == 1: self.fc = FlopCounterMode(display=False); self.fc.__enter__()
            if spec.get('profile') and self.epoch == 0 and self.iter == 2:      # steps 2-6 of the first epoch
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU] +
                                                   [torch.profiler.ProfilerActivity.CUDA] * cuda)
                self.prof.__enter__()
        def _profiled(self):
            if self.prof is None: return
            now(); self.prof.__exit__(None, None, None)
            by = 'cuda_time_total' if cuda else 'cpu_time_total'
            REC['profile'] = {k: self.prof.key_averages().table(sort_by=k, row_limit=25) for k in (by, 'self_cpu_time_total')}
            self.prof = None
        def after_batch(self):
            if self.prof is not None and self.iter == 6: self._profiled()
            if self.fc is None: return
            self.fc.__exit__(None, None, None)
            REC['epochs'][-1]['flops_step'] = self.fc.get_total_flops(); self.fc = None
        def after_train(self):
            self._profiled()
            if self.depth == 1: REC['epochs'][-1]['train_end'], self.trained = now(), True
        def after_epoch(self):
            if self.depth != 1: return
            if 'train_end' in REC['epochs'][-1]: REC['epochs'][-1]['end'] = now()
            else: REC['epochs'].pop()          # a prediction pass, not a training epoch
        def after_fit(self):
            if self.depth == 1 and self.trained: REC['fit'] = [self.t_fit, now()]
            self.depth -= 1
    return PhaseClock


def peak_child():
    "The chip's bf16 matrix rate in TFLOP/s: 8192³ products, the mean of 10 after 3 warm-ups (KINDS.md's method)."
    import torch
    a, b = (torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3): a @ b
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(10): a @ b
    e.record(); torch.cuda.synchronize()
    print(json.dumps(2 * 8192**3 * 10 / (s.elapsed_time(e) / 1e3) / 1e12))


# ---------------------------------------------------------------- the parent
class GpuSampler:
    "`nvidia-smi` read every `ms` milliseconds in the background: (time, busy %, memory MiB) rows; nothing without a GPU."
    def __init__(self, ms:int=200):
        self.rows, exe = [], shutil.which('nvidia-smi')
        self.p = None if exe is None else subprocess.Popen(
            [exe, '--query-gpu=utilization.gpu,memory.used', '--format=csv,noheader,nounits', '-lms', str(ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.p: threading.Thread(target=self._read, daemon=True).start()
    def _read(self):
        for line in self.p.stdout:
            try: self.rows.append((time.time(), *map(float, line.split(',')[:2])))
            except ValueError: pass
    def busy(self, a, b):
        "Mean GPU busy % between times a and b (None: no sample there)."
        v = [u for t, u, _ in self.rows if a <= t <= b]
        return round(sum(v) / len(v), 1) if v else None
    def close(self):
        if self.p: self.p.terminate()


def make_set(name:str, root:Path, workers:int) -> dict:
    "Write set `name` under `root` (once) and return the `stitchup_train` options that read it."
    from stitchup_nb.fixtures import make_appendix, make_coco, make_voc
    n_train, n_test, img, fmt = SETS[name]
    done = root/'options.json'
    if done.is_file(): return json.loads(done.read_text())
    if fmt == 'voc':
        voc = make_voc(root, n2012=n_train, n2007=n_test, n_test2007=n_test, img_size=img, texture='photo', workers=workers)
        y = voc['VOC2012']
        app = make_appendix(root/'appendix'/'VOCdevkit'/'longtail2012', y['ids'], y['labels'], noise_rates=(0.5,))
        opts = dict(dataset='voc', data_root=str(voc['root']), appendix=str(app))
    else:
        coco = make_coco(root, n_train=n_train, n_val=n_test, img_size=img, texture='photo', workers=workers)
        y = coco['train2017']
        keep = [i for i, l in enumerate(y['labels']) if l.any()]      # images with a label, as COCO-MLT's
        app = make_appendix(root/'appendix'/'coco'/'longtail2017', [y['ids'][i] for i in keep], y['labels'][keep],
                            id_file='img_id.pkl', clean_file=False, noise_rates=(0.5,))
        opts = dict(dataset='coco', data_root=str(coco['root']), appendix=str(app))
    done.write_text(json.dumps(opts))
    return opts


def run_child(opts:dict, work:Path, env:dict, timeout:float, sampler=None, profile:bool=False, compile:bool=False) -> dict:
    "One timed `stitchup_train` in a fresh process: its phases, GPU busy shares, memory, FLOP rate and mAP."
    work.mkdir(parents=True, exist_ok=True)
    spec = {'opts': {**opts, 'work_dir': str(work/'run'), 'quiet': True, 'overwrite': True}, 'record': str(work/'record.json'),
            'profile': profile, 'compile': compile}
    t0 = time.time()
    with open(work/'log.txt', 'w') as log:
        # -X faulthandler: a run killed by a signal (a crash) leaves each thread's Python stack in its log, and so in the error
        p = subprocess.run([sys.executable, '-X', 'faulthandler', __file__, '--child', json.dumps(spec)], stdout=log, stderr=subprocess.STDOUT,
                           env=env, timeout=timeout, cwd=ROOT)
    t1 = time.time()
    if p.returncode:
        tail = (work/'log.txt').read_text()[-1200:]   # the error itself; the header keeps the exit status
        raise RuntimeError(f'the run failed (exit {p.returncode}); the end of {work/"log.txt"}:\n{tail}')
    r = json.loads((work/'record.json').read_text())
    ep = r['epochs']
    decode = sum(b - a for a, b in r['decode'])
    train = [e['train_end'] - e['start'] for e in ep]
    bounds = {'startup': (t0, r['t_imported']), 'decode': (r['decode'][0][0], r['decode'][-1][1]),
              'train': (r['fit'][0], r['fit'][1]), 'score': (r['fit'][1], r['t_done']), 'total': (t0, t1)}
    phases = {'startup': r['t_imported'] - t0, 'decode': decode, 'build': r['fit'][0] - r['t_imported'] - decode,
              'train': sum(train), 'validate': sum(e['end'] - e['train_end'] for e in ep),
              'epoch': [round(e['end'] - e['start'], 2) for e in ep], 'score': r['t_done'] - r['fit'][1],
              'exit': t1 - r['t_done'], 'total': t1 - t0, 'to_first_step': r['fit'][0] - t0}
    flops = sum(e.get('flops_step', 0) * e['steps'] for e in ep)
    final = json.loads((work/'run'/'metrics.json').read_text())['final']
    cfg = json.loads((work/'run'/'config.json').read_text())
    out = {'phases_s': {k: [round(x, 2) for x in v] if isinstance(v, list) else round(v, 2) for k, v in phases.items()},
           'steps': sum(e['steps'] for e in ep), 'train_tflop': round(flops / 1e12, 2),
           'train_tflops_per_s': round(flops / 1e12 / max(sum(train), 1e-9), 2),
           'map': final.get('ensemble', next(iter(final.values())))['total'],
           'precision': cfg['precision'], 'channels_last': cfg['channels_last']}
    if 'peak_mem_gib' in r: out['peak_mem_gib'] = round(r['peak_mem_gib'], 2)
    if 'profile' in r: out['profile'] = r['profile']
    if 'compile_backend' in r: out['compiled'] = r['compile_backend']
    if sampler is not None and sampler.p: out['gpu_busy_pct'] = {k: sampler.busy(*b) for k, b in bounds.items()}
    return out


def machine() -> dict:
    "What ran the bench: GPU (if any), torch, CPU cores, Python."
    q = subprocess.run([sys.executable, '-c', 'import torch, json; print(json.dumps([torch.__version__, torch.version.cuda, '
                        'torch.cuda.get_device_name() if torch.cuda.is_available() else None]))'], capture_output=True, text=True)
    torch_v, cuda_v, gpu = json.loads(q.stdout.strip().splitlines()[-1])
    return {'gpu': gpu, 'torch': torch_v, 'cuda': cuda_v, 'cpu_cores': os.cpu_count(), 'python': platform.python_version()}


def commit() -> str:
    "This checkout's commit, or 'unknown' where ROOT is not itself a git checkout (a copy of the files: see `source`)."
    top = subprocess.run(['git', 'rev-parse', '--show-toplevel'], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if not top or Path(top).resolve() != ROOT: return 'unknown'
    return subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def source() -> str:
    "The training source's hash (`stitchup_nb.experiments.source_hash`), as the benchmark's rows record it."
    q = subprocess.run([sys.executable, '-c', 'from stitchup_nb.experiments import RUNNING; print(RUNNING)'], capture_output=True,
                       text=True, cwd=ROOT, env={**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])})
    return q.stdout.strip().splitlines()[-1] if q.returncode == 0 else 'unknown'


def packed(runs:list, jobs:int, root:Path, env:dict, timeout:float) -> tuple:
    "`runs` (name, options) `jobs` at a time, each in its own process on the one GPU: (results by name, wall seconds)."
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**env, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    t = time.time()
    def one(item):
        name, opts = item
        try: return name, run_child(opts, root/name.replace(' ', '_'), env, timeout)
        except Exception as e: return name, {'error': str(e)}
    with ThreadPoolExecutor(jobs) as ex: res = dict(ex.map(one, runs))
    return res, round(time.time() - t, 1)


def failures(data:dict, first:int=0, packed:tuple=('digits', 'grid')) -> list:
    "The runs of `data` that failed, by name: the timed runs from index `first` on, and the `packed` parts' runs."
    out = [f"{r['set']} {r['name']}" for r in data['runs'][first:] if 'error' in r]
    if 'digits' in packed: out += [n for n, r in data.get('digits', {}).get('runs', {}).items() if 'error' in r]
    if 'grid' in packed: out += [n for n, m in data.get('grid', {}).get('map', {}).items() if m is None]
    return out


def report(data:dict) -> str:
    "The README's markdown: one row per timed run, the Digits checks below; every figure from the JSON."
    if not data.get('runs'): return '_Not yet measured on a GPU: run `python tools/bench_e2e.py` on one._\n'
    m = data['machine']
    lines = [f"Measured on {m['gpu'] or 'a CPU'} ({m['cpu_cores']} CPU cores), torch {m['torch']}, commit {data['commit']} "
             f"(training source {data.get('source', 'unknown')}), "
             f"{data['made'][:10]}; the chip's bf16 matrix rate measured in the same call: "
             f"{data.get('peak_bf16_tflops', 'n/a')} TFLOP/s. Seconds; GPU busy share of the training phase in brackets.", '',
             '| set | run | epochs | precision | decoded-image cache | startup | decode | build | train | validate | each epoch | score | **total** | TFLOP/s in training (% of bf16 peak) | peak GPU memory | mAP |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    peak = data.get('peak_bf16_tflops')
    for r in data['runs']:
        if 'error' in r: lines.append(f"| {r['set']} | {r['name']} | | | | failed: {r['error'][-80:].strip()} |" + ' |' * 10); continue
        p, busy = r['phases_s'], r.get('gpu_busy_pct', {}).get('train')
        compiled = f", compiled ({r['compiled']})" if r.get('compiled') else ''
        rate = f"{r['train_tflops_per_s']}" + (f" ({100 * r['train_tflops_per_s'] / peak:.1f}%)" if peak else '')
        lines.append(f"| {r['set']} | {r['name']} | {len(p['epoch'])} | {r['precision']}{' + channels-last' if r['channels_last'] else ''}{compiled} | {r.get('decode_cache', '')} | "
                     f"{p['startup']} | {p['decode']} | {p['build']} | {p['train']}{f' ({busy:.0f}%)' if busy is not None else ''} | "
                     f"{p['validate']} | {', '.join(map(str, p['epoch']))} | {p['score']} | **{p['total']}** | {rate} | {r.get('peak_mem_gib', 'n/a')} GiB | {r['map']:.2f} |")
    import statistics
    ok = [r for r in data['runs'] if 'error' not in r]
    for s in dict.fromkeys(r['set'] for r in ok):
        rs = [r for r in ok if r['set'] == s and r['method'] == 'full' and r['precision'] == 'bf16' and not r.get('compiled')]
        later = [e for r in rs for e in r['phases_s']['epoch'][1:]]
        cold = [r['phases_s']['decode'] for r in rs if r.get('decode_cache') == 'cold']
        warm = [r['phases_s']['decode'] for r in rs if r.get('decode_cache') == 'warm']
        said = []
        if later: said.append(f"after the first (which includes cuDNN's autotuning) an epoch takes {statistics.median(later):.1f} s (median)")
        if cold and warm: said.append(f"decoding takes {cold[0]:.2f} s from the JPEGs and {min(warm):.2f} s from the decoded-image cache")
        if said: lines += ['', f"{s}, full method in bf16: " + '; '.join(said) + '.']
    if 'voc' in {r['set'] for r in ok}: lines += ['', f"For comparison, {BASELINE}."]
    missing = [f"{s} {n}" for s in dict.fromkeys(r['set'] for r in data['runs']) for n, _, _ in RUNS
               if not any(r['set'] == s and r['name'] == n and 'error' not in r for r in data['runs'])]
    missing += [x for x, k in (('Digits fp32 against bf16', 'digits'), ('the packed Digits grid', 'grid')) if not data.get(k)]
    if missing: lines += ['', 'Not in this file (not yet measured, or failed): ' + ', '.join(missing) + '.']
    if d := data.get('digits'):
        lines += ['', f"Digits (full method, flip 0.5, {d['epochs']} epochs), {len(d['seeds'])} seeds, {d['jobs']} runs at a time on the GPU "
                  f"({d['wall_s']} s for all {2 * len(d['seeds'])}): total mAP fp32 {d['fp32']}, bf16 {d['bf16']}; "
                  f"bf16 − fp32 per seed: {d['diff']} (mean {d['mean_diff']:+.2f})."]
    if g := data.get('grid'):
        lines += ['', f"A {g['runs']}-run Digits grid (BCE and the full method at flip 0.3/0.5/0.7/0.9 × seeds 0-2, {g['epochs']} epochs), "
                  f"{g['jobs']} runs at a time on the one GPU: {g['wall_s']} s ({g['failed']} failed)."]
    return '\n'.join(lines) + '\n'


def parser():
    "The command line (the module's docstring is its --help's epilog)."
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--tiny', action='store_true', help='a 40 + 24 image set, ResNet-18 at 32 px, 1 epoch: the path on a CPU, in seconds')
    ap.add_argument('--coco', action='store_true', help='also the COCO-MLT-sized set')
    ap.add_argument('--no-voc', action='store_true', help='skip the VOC-sized set')
    ap.add_argument('--runs', default=None, help=f"comma list of run names (default: all: {', '.join(n for n, _, _ in RUNS)})")
    ap.add_argument('--epochs', type=int, default=None, help='epochs a run (default: the preset\'s 8; --tiny: 1)')
    ap.add_argument('--digits', type=int, default=0, metavar='N', help='Digits fp32 vs bf16 on seeds 0..N-1 (default: none; needs a CUDA GPU)')
    ap.add_argument('--grid', action='store_true', help='the 24-run Digits grid, --jobs at a time (needs a CUDA GPU)')
    ap.add_argument('--jobs', type=int, default=None, help='runs at a time on the one GPU for --digits and --grid (default 8)')
    ap.add_argument('--profile', action='store_true', help="after a set's runs, one more epoch under torch.profiler (steps 2-6): its tables go to bench_e2e_profile.txt")
    ap.add_argument('--budget', type=float, default=None, help='seconds (> 0): start no step after this (what ran is written)')
    ap.add_argument('--root', default=None, help='folder for the sets, caches and runs (default: a temporary folder, removed)')
    ap.add_argument('--out', default=None, help='the JSON (default: nbs/experiments/results/bench_e2e.json; --tiny: bench_e2e_tiny.json)')
    ap.add_argument('--append', action='store_true', help='add these runs to the JSON already at --out (same training source and machine)')
    ap.add_argument('--overwrite', action='store_true', help='replace the JSON already at --out (without --append or --overwrite, '
                    'an existing --out is refused)')
    ap.add_argument('--report', action='store_true', help="only rewrite the README's table (bench_e2e.md beside the JSON)")
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--peak', action='store_true', help=argparse.SUPPRESS)
    return ap


KEYS = ('made', 'command', 'commit', 'machine', 'runs')     # what every JSON of this tool holds (`started`)


def read_json(ap, flag:str, out:Path) -> dict:
    "The JSON at `out` that `flag` (--append, --report) reads, refused by name unless this tool wrote it."
    try: data = json.loads(out.read_text())
    except ValueError as e: ap.error(f'{flag}: {out} is not JSON ({e}): pass the --out of an earlier call of this tool')
    except OSError as e: ap.error(f'{flag}: {out} cannot be read ({e.strerror})')
    if not isinstance(data, dict): why = f'it holds a {type(data).__name__}, not an object of {", ".join(KEYS)}'
    elif missing := [k for k in KEYS if k not in data]: why = f"it has no {', '.join(missing)}"
    elif not (isinstance(data['runs'], list) and isinstance(data['machine'], dict)): why = 'its runs is not a list or its machine not an object'
    else: return data
    ap.error(f'{flag}: {out} is not a JSON of this tool ({why}): pass the --out of an earlier call of this tool')


def write_report(ap, out:Path, md:Path):
    "--report: the README's table `md` rewritten from the JSON `out`."
    if not out.is_file(): ap.error(f'--report: {out} does not exist; run the bench first (or pass --out)')
    md.write_text(report(read_json(ap, '--report', out))); print(f'wrote {md}')


def wanted_runs(ap, a) -> list:
    "The names of the timed runs to make, every option checked."
    names = [n for n, _, _ in RUNS]
    want = names if a.runs is None else [s.strip() for s in a.runs.split(',')]
    if bad := [n for n in want if n not in names]: ap.error(f"--runs: unknown {bad}; choose from {', '.join(names)}")
    if a.epochs is not None and a.epochs < 1: ap.error(f'--epochs must be >= 1, got {a.epochs}')
    if a.digits < 0 or (a.jobs is not None and a.jobs < 1): ap.error('--digits must be >= 0 and --jobs >= 1')
    if a.tiny and (k := '--coco' if a.coco else '--no-voc' if a.no_voc else None):
        ap.error(f'--tiny times its own 40 + 24 image set, not the VOC- or COCO-sized ones: drop {k} (or --tiny)')
    if a.no_voc and not (a.tiny or a.coco or a.digits or a.grid):
        ap.error('--no-voc leaves nothing to run: add --coco, --digits N or --grid (or drop --no-voc)')
    if a.runs is not None and a.no_voc and not a.coco:
        ap.error(f'--runs {a.runs} picks the timed runs of the VOC and COCO sets, and --no-voc without --coco times none: '
                 'drop --runs (or add --coco)')
    if a.jobs is not None and not (a.digits or a.grid):
        ap.error(f'--jobs {a.jobs} packs the Digits runs of --digits and --grid; the timed runs go one at a time: drop --jobs')
    a.jobs = a.jobs or 8
    try: near = a.root and next(q for q in (Path(a.root), *Path(a.root).parents) if q.exists())
    except OSError as e:        # Path.exists raises where a folder on the way cannot be searched (EACCES): not a traceback
        ap.error(f'--root {a.root}: cannot look there ({e.strerror}: {e.filename}); pass a folder you can read and write '
                 '(or leave --root out: a temporary one)')
    if near and not near.is_dir():
        ap.error(f'--root {a.root}: {near} is not a folder; pass a folder (or leave --root out: a temporary one)')
    if a.budget is not None and not a.budget > 0: ap.error(f'--budget must be > 0 seconds, got {a.budget:g} (leave it out: no limit)')
    return want


def check_out(ap, a, out:Path):
    "--out: a JSON already there is kept unless --append or --overwrite says what to do with it; a folder is refused."
    if a.append and a.overwrite: ap.error('--append adds to the JSON at --out and --overwrite replaces it: pass one')
    if out.is_dir() or out.with_suffix('.md').is_dir(): ap.error(f'--out {out}: it (or its .md beside it) is a folder; pass a JSON file')
    if out.parent.exists() and not out.parent.is_dir(): ap.error(f'--out {out}: {out.parent} is not a folder')
    if out.exists() and not (a.append or a.overwrite):
        ap.error(f'--out {out} exists: pass --append to add these runs to it, --overwrite to replace it, or another --out')


def started(ap, a, out:Path, argv, here:dict) -> dict:
    "The JSON this call writes, before its runs: what made it (on `here`, from `machine`); with --append, the JSON at `out` (checked to be alike)."
    data = {'made': time.strftime('%Y-%m-%dT%H:%M:%S'), 'command': ' '.join(['python tools/bench_e2e.py', *(argv or sys.argv[1:])]),
            'commit': commit(), 'source': source(), 'machine': here, 'runs': []}
    if a.append and out.is_file():
        old = read_json(ap, '--append', out)
        if (old.get('source'), old.get('machine')) != (data['source'], data['machine']):
            ap.error(f'--append: {out} was made by source {old.get("source")} on {old.get("machine")}, not this one: pass another --out')
        data = {**old, 'command': old['command'] + ' ; ' + data['command']}
    return data


def peak_rate(env:dict) -> float | None:
    "The chip's bf16 matrix rate in TFLOP/s (`--peak` in a fresh process); None where that failed."
    q = subprocess.run([sys.executable, __file__, '--peak'], capture_output=True, text=True, env=env)
    return round(json.loads(q.stdout.strip().splitlines()[-1]), 1) if q.returncode == 0 else None


def timed_runs(s:str, opts:dict, want:list, root:Path, env:dict, deadline:float, sampler, data:dict, save):
    "Set `s`'s runs named in `want`, one after another (none started past `deadline`): each added to `data`, then saved."
    for name, method, precision in RUNS:
        if name not in want: continue
        if time.time() > deadline: print(f'budget spent: {s} {name} not run', flush=True); continue
        print(f'{s} {name} ({method}, --precision {precision}) ...', flush=True)
        cache = 'warm' if any((root/s/'cache'/'decoded').glob('*.npy')) else 'cold'
        try: r = run_child({**opts, 'method': method, 'precision': precision}, root/'runs'/f'{s}_{name.replace(" ", "_")}',
                           env, max(deadline - time.time(), 60), sampler, compile=name in COMPILED)
        except (RuntimeError, subprocess.TimeoutExpired) as e: r = {'error': str(e)}; print(r['error'], flush=True)
        data['runs'].append({'set': s, 'name': name, 'method': method, 'decode_cache': cache, **r})
        if 'error' not in r: print(f"  total {r['phases_s']['total']} s, train {r['phases_s']['train']} s, mAP {r['map']:.2f}", flush=True)
        save()


def profiled(s:str, opts:dict, root:Path, env:dict, deadline:float, out:Path):
    "--profile: one more epoch of set `s` under torch.profiler, its tables added to the `_profile.txt` beside `out`."
    print(f'{s} profiled (full, 1 epoch) ...', flush=True)
    try:
        r = run_child({**opts, 'epochs': 1, 'method': 'full'}, root/'runs'/f'{s}_profiled', env,
                      max(deadline - time.time(), 60), profile=True)
        prof = out.with_name(out.stem + '_profile.txt')
        with open(prof, 'a') as f:
            for k, table in r.get('profile', {}).items(): f.write(f'# {s}: steps 2-6 of one epoch, sorted by {k}\n{table}\n')
        print(f'  tables in {prof}', flush=True)
    except (RuntimeError, subprocess.TimeoutExpired) as e: print(e, flush=True)


def digits_runs(a, root:Path, env:dict, deadline:float, data:dict, save):
    "--digits and --grid: Digits runs, --jobs at a time on the one GPU; each part added to `data`, then saved."
    dig = {'dataset': 'digits', 'noise_rate': .5, 'noise_kind': 'flip', **({'epochs': a.epochs} if a.epochs else {})}
    if (a.digits or a.grid) and time.time() < deadline:    # one run first: it fills the caches the others read
        run_child({**dig, 'seed': 0, 'epochs': 1}, root/'runs'/'digits_warm', env, max(deadline - time.time(), 60))
    if a.digits and time.time() < deadline:
        seeds = list(range(a.digits))
        res, wall = packed([(f'digits {p} {s}', {**dig, 'seed': s, 'precision': p}) for s in seeds for p in ('fp32', 'bf16')],
                           a.jobs, root/'runs', env, max(deadline - time.time(), 60))
        m = {p: [res[f'digits {p} {s}'].get('map') for s in seeds] for p in ('fp32', 'bf16')}
        diff = [round(b - f, 2) for f, b in zip(m['fp32'], m['bf16']) if f is not None and b is not None]
        data['digits'] = {'seeds': seeds, 'jobs': a.jobs, 'epochs': a.epochs or 8, 'wall_s': wall, 'runs': res,
                          **{p: [None if v is None else round(v, 2) for v in m[p]] for p in m},
                          'diff': diff, 'mean_diff': sum(diff) / len(diff) if diff else float('nan')}
        print(f"digits: fp32 {data['digits']['fp32']} bf16 {data['digits']['bf16']} ({wall} s)", flush=True); save()
    if a.grid and time.time() < deadline:
        runs = [(f'grid {m} {r} {s}', {**dig, 'method': m, 'noise_rate': r, 'seed': s}) for m, r in GRID for s in range(3)]
        res, wall = packed(runs, a.jobs, root/'runs', env, max(deadline - time.time(), 60))
        data['grid'] = {'runs': len(runs), 'jobs': a.jobs, 'epochs': a.epochs or 8, 'wall_s': wall, 'failed': sum('error' in v for v in res.values()),
                        'map': {k: v.get('map') for k, v in res.items()}}
        print(f"grid: {len(runs)} runs in {wall} s", flush=True); save()


def main(argv=None):
    ap = parser()
    a = ap.parse_args(argv)
    if a.child: return child(json.loads(a.child))
    if a.peak: return peak_child()
    out = Path(a.out or RESULTS/('bench_e2e_tiny.json' if a.tiny else 'bench_e2e.json'))
    md = out.with_suffix('.md')
    if a.report: return write_report(ap, out, md)
    want = wanted_runs(ap, a)
    check_out(ap, a, out)
    if a.append and out.is_file(): read_json(ap, '--append', out)     # before the machine is asked (torch's import)
    sets = ['tiny'] if a.tiny else [s for s, on in (('voc', not a.no_voc), ('coco', a.coco)) if on]
    t_start, deadline = time.time(), time.time() + (a.budget or 1e9)
    here = machine()
    if a.digits and here['gpu'] is None:      # before the source's hash, which imports the whole kit
        ap.error('--digits compares exact fp32 with bf16, which needs a CUDA GPU (on a CPU both run in fp32): drop --digits')
    if a.grid and here['gpu'] is None:
        ap.error('--grid packs --jobs Digits runs at a time on one CUDA GPU, and this machine has none: drop --grid')
    data = started(ap, a, out, argv, here)
    first = len(data['runs'])       # this call's runs start here (--append keeps the earlier ones)
    root = Path(a.root) if a.root else Path(tempfile.mkdtemp(prefix='bench_e2e_'))     # every option checked: now write
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'PYTHONUNBUFFERED': '1',
           'PYTHONPATH': os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])}
    gpu = data['machine']['gpu'] is not None
    if gpu and 'peak_bf16_tflops' not in data: data['peak_bf16_tflops'] = peak_rate(env)
    save = lambda: (out.parent.mkdir(parents=True, exist_ok=True), out.write_text(json.dumps(data, indent=1) + '\n'), md.write_text(report(data)))
    sampler = GpuSampler() if gpu else None
    extra = {**(TINY if a.tiny else {}), 'epochs': a.epochs or (1 if a.tiny else 8), 'pretrained': False}
    try:
        for s in sets:
            t = time.time()
            opts = {**make_set(s, root/s, os.cpu_count() or 1), **extra}
            data.setdefault('sets', {})[s] = {'train': SETS[s][0], 'test': SETS[s][1], 'jpeg': 'x'.join(map(str, SETS[s][2])),
                                              'written_s': round(time.time() - t, 1)}
            set_env = {**env, 'STITCHUP_CACHE': str(root/s/'cache')}      # the set's own decoded-image cache
            timed_runs(s, opts, want, root, set_env, deadline, sampler, data, save)
            if a.profile and time.time() < deadline: profiled(s, opts, root, set_env, deadline, out)
        digits_runs(a, root, env, deadline, data, save)
    finally:
        if sampler: sampler.close()
        if not a.root: shutil.rmtree(root, ignore_errors=True)
    save()
    print(f'wrote {out} and {md} ({time.time() - t_start:.0f} s)')
    if failed := failures(data, first, tuple(k for k in ('digits', 'grid') if getattr(a, k))):  # in the JSON and the table; the exit status says it too
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}; each one's error is in {out} and above", file=sys.stderr)
        return 1


if __name__ == '__main__': sys.exit(main())
