"""Scaling: images/s of the full method per process count, through the kit's own DDP path.

    python tools/bench_ddp.py --procs 1,2                       # CPU (gloo): Digits CNN, threads split over processes
    python tools/bench_ddp.py --procs 1,2,4,8 --arch resnet50   # GPUs (NCCL, one per process): ResNet-50 224 px, batch 32

Each process count is one `torchrun --nproc_per_node N` of this script in worker mode: every rank
builds its shard of the loaders (`stitch_dls(rank=, world=)`), wraps the learner with
`distributed(learn)` (what `stitchup_train` does) and times training steps; rank 0 reports. Images
per second count every image a step loads (anchors and partners of both branches) on all ranks.
All figures come from this one run.
"""
import argparse, json, os, subprocess, sys, warnings
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def worker(a):
    warnings.filterwarnings('ignore')
    from fastai.callback.progress import ProgressCallback
    sys.path.insert(0, str(TOOLS))
    from bench_speed import StepTimer, synthetic_set
    from stitchup_nb.colearn import colearner
    from stitchup_nb.distributed import close_distributed, distributed, init_distributed
    from stitchup_nb.loaders import stitch_dls
    from stitchup_nb.augment import BatchAug
    from stitchup_nb.methods import PRESETS
    d = init_distributed()
    if a.arch == 'digits_cnn':
        from stitchup_nb.digits import digits_mlt
        train, test = digits_mlt()
    else:
        train = synthetic_set(a.bs * 8 * d['world'] * (a.steps + 4), a.size)
        test = train.subset(list(range(2 * a.bs)), name='synthetic test')
    th = PRESETS['digits']['thresholds']      # the full method's thresholds (the paper's VOC values)
    dls = stitch_dls(train, train.labels, test, bs=a.bs, data_factor=1, aug=BatchAug(), valid_bs=a.bs,
                     rank=d['rank'], world=d['world'], device=d['device'])
    learn = colearner(dls, a.arch, thresholds=th, pretrained=a.arch == 'digits_cnn')
    learn.remove_cb(ProgressCallback)
    timer = StepTimer(a.steps)
    with distributed(learn):
        learn.fit(1, 1e-3, cbs=[timer])
    if d['rank'] == 0:
        imgs = sum(len(x) for x in dls.train.one_batch()[0]) * d['world']
        print('ROW ' + json.dumps(dict(procs=d['world'], device=str(d['device']), step_s=round(timer.step, 4),
                                       img_s=round(imgs / timer.step, 1))), flush=True)
    close_distributed()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--procs', default='1,2', help='comma list of process counts')
    ap.add_argument('--arch', default='digits_cnn', help='digits_cnn (Digits-MLT, 64 px) or a ResNet (synthetic set)')
    ap.add_argument('--size', type=int, default=224, help='input size for ResNets')
    ap.add_argument('--bs', type=int, default=32, help='random-batch anchors per process')
    ap.add_argument('--steps', type=int, default=6, help='timed steps (after 2 warm-up steps)')
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(a)
    import pandas as pd, socket, torch
    rows, cores = [], os.cpu_count() or 1
    for n in map(int, a.procs.split(',')):
        with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
        env = {**os.environ}
        if not torch.cuda.is_available(): env['OMP_NUM_THREADS'] = str(max(1, cores // n))   # the cores, shared
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(n), '--master_port', str(port),
               __file__, '--worker', '--arch', a.arch, '--size', str(a.size), '--bs', str(a.bs), '--steps', str(a.steps)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        got = [json.loads(l[4:]) for l in p.stdout.splitlines() if l.startswith('ROW ')]
        if p.returncode or not got: sys.exit(f'{n} processes failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}')
        rows.append(got[0])
    df = pd.DataFrame(rows)
    df['speedup'] = (df.img_s / df.img_s.iloc[0]).round(2)
    df['efficiency'] = (df.speedup / (df.procs / df.procs.iloc[0])).round(2)
    print(f'{a.arch}, batch {a.bs} per process, torch {torch.__version__}, '
          f'{torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({cores} cores shared)"}')
    print(df.to_string(index=False))


if __name__ == '__main__': main()
