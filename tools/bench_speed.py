"""Speed and memory of the full method against single-branch BCE, measured in one run.

    python tools/bench_speed.py                      # Digits CNN (64 px) and ResNet-50 (224 px) on this machine
    python tools/bench_speed.py --models digits      # just one
    python tools/bench_speed.py --gpu                # on a CUDA device: also fp32 vs bf16 + channels_last
    python tools/bench_speed.py --peers              # the peer methods' step time against BCE's (nbs/07g_peers.ipynb)

Per random-batch image the method costs ~16 forward-equivalents (two branches, each: forward +
backward on anchor and partner, 2 × 3, plus the other branch's no-grad forward on both, 2), against
~3 for single-branch BCE (one forward + backward): a floor ratio of 16/3 = 5.33 with equal random
and balanced batches. The script times training steps of both learners on the same backbone,
batch size and machine, and prints the measured ratio next to that floor, plus data-only
throughput (loading + augmentation, which must outpace training at least 3×) and peak memory.
All figures come from this one run; nothing is assumed.

`--peers` instead times one training step of each peer method of the table (ASL, large-loss
rejection, MixUp, CutMix: one branch on random batches, like BCE) against single-branch BCE on the
same backbone, batch and machine, and prints each one's ratio to BCE: median step times over interleaved rounds (each learner in
turn, `--rounds` times), with their interquartile range relative to the median (how steady the
machine was).

`--out FILE.json` also writes what was measured and where (the processor, threads, torch, the commit, the date) with
the rows, and, beside it, FILE.md: the table the README includes (`--report FILE.json` renders FILE.md again from it).

Every option is checked before anything is timed: the model names, --steps, --rounds and --cpu_bs (each >= 1), --gpu
(a CUDA device), and --out (its folder exists; a file already there, the JSON or its .md, is refused, not overwritten).
"""
import argparse, datetime, json, resource, time, warnings
from pathlib import Path

import numpy as np
import torch
from stitchup_nb.config import OPTIONS    # the kit before fastai: its import silences fastai's use of torch.jit.script
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.progress import ProgressCallback

from stitchup_nb.data import LabelledSet, class_groups
from stitchup_nb.speed import gpu_speed, use_precision
from stitchup_nb.loaders import stitch_dls
from stitchup_nb.augment import BatchAug
from stitchup_nb.colearn import colearner
from stitchup_nb.methods import PRESETS
from stitchup_nb.experiments import commit, machine

FLOOR = 16 / 3


class StepTimer(Callback):
    "Time training steps (after `skip` warm-up steps) and stop after `n` timed ones."
    order = 100
    def __init__(self, n, skip=2): self.n, self.skip, self.times = n, skip, []
    def _sync(self):
        if torch.cuda.is_available(): torch.cuda.synchronize()
    def before_batch(self): self._sync(); self.t0 = time.perf_counter()
    def after_batch(self):
        if not self.training: return
        self._sync(); self.times.append(time.perf_counter() - self.t0)
        if len(self.times) >= self.n + self.skip: raise CancelFitException
    @property
    def step(self): return float(np.median(self.times[self.skip:]))


def synthetic_set(n, size, c=20, seed=0):
    "A VOC-sized long-tailed multi-label set of random images (speed only: content is irrelevant)."
    rng = np.random.default_rng(seed)
    p = np.geomspace(0.4, 0.01, c)
    labels = (rng.random((n, c)) < p).astype(np.uint8)
    labels[labels.sum(1) == 0, 0] = 1
    imgs = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return LabelledSet(imgs, labels, [f'c{i}' for i in range(c)], class_groups(labels.sum(0)), name=f'synthetic {size}px')


def learners(train, test, arch, bs, device, precision='fp32', channels_last=False):
    "Single-branch BCE and the full method on the same backbone, batch and device."
    common = dict(bs=bs, aug=BatchAug(), device=device, valid_bs=bs)
    th = PRESETS['digits']['thresholds']      # the full method's thresholds (the paper's VOC values)
    bce = colearner(stitch_dls(train, train.labels, test, samplers=('random',), partners=False, **common),
                    arch, stitch=None, pretrained=arch == 'digits_cnn')
    full = colearner(stitch_dls(train, train.labels, test, data_factor=1, **common), arch, thresholds=th,
                     pretrained=arch == 'digits_cnn')
    gpu_speed(precision, device=device)        # TF32 (unless exact fp32) and cuDNN autotuning, as stitchup_train sets them
    for l in (bce, full):
        l.remove_cb(ProgressCallback)
        use_precision(l, precision, channels_last)
    return bce, full


def single_branch(train, test, arch, bs, device, precision='fp32', channels_last=False):
    "Single-branch BCE on random batches (the peers' base), as `learners` builds it."
    l = colearner(stitch_dls(train, train.labels, test, samplers=('random',), partners=False, bs=bs, aug=BatchAug(),
                             device=device, valid_bs=bs), arch, stitch=None, pretrained=arch == 'digits_cnn')
    l.remove_cb(ProgressCallback)
    gpu_speed(precision, device=device)
    use_precision(l, precision, channels_last)
    return l


def bench_peers(name, arch, size, bs, n_steps, device, rounds=3, **kw):
    "Step time of each peer method against BCE's, on the same data, backbone and batch, in interleaved rounds."
    from stitchup_nb.peers import make_peer
    from stitchup_nb.train import train_config
    from stitchup_nb.methods import METHODS
    train, test = data_for(arch, size, bs)
    learns = {'bce': single_branch(train, test, arch, bs, device, **kw)}
    # the run configuration a peer reads (co-teaching builds its twin networks from it): the same backbone as BCE's,
    # with the stages that `single_branch` trains (all for the Digits CNN, layer4 for ResNets) and no weight download
    same = dict(arch=arch, pretrained=arch == 'digits_cnn', train_stages=5 if arch == 'digits_cnn' else 1)
    for method, m in METHODS.items():
        if not m.get('peer'): continue
        learns[method] = single_branch(train, test, arch, bs, device, **kw)
        peer = make_peer(train_config(dataset='digits', method=method, **same))
        if (net := peer.model(len(train.classes))) is not None: learns[method].model = net    # co-teaching's twin networks
        peer.setup(learns[method])
    steps = {k: [] for k in learns}
    for _ in range(rounds):            # round-robin, so that a machine that slows down or speeds up hits every method alike
        for k, learn in learns.items():
            timer = StepTimer(n_steps)
            learn.fit(1, 1e-3, cbs=[timer])
            steps[k] += timer.times[timer.skip:]
    t = {k: float(np.median(v)) for k, v in steps.items()}
    spread = {k: float(np.subtract(*np.percentile(v, [75, 25])) / np.median(v)) for k, v in steps.items()}
    return [dict(model=name, batch=bs, device=str(device), method=k, label=METHODS[k]['label'], step_s=round(t[k], 4),
                 iqr_rel=round(spread[k], 2), steps=len(steps[k]), ratio_to_bce=round(t[k] / t['bce'], 2)) for k in learns]


def data_for(arch, size, bs):
    "Digits-MLT for the Digits CNN; a synthetic VOC-sized set otherwise."
    if arch == 'digits_cnn':
        from stitchup_nb.digits import digits_mlt
        return digits_mlt()
    train = synthetic_set(max(8 * bs * 4, 256), size)
    return train, train.subset(np.arange(2 * bs), name='synthetic test')


def step_time(learn, n):
    timer = StepTimer(n)
    learn.fit(1, 1e-3, cbs=[timer])
    return timer.step


def data_rate(dl, n):
    "Images per second of loading + on-device augmentation alone (anchors and partners, all branches)."
    it, imgs = iter(dl), 0
    next(it)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        xs = next(it)[0]
        imgs += sum(len(x) for x in xs)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    return imgs / (time.perf_counter() - t0)


def bench(name, arch, size, bs, n_steps, device, **kw):
    train, test = data_for(arch, size, bs)
    bce, full = learners(train, test, arch, bs, device, **kw)
    if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()
    t_bce = step_time(bce, n_steps)
    t_full = step_time(full, n_steps)
    train_rate = bs / t_full                                     # random-batch anchors per second
    all_imgs = sum(len(x) for x in full.dls.train.one_batch()[0])  # images one step loads
    d_rate = data_rate(full.dls.train, min(10, len(full.dls.train) - 2))
    row = dict(model=name, batch=bs, device=str(device), precision=kw.get('precision', 'fp32'),
               channels_last=kw.get('channels_last', False), bce_step_s=round(t_bce, 4), full_step_s=round(t_full, 4),
               ratio=round(t_full / t_bce, 2), floor=round(FLOOR, 2), ratio_over_floor=round(t_full / t_bce / FLOOR, 3),
               train_img_s=round(all_imgs / t_full, 1), data_img_s=round(d_rate, 1),
               data_over_train=round(d_rate / (all_imgs / t_full), 1), anchors_per_s=round(train_rate, 1),
               peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2))
    if torch.cuda.is_available(): row['peak_cuda_gb'] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


MODELS = ('digits', 'resnet50')
TARGET_RATIO, TARGET_DATA = 1.15, 3      # the targets: a step-time ratio within 1.15x of the floor, data-only throughput >= 3x training's


def measured(a, device) -> dict:
    "Where and how this call measures: what the JSON records beside its rows, and the table's heading says."
    return dict(machine=torch.cuda.get_device_name() if device.type == 'cuda' else machine(), threads=torch.get_num_threads(),
                torch=torch.__version__, commit=commit(), date=datetime.date.today().isoformat(), steps=a.steps,
                command='python tools/bench_speed.py' + (' --peers' if a.peers else '') + (' --gpu' if a.gpu else '')
                        + (f' --models {a.models}' if a.models != 'digits,resnet50' else ''))


def met(r) -> bool:
    "Whether row `r` meets both targets."
    return r['ratio_over_floor'] <= TARGET_RATIO and r['data_over_train'] >= TARGET_DATA


def markdown(data:dict) -> str:
    "The README's speed table from a JSON this tool wrote (`--out`): a heading saying where it was measured, a row a model."
    m, rows = data['measured'], data['rows']
    cuda = any('peak_cuda_gb' in r for r in rows)
    head = (f"Measured by `{m['command']}` on {m['machine']} ({m['threads']} threads), torch {m['torch']}, commit "
            f"{m['commit']}, {m['date']}: median of {m['steps']} steps after 2 warm-up steps.")
    cols = ['model', 'batch', 'precision', 'BCE step', 'full-method step', 'ratio', 'ratio / floor',
            'data-only / training throughput', 'peak RSS', *(['peak CUDA memory'] if cuda else [])]
    lines = [head, '', '| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    for r in rows:
        cells = [r['model'], r['batch'], r['precision'] + (' + channels-last' if r['channels_last'] else ''),
                 f"{r['bce_step_s']} s", f"{r['full_step_s']} s", r['ratio'], r['ratio_over_floor'], f"{r['data_over_train']}×",
                 f"{r['peak_rss_gb']} GB", *([f"{r['peak_cuda_gb']} GiB" if 'peak_cuda_gb' in r else ''] if cuda else [])]
        lines.append('| ' + ' | '.join(map(str, cells)) + ' |')
    missed = [r['model'] for r in rows if not met(r)]
    lines += ['', f"The targets (a step-time ratio within {TARGET_RATIO}× of the 16/3 floor, data-only throughput at least "
                  f"{TARGET_DATA}× training's): met by {len(rows) - len(missed)} of {len(rows)} rows"
                  + (f"; not by {', '.join(missed)}." if missed else '.')]
    return '\n'.join(lines) + '\n'


def options(argv=None):
    "The command line, every option checked before anything is timed (`--models` as a list in `a.model_list`)."
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', default='digits,resnet50', help=f"comma list: {', '.join(MODELS)}")
    ap.add_argument('--steps', type=int, default=5, help='timed steps per learner (after 2 warm-up steps)')
    ap.add_argument('--cpu_bs', type=int, default=8, help='ResNet-50 batch on CPU')
    ap.add_argument('--gpu', action='store_true', help='use CUDA and add bf16 + channels_last rows')
    ap.add_argument('--out', default=None, help='also write the rows as JSON here, and (not with --peers) the README table beside it as .md (new files, in a folder that exists)')
    ap.add_argument('--peers', action='store_true', help="time each peer method's training step against BCE's instead")
    ap.add_argument('--rounds', type=int, default=3, help='--peers: interleaved rounds of --steps timed steps per learner')
    ap.add_argument('--report', default=None, metavar='FILE.json', help='time nothing: render FILE.md again from a JSON --out wrote')
    a = ap.parse_args(argv)
    if a.report is not None:
        try: data = json.loads(Path(a.report).read_text()); data['measured']['command'], data['rows'][0]['full_step_s']
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            ap.error(f'--report {a.report}: not a JSON this tool wrote with --out (without --peers): {type(e).__name__}: {e}')
        a.report_data = data
        return a
    a.model_list = [m.strip() for m in a.models.split(',')]
    if bad := [m for m in a.model_list if m not in MODELS]:
        ap.error(f"--models: unknown {', '.join(map(repr, bad))}; choose from {', '.join(MODELS)} (comma list)")
    for flag in ('steps', 'rounds', 'cpu_bs'):
        if getattr(a, flag) < 1: ap.error(f'--{flag} must be >= 1, got {getattr(a, flag)}')
    if a.gpu and not torch.cuda.is_available(): ap.error('--gpu times on a CUDA device, and this machine has none: drop --gpu')
    if a.out is not None:
        out = Path(a.out)
        if out.is_dir(): ap.error(f'--out {out} is a folder: pass a JSON file')
        if out.exists(): ap.error(f'--out {out} exists: choose another name (the rows it holds are kept)')
        if out.with_suffix('.md').exists(): ap.error(f"--out {out}: {out.with_suffix('.md')} exists beside it: choose another name (it is kept)")
        if not out.parent.is_dir(): ap.error(f'--out {out}: its folder {out.parent} does not exist; make it first')
    return a


def main(argv=None):
    a = options(argv)
    if a.report is not None: return Path(a.report).with_suffix('.md').write_text(markdown(a.report_data))
    warnings.filterwarnings('ignore')
    device = torch.device('cuda' if a.gpu else 'cpu')
    if a.peers: return main_peers(a, device)
    rows = []
    for m in a.model_list:
        if m == 'digits': rows.append(bench('digits_cnn 64px', 'digits_cnn', 64, 32, a.steps, device))
        elif m == 'resnet50':
            bs = 32 if a.gpu else a.cpu_bs
            rows.append(bench('resnet50 224px', 'resnet50', 224, bs, a.steps, device))
            if a.gpu: rows.append(bench('resnet50 224px', 'resnet50', 224, bs, a.steps, device, precision='bf16', channels_last=True))
    import pandas as pd
    df = pd.DataFrame(rows)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{torch.cuda.get_device_name() if a.gpu else "CPU"}')
    print(df.to_string(index=False))
    ok = all(met(r) for r in rows)
    print(f"\ntargets: step-time ratio within {TARGET_RATIO}x of the 16/3 floor, data >= {TARGET_DATA}x training: {'met' if ok else 'NOT met'}")
    if a.out:
        data = dict(measured=measured(a, device), rows=rows)
        Path(a.out).write_text(json.dumps(data, indent=1)); Path(a.out).with_suffix('.md').write_text(markdown(data))


def main_peers(a, device):
    import pandas as pd
    rows = []
    for m in a.model_list:
        if m == 'digits': rows += bench_peers('digits_cnn 64px', 'digits_cnn', 64, 32, a.steps, device, a.rounds)
        elif m == 'resnet50': rows += bench_peers('resnet50 224px', 'resnet50', 224, 32 if a.gpu else a.cpu_bs, a.steps, device, a.rounds)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.cuda.get_device_name() if a.gpu else "CPU"}')
    print(pd.DataFrame(rows).to_string(index=False))
    k = OPTIONS['cl_folds'].default
    print(f"confident_learning: a step costs BCE's, but a run first trains {k} fold models, each on {k - 1}/{k} of the "
          f"images for the run's epochs: {k - 1} trainings' worth of steps before the final one, about {k}x a BCE run.")
    if a.out: Path(a.out).write_text(json.dumps(dict(measured=measured(a, device), rows=rows), indent=1))


if __name__ == '__main__': main()
