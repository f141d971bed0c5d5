"""Trace one benchmark row step by step, to find where two machines part: a row re-runs to its numbers on the machine
that made it and to other numbers on another x86-64 machine (nbs/experiments/results/cross_machine.md measures how far
apart), while the behaviour fingerprints agree.

    python tools/trace_row.py --csv nbs/experiments/results/benchmark.csv --row 12 --out trace_A.json
    # the same command on the other machine, into trace_B.json; then, on either:
    python tools/trace_row.py --compare trace_A.json trace_B.json

A trace re-trains the row's configuration (from its `config` column, with its thread count and the CPU kernels the
benchmark pins, `stitchup_nb.pins.CPU_ENV`) for its first --steps training steps and records:
- the machine, its CPU kernels, torch, and a SHA-256 of every cached glyph-pretrained CNN (the files Digits rows start from);
- a digest of each of a few primitive operations on fixed inputs (`primitives`: Beta sampling, exp/log, MKL's matrix
  product, convolutions through oneDNN, NNPACK and ATen, resizing, numpy), so that --compare names the libraries
  whose arithmetic differs;
- a digest of the weights the run starts from (pretrained backbone, initialised head);
- per step: digests of the batch (images, targets), the loss's exact value, and a digest of every weight after the step.
--compare says whether the pretrained files and the starting weights agree, then names the first step where the two
traces differ and what differed there (data, loss, weights): data first points at sampling or augmentation, a loss or
weights first with equal data at the arithmetic (kernels). Exit status 1 when they differ.

Every option is checked before anything is computed: the CSV's columns and the row's configuration, --out's folder
(a trace is evidence: an existing --out is refused), and each --compare file (a trace this tool wrote).
"""
import argparse, csv, hashlib, json, sys, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
# the kit (and torch) is imported only once the options are checked: a refusal or --compare answers at once


def _tensors(x):
    "The tensors in a (nested) batch, in order."
    if hasattr(x, 'detach'): yield x
    elif isinstance(x, (tuple, list)):
        for y in x: yield from _tensors(y)


def primitives() -> dict:
    """A digest of each of a few operations a run is made of, computed here on fixed inputs with one thread: where two
    machines' traces part, the primitives that differ say which library's arithmetic does (the sampler of Beta(α, α)
    that MixUp and CutMix draw λ from, libm-style functions, MKL's matrix product, a convolution through oneDNN,
    through NNPACK (16 or more images, oneDNN off) and through ATen's own im2col, its backward, resizing, numpy)."""
    import numpy as np
    import torch, torch.nn.functional as F
    from stitchup_nb.evidence import probe_digest
    from stitchup_nb.experiments import torch_threads
    g = lambda seed: torch.Generator().manual_seed(seed)
    x = torch.randn(32, 16, 20, 20, generator=g(1)); w = torch.randn(24, 16, 3, 3, generator=g(2)) / 12
    a, b = torch.randn(256, 512, generator=g(3)), torch.randn(512, 256, generator=g(4))
    t = torch.linspace(-4, 4, 4097)
    def conv(n, onednn, grad=False):
        with torch.backends.mkldnn.flags(enabled=onednn):
            xi = x[:n].clone().requires_grad_(grad)
            y = F.conv2d(xi, w, padding=1)
            if not grad: return y
            y.square().sum().backward(); return xi.grad
    def beta():
        torch.manual_seed(0); return torch.distributions.Beta(torch.tensor(.4), torch.tensor(.4)).sample((4096,))
    out = {}
    warnings.filterwarnings('ignore', message='TF32 acceleration on top of oneDNN')    # said on turning oneDNN off
    with torch_threads(1), torch.no_grad():
        ops = {'beta': beta, 'gamma': lambda: torch._standard_gamma(torch.full((4096,), .4), generator=g(5)),
               'exp_log_tanh_pow': lambda: torch.stack([t.exp(), t.abs().add(1e-3).log(), t.tanh(), t.abs().pow(.37)]),
               'matmul': lambda: a @ b, 'conv_onednn': lambda: conv(32, True), 'conv_nnpack': lambda: conv(32, False),
               'conv_native': lambda: conv(8, False),
               'resize': lambda: F.interpolate(x, size=(33, 27), mode='bilinear', align_corners=False),
               'numpy_beta': lambda: torch.from_numpy(np.random.default_rng(0).beta(.4, .4, 4096)),
               'numpy_exp': lambda: torch.from_numpy(np.exp(np.linspace(-4, 4, 4097, dtype=np.float32)))}
        for name, op in ops.items(): out[name] = probe_digest(op())
    with torch_threads(1):
        out['conv_backward'] = probe_digest(conv(32, False, grad=True))
    return out


def trace(row:dict, steps:int) -> dict:
    "Re-train CSV row `row` for its first `steps` training steps; what `--out` holds."
    from fastai.callback.core import Callback, CancelFitException
    from fastai.learner import defaults
    from stitchup_nb.digits import cache_dir
    from stitchup_nb.evidence import probe_digest      # the fingerprints' digest of tensors
    from stitchup_nb.backbones import cpu_kernels
    from stitchup_nb.experiments import machine, torch_threads
    from stitchup_nb.train import run_training, train_config
    import torch
    state = lambda model: probe_digest(*[v for _, v in sorted(model.state_dict().items())])
    rec = dict(machine=machine(), kernels=cpu_kernels(), torch=torch.__version__, method=row['method'], kind=row['kind'],
               rate=row['rate'], seed=row['seed'], csv_total=row.get('total'), steps=[],
               pretrained={p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(cache_dir().glob('digits_cnn_*.pth'))},
               primitives=primitives())

    class Trace(Callback):
        order = 1001                              # after every other callback's after_batch (the optimiser step included)
        def before_fit(self): rec['start'] = state(self.learn.model)
        def after_batch(self):
            if not self.training: return
            rec['steps'].append(dict(x=probe_digest(*_tensors(self.xb)), y=probe_digest(*_tensors(self.yb)),
                                     loss=float(self.learn.loss.detach()).hex(), weights=state(self.learn.model)))
            if len(rec['steps']) >= steps: raise CancelFitException()

    cfg = {**json.loads(row['config']), 'quiet': True, 'work_dir': None}
    defaults.callbacks.append(Trace)
    try:
        with torch_threads(int(row.get('threads') or 1)): run_training(train_config(**cfg))
    finally: defaults.callbacks.remove(Trace)
    return rec


COLUMNS = ('method', 'kind', 'rate', 'seed', 'config')       # what `trace` reads of a row (a results CSV of tools/benchmark.py)
STEP = ('x', 'y', 'loss', 'weights')                          # what `compare` reads of each step


def read_trace(ap, p) -> dict:
    "--compare's file `p`, refused by name unless it is a trace this tool wrote (what `compare` reads)."
    try: t = json.loads(Path(p).read_text())
    except (OSError, ValueError) as e: ap.error(f'--compare: {p} is not a trace ({e})')
    if not isinstance(t, dict): why = f'it holds a {type(t).__name__}, not an object'
    elif not isinstance(t.get('pretrained'), dict): why = 'it has no pretrained object (the glyph CNN files\' digests)'
    elif not (isinstance(t.get('steps'), list) and all(isinstance(s, dict) and all(k in s for k in STEP) for s in t['steps'])):
        why = f"its steps is not a list of steps with {', '.join(STEP)}"
    else: return t
    ap.error(f'--compare: {p} is not a trace of this tool ({why}): pass two --out files of tools/trace_row.py')


def read_row(ap, a) -> dict:
    "--csv's row --row, its columns and configuration checked (what `trace` reads) before anything is computed."
    if not Path(a.csv).is_file(): ap.error(f'--csv: {a.csv} does not exist')
    try:
        with open(a.csv, newline='') as f: r = csv.DictReader(f); rows, cols = list(r), r.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e: ap.error(f'--csv: {a.csv} cannot be read as a CSV ({e})')
    if missing := [c for c in COLUMNS if c not in cols]:
        ap.error(f"--csv: {a.csv} is not a results CSV of tools/benchmark.py (it has no {', '.join(missing)} column)")
    if not rows: ap.error(f'--csv: {a.csv} has no rows')
    if not 0 <= a.row < len(rows): ap.error(f'--row must be in 0..{len(rows) - 1} for {a.csv}, got {a.row}')
    row = rows[a.row]
    try: cfg = json.loads(row['config'] or '')
    except (TypeError, ValueError): cfg = None
    if not isinstance(cfg, dict): ap.error(f'--row {a.row} of {a.csv}: its config is not a JSON object of options, so it cannot be re-trained')
    try: int(row.get('threads') or 1)
    except ValueError: ap.error(f"--row {a.row} of {a.csv}: its threads {row['threads']!r} is not a whole number")
    return row


def compare(a:dict, b:dict, log=print) -> int:
    "Where traces `a` and `b` part: 0 if they agree on every step both recorded, else 1."
    for k in ('machine', 'kernels', 'torch'): log(f'{k}: {a.get(k)} | {b.get(k)}')
    same_files = {n: d for n, d in a['pretrained'].items() if b['pretrained'].get(n) == d}
    for n in sorted(set(a['pretrained']) | set(b['pretrained'])):
        if n not in same_files: log(f"pretrained {n}: {a['pretrained'].get(n, 'absent')} | {b['pretrained'].get(n, 'absent')}")
    log(f"pretrained glyph CNN files: {len(same_files)} identical of {len(set(a['pretrained']) | set(b['pretrained']))}")
    pa, pb = a.get('primitives', {}), b.get('primitives', {})
    if pa and pb:          # traces written before primitives were recorded have none
        both = [k for k in pa if k in pb]
        differ = [k for k in both if pa[k] != pb[k]]
        log(f"primitives that differ: {', '.join(differ)} ({len(differ)} of {len(both)})" if differ else
            f'primitives: all {len(both)} identical')
    if a.get('start') != b.get('start'):
        log(f"the starting weights differ ({a.get('start')} | {b.get('start')}): the pretraining or the initialisation parts first")
        return 1
    log('the starting weights are identical')
    for i, (s, t) in enumerate(zip(a['steps'], b['steps']), 1):
        diff = [k for k in ('x', 'y', 'loss', 'weights') if s[k] != t[k]]
        if diff:
            what = 'the batch' if {'x', 'y'} & set(diff) else 'the loss' if 'loss' in diff else 'the weights after the step'
            log(f'first difference at step {i}: {", ".join(diff)} differ ({what} first)'
                + (f"; loss {float.fromhex(s['loss']):.9g} | {float.fromhex(t['loss']):.9g}" if 'loss' in diff else ''))
            return 1
    log(f"identical over the {min(len(a['steps']), len(b['steps']))} steps both traced")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--csv', help='the benchmark CSV holding the row')
    ap.add_argument('--row', type=int, help="the row's index in the CSV (0: the first data row)")
    ap.add_argument('--steps', type=int, default=20, help='training steps to trace (default 20)')
    ap.add_argument('--out', help='where to write the trace (JSON)')
    ap.add_argument('--compare', nargs=2, metavar='TRACE', help='two traces: where they part')
    a = ap.parse_args(argv)
    if a.compare:
        if a.csv or a.row is not None or a.out: ap.error('--compare takes two traces and nothing else')
        sys.exit(compare(*[read_trace(ap, p) for p in a.compare]))
    if not (a.csv and a.row is not None and a.out): ap.error('pass --csv, --row and --out (or --compare A B)')
    if a.steps < 1: ap.error(f'--steps must be >= 1, got {a.steps}')
    row = read_row(ap, a)
    if Path(a.out).exists(): ap.error(f'--out {a.out} exists: a trace is evidence, choose another name')
    if not Path(a.out).parent.is_dir(): ap.error(f'--out {a.out}: its folder {Path(a.out).parent} does not exist; make it first')
    from stitchup_nb.pins import CPU_ENV     # light: torch is not imported yet
    from _restart import restart_in           # tools/_restart.py
    restart_in(CPU_ENV, __file__, argv)       # the kernels the benchmark pins, before torch starts
    rec = trace(row, a.steps)
    Path(a.out).write_text(json.dumps(rec, indent=1))
    print(f"wrote {a.out}: {len(rec['steps'])} steps of {rec['method']} {rec['kind']} {rec['rate']} seed {rec['seed']} on {rec['machine']}")


if __name__ == '__main__': main()
