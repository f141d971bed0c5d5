"""How long a VOC-sized image set takes to decode at start: sequentially, in parallel and from the cache, in one run.

    python tools/bench_decode.py                         # 400 photo-like JPEGs at 500×375, decoded to 224
    python tools/bench_decode.py --n 1000 --size 500x375 --img 224 --workers 8

It writes a VOC-format fixture (`stitchup_nb.fixtures.make_voc`, VOC2012 trainval = the `--n` images), reads
every file once (so all timings see the files in the OS page cache alike), then times:

1. the sequential decode: `load_image` on one file after another (the reference every other path is checked against);
2. the parallel decode alone (`decode_images`, `--workers` threads) and, in threads, processes
   (a `ProcessPoolExecutor` over the same `load_image`) for comparison;
3. a fresh process loading the set with the cache cold (`voc_set` + `LabelledSet.cached(cache=...)`:
   parallel decode, then the cache written), and a second fresh process loading it again (memory-mapped
   from the cache), each timed inside the process from before the reader to after it (imports excluded),
   and again after reading every pixel once.

Every path must give exactly the sequential decode's uint8 arrays (checked, or the script fails). Its target: the
second process loads the decoded set at least 4× faster than the first (the JSON's `target_met`). Results go to
nbs/experiments/results/bench_decode.json (`--out`). A script, not a test: figures depend on the machine.
"""
import argparse, contextlib, io, json, os, platform, re, subprocess, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from stitchup_nb.images import decode_images, decode_workers, load_image
from stitchup_nb.fixtures import make_voc

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import contextlib, hashlib, io, json, sys, time
t0 = time.perf_counter()
from stitchup_nb.readers import voc_set
import numpy as np
root, size, workers, cache = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t1 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    s = voc_set(root, 'trainval').cached(size, workers=workers, cache=cache)
t2 = time.perf_counter()
digest = hashlib.sha256(np.ascontiguousarray(s.items).tobytes()).hexdigest()     # reads every pixel
t3 = time.perf_counter()
print(json.dumps({'import_s': t1 - t0, 'load_s': t2 - t1, 'load_and_read_s': t3 - t1, 'sha256': digest,
                  'memmap': isinstance(s.items, np.memmap), 'shape': list(s.items.shape)}))
'''


def child(root, size, workers, cache):
    "Run CHILD in a fresh interpreter; its figures (and wall time including start-up and imports)."
    t = time.perf_counter()
    p = subprocess.run([sys.executable, '-c', CHILD, str(root), str(size), str(workers), str(cache)],
                       capture_output=True, text=True)
    if p.returncode: sys.exit(f'the child process failed:\n{p.stderr[-3000:]}')
    return {**json.loads(p.stdout.strip().splitlines()[-1]), 'wall_s': time.perf_counter() - t}


CPU = {}

def timed(f, key=None):
    "f()'s result and wall seconds; its CPU seconds (all threads) go to CPU[key]: CPU/wall near the workers means truly parallel."
    t, c = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()): out = f()
    if key: CPU[key] = time.process_time() - c
    return out, time.perf_counter() - t


def parser():
    "The command line."
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=400, help='JPEGs in the set (default 400)')
    ap.add_argument('--size', default='500x375', help="each JPEG's WIDTHxHEIGHT (default 500x375, VOC's usual)")
    ap.add_argument('--img', type=int, default=224, help='decode to IMG×IMG (default 224, the VOC/COCO presets)')
    ap.add_argument('--workers', type=int, default=None, help='decoding threads (default: every core this process may use)')
    ap.add_argument('--texture', default='photo', choices=('photo', 'noise'), help="the fixture's JPEG content (default photo)")
    ap.add_argument('--no-processes', action='store_true', help='skip the process-pool comparison')
    ap.add_argument('--out', default=str(ROOT/'nbs'/'experiments'/'results'/'bench_decode.json'),
                    help='the JSON to write (default: the committed results file; an existing one needs --overwrite)')
    ap.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    return ap


def options(argv=None):
    "The options, each checked before any JPEG is written or timed."
    ap = parser(); a = ap.parse_args(argv)
    if not re.fullmatch(r'\d+x\d+', a.size.lower()): ap.error(f'--size must be WIDTHxHEIGHT, e.g. 500x375; got {a.size!r}')
    for k in ('n', 'img'):
        if getattr(a, k) < 1: ap.error(f'--{k} must be >= 1, got {getattr(a, k)}')
    if a.workers is not None and a.workers < 1: ap.error(f'--workers must be >= 1, got {a.workers}')
    if 0 in (int(v) for v in a.size.lower().split('x')): ap.error(f'--size must be WIDTHxHEIGHT of at least 1 pixel each; got {a.size!r}')
    if (need := a.n * a.img**2 * 3) > (mem := os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')) / 4:    # several sets at once
        ap.error(f'--n {a.n} --img {a.img}: a decoded set takes {need / 2**30:,.1f} GB, and the bench holds several at once on a '
                 f'machine of {mem / 2**30:,.1f} GB memory: lower --n or --img')
    out = Path(a.out)
    if out.is_dir(): ap.error(f'--out {out} is a folder: pass a JSON file')
    if out.exists() and not a.overwrite: ap.error(f'--out {out} exists: pass --overwrite to replace it, or another --out')
    return a


def fixture(tmp, a, w, h, workers) -> tuple:
    "The VOC fixture written under `tmp`, every file read once: its VOC2012 folder, its JPEGs and their MiB."
    t = time.perf_counter()
    make_voc(tmp, n2012=a.n, n2007=4, img_size=(w, h), texture=a.texture)
    made = time.perf_counter() - t
    root = tmp/'VOCdevkit'/'VOC2012'
    files = sorted((root/'JPEGImages').glob('*.jpg'))
    mb = sum(f.stat().st_size for f in files) / 2**20
    for f in files: f.read_bytes()                       # every timing sees the files in the page cache
    print(f'{len(files)} JPEGs at {w}×{h} ({mb:.1f} MiB, written in {made:.1f} s), decoded to {a.img}×{a.img}, '
          f'{workers} workers on {os.cpu_count()} cores')
    return root, files, mb


def decodes(files, img, workers, processes) -> tuple:
    "The old decode's arrays, and the seconds of each decode in this process (each must give exactly those arrays)."
    old, t_seq = timed(lambda: np.stack([load_image(f, img) for f in files]), 'sequential')
    (par, bad), t_par = timed(lambda: decode_images(files, img, workers=workers), 'threads')
    assert not bad and np.array_equal(par, old), 'the parallel decode changed pixels'
    res = {'sequential_decode_s': t_seq, 'threads_decode_s': t_par}
    if processes:
        proc, t_proc = timed(lambda: _processes(files, img, workers))
        assert np.array_equal(proc, old), 'the process-pool decode changed pixels'
        res['processes_decode_s'] = t_proc
    return old, res


def loads(root, img, workers, cache, old) -> tuple:
    "A fresh process loading the set with `cache` cold, then another with it warm (each must give `old`); the cache's MiB."
    cold = child(root, img, workers, cache)
    warm = child(root, img, workers, cache)
    import hashlib
    ref = hashlib.sha256(np.ascontiguousarray(old).tobytes()).hexdigest()
    assert cold['sha256'] == warm['sha256'] == ref, 'a loaded set differs from the old decode'
    assert not cold['memmap'] and warm['memmap'], (cold['memmap'], warm['memmap'])
    return cold, warm, sum(p.stat().st_size for p in cache.iterdir()) / 2**20


def figures(res, cold, warm) -> dict:
    "The JSON's seconds, ratios and CPU/wall shares."
    t_seq, t_par = res['sequential_decode_s'], res['threads_decode_s']
    r = lambda x, y: round(x / y, 2)
    return {
        'seconds': {**{k: round(v, 3) for k, v in res.items()},
                    'first_process_load_s': round(cold['load_s'], 3), 'first_process_wall_s': round(cold['wall_s'], 3),
                    'second_process_load_s': round(warm['load_s'], 3),
                    'second_process_load_and_read_s': round(warm['load_and_read_s'], 3),
                    'second_process_wall_s': round(warm['wall_s'], 3), 'import_s': round(warm['import_s'], 3)},
        'ratios': {'sequential_over_threads': r(t_seq, t_par),
                   **({'sequential_over_processes': r(t_seq, res['processes_decode_s'])} if 'processes_decode_s' in res else {}),
                   'sequential_over_first_load': r(t_seq, cold['load_s']),
                   'first_over_second_load': r(cold['load_s'], warm['load_s']),
                   'first_over_second_load_and_read': r(cold['load_s'], warm['load_and_read_s']),
                   'sequential_over_second_load_and_read': r(t_seq, warm['load_and_read_s'])},
        'cpu_over_wall': {'sequential': r(CPU['sequential'], t_seq), 'threads': r(CPU['threads'], t_par)},
    }


def show(out):
    "The JSON's figures as lines of text."
    s, q = out['seconds'], out['ratios']
    print(f"old sequential decode     {s['sequential_decode_s']:7.2f} s")
    print(f"parallel decode (threads) {s['threads_decode_s']:7.2f} s   {q['sequential_over_threads']:.2f}× faster "
          f"(CPU/wall {out['cpu_over_wall']['threads']:.2f} against {out['cpu_over_wall']['sequential']:.2f} sequential; "
          f"load average {out['load_average_1min']} on {os.cpu_count()} cores)")
    if 'processes_decode_s' in s:
        print(f"parallel decode (procs)   {s['processes_decode_s']:7.2f} s   {q['sequential_over_processes']:.2f}× faster")
    print(f"1st process load (cold)   {s['first_process_load_s']:7.2f} s   (decode + write {out['set']['cache_mib']} MiB of cache)")
    print(f"2nd process load (cache)  {s['second_process_load_s']:7.2f} s   {q['first_over_second_load']:.1f}× faster (memory-mapped)")
    print(f"  ... and every pixel read {s['second_process_load_and_read_s']:6.2f} s   {q['first_over_second_load_and_read']:.1f}× faster "
          f"than the 1st, {q['sequential_over_second_load_and_read']:.1f}× than the old decode")
    print(f"target (2nd ≥ 4× faster than 1st, pixels read): {'met' if out['target_met'] else 'NOT met'}; pixels identical on every path")


def main(argv=None):
    a = options(argv)
    w, h = (int(v) for v in a.size.lower().split('x'))
    workers = decode_workers(a.workers)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, files, mb = fixture(tmp, a, w, h, workers)
        old, res = decodes(files, a.img, workers, not a.no_processes)
        cold, warm, cache_mb = loads(root, a.img, workers, tmp/'cache', old)

    out = {
        'command': ' '.join(['python tools/bench_decode.py', *(argv if argv is not None else sys.argv[1:])]),
        'machine': {'cpus': os.cpu_count(), 'workers': workers, 'python': platform.python_version(),
                    'platform': platform.platform()},
        'set': {'n': len(files), 'jpeg_size': [w, h], 'decoded_to': a.img, 'texture': a.texture,
                'jpeg_mib': round(mb, 1), 'cache_mib': round(cache_mb, 1)},
        **figures(res, cold, warm),
        'load_average_1min': round(os.getloadavg()[0], 2),
        'pixels_identical': True,
    }
    out['target_met'] = out['ratios']['first_over_second_load_and_read'] >= 4
    show(out)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + '\n')
    print(f'wrote {a.out}')
    return out


def _processes(files, size, workers):
    with ProcessPoolExecutor(workers) as ex:
        return np.stack(list(ex.map(partial(load_image, size=size), files, chunksize=8)))


if __name__ == '__main__': main()
