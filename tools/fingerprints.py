"""Behaviour fingerprints of the benchmark's rows (stitchup_nb.evidence and stitchup_nb.verify, nbs/12b_evidence.ipynb and nbs/12c_verify.ipynb).

    python tools/fingerprints.py --check          # CI: recompute every part of fingerprints.json; fail if one changed
    python tools/fingerprints.py --update         # after a change of behaviour: recompute every part and write the file
    python tools/fingerprints.py --status         # how many rows of each CSV the current code makes
    python tools/fingerprints.py --adopt FILE --source HASH   # parts computed by the code of source HASH: stamp its rows
    python tools/fingerprints.py --record-machine # this processor computes some parts differently: record its own

A table shows the rows whose fingerprint matches fingerprints.json; --check is how CI knows that the file still
describes the code, and still holds every part that the stamped rows of the CSVs beside it stand on. The parts are
computed with stitchup_nb.pins.FP_ENV (the tool starts itself again with it, before it imports torch). That arithmetic is not the same on
every processor: two Intel Xeon generations (Sapphire Rapids, Emerald Rapids) compute every part alike and many of
them differently from an AMD EPYC, from the same code (nbs/experiments/results/cross_machine.md). The file therefore holds the parts of each machine that has
recorded its own (`machines`), and the processors found to compute exactly a recorded machine's parts (`also`:
--record-machine there adds them); --check passes when this machine's parts are those of one of them and says which.
On a processor the file does not record, parts that differ may be its arithmetic: --check then computes them again,
on this processor, with the code that computed the file (its `source_commit`, which every write records when the
package's files are their commit's; `git archive` gives that code), and fails only where the code differs from that
one, so CI passes on a new kind of machine unless the code changed. --jobs N probes N keys at once.

Every write (--add, --update, --record-machine, --adopt) holds the file's lock, `FILE.lock` beside it, while it
re-reads the file, merges its parts into what the file holds then and writes it whole: copies of tools/benchmark.py
adding their grids' parts to one file at once each keep theirs. The parts are computed before, outside the lock.
"""
import argparse, contextlib, csv, fcntl, io, json, multiprocessing, os, shlex, subprocess, sys, tarfile, tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from stitchup_nb.pins import FINGERPRINTS, FP_ENV, RESULTS
from _restart import restart_in     # tools/_restart.py


def parser():
    "The command line (the module's docstring is its --help)."
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--check', action='store_true', help='recompute every part of the file; exit 1 if one changed, or if a '
                   'stamped row of the CSVs beside it stands on a part the file does not hold')
    g.add_argument('--update', action='store_true', help='recompute every part of the file and write it')
    g.add_argument('--status', action='store_true', help='current rows per CSV')
    g.add_argument('--adopt', metavar='FILE', help='a fingerprints file computed by the code of --source')
    g.add_argument('--record-machine', action='store_true', help="recompute every part and record them as this "
                   "machine's own, for a processor on which the same code computes some parts differently (run it on "
                   "the commit whose --check passes on the file's machine)")
    g.add_argument('--add', metavar='JSON', help='compute these parts ({"methods": [keys], "noise": [kinds], "data": [presets]}) '
                   'and the pretraining, and write them into the file (tools/benchmark.py does, before a grid)')
    ap.add_argument('--source', help='with --adopt: the source hash whose rows FILE describes')
    ap.add_argument('--file', default=str(FINGERPRINTS), help=f'the fingerprints file (default {FINGERPRINTS})')
    ap.add_argument('--jobs', type=int, default=1, help='probe runs at once (one thread each)')
    ap.add_argument('--parts-out', metavar='FILE', help='with --add: also write the parts computed here to FILE '
                    '(tools/benchmark.py stamps its rows with them)')
    return ap


if __name__ == '__main__':
    restart_in(FP_ENV, __file__)   # in the fingerprints' arithmetic before torch starts: one start-up of it
    parser().parse_args()          # --help, or a flag argparse refuses, answers here: before torch and pandas start


import pandas as pd

from stitchup_nb.evidence import (arithmetics, current_mask, fingerprints_problem, read_rows, load_fingerprints, noise_part,
                                  probe_groups, respell_key, respell_keys, row_behaviour_key, row_fingerprint)
from stitchup_nb.verify import (closest_arithmetic, diff_fingerprints, fingerprints, machine_groups, machine_labels,
                                merge_fingerprints, record_machine)
from stitchup_nb.files import atomic_write, locked_csv
from stitchup_nb.experiments import FIELDS, machine


def _group(keys):
    warnings.filterwarnings('ignore')
    return fingerprints(keys, pretrain=False)['methods']


def compute(keys, kinds, datasets, jobs=1, log=print) -> dict:
    """Every part, the method keys over `jobs` processes (each inherits FP_ENV): a probe run for each of their
    `probe_groups` (keys that differ only in the ensemble weight t share one), the largest groups first."""
    groups = sorted(probe_groups(sorted(keys)), key=len, reverse=True)      # sorted is stable: else in key order
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context('spawn')) as ex:    # fresh processes: no forked torch
        probes = ex.map(_group, groups)              # submitted now: the workers start torch while this process computes
        fps = fingerprints((), kinds, datasets, pretrain=True, log=log)     # the other parts, here
        for got in probes:
            for key, fp in got.items(): fps['methods'][key] = fp; log(f'{key}: {fp}')
    return fps


def write(path, fps): atomic_write(path, lambda f: f.write((json.dumps(fps, indent=1) + '\n').encode()))


@contextlib.contextmanager
def locked(path):
    """The block run holding the lock of fingerprints file `path`: `<path>.lock` beside it, which one process at a time
    holds (flock) and removes on leaving; a process that waited on a lock file removed meanwhile takes the new one."""
    lock = Path(f'{path}.lock')
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            f = open(lock, 'a+')
        except OSError as e: sys.exit(f'{lock}: cannot open the lock of {path} ({e.strerror}); nothing was written')
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0); print(f'waiting for {f.read().strip() or "another process"} to finish writing {path}', flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try: held = os.fstat(f.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError: held = False
        if held: break
        f.close()                                    # its holder removed it on leaving: take the one there now
    try:
        f.seek(0); f.truncate(); f.write(f'process {os.getpid()}'); f.flush()
        yield
    finally:
        with contextlib.suppress(OSError): os.unlink(lock)      # still holding it: a waiter on it sees it gone
        f.close()


ROOT = Path(__file__).resolve().parents[1]


def _git(*args) -> str | None:
    "git's answer in the checkout this tool is in (None outside one, or when git fails)."
    try: p = subprocess.run(['git', '-C', str(ROOT), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError): return None
    return p.stdout.strip() if p.returncode == 0 else None


def clean_head() -> str | None:
    "The commit checked out, when the package's files are exactly that commit's (the code that computes the parts)."
    return _git('rev-parse', 'HEAD') if _git('status', '--porcelain', '--', 'stitchup_nb') == '' else None


def stamped(fps) -> dict:
    """`fps` as written by this checkout: `source_commit` names the commit whose code computed its parts (where the
    package is that commit's), so that a processor not recorded can recompute them with that code to compare."""
    out = {k: v for k, v in fps.items() if k != 'source_commit'}
    head = clean_head()
    return {**out, 'source_commit': head} if head else out


def reference_parts(commit, keys, kinds, datasets, jobs=1) -> dict:
    """The parts the code of `commit` computes on this machine: that commit's own `tools/fingerprints.py --add`, run
    from a copy of its files (`git archive`) into a new file, with a cache of its own (it renders and pretrains anew)."""
    with tempfile.TemporaryDirectory(prefix='fingerprints_ref_') as tmp:
        tmp = Path(tmp)
        try:
            tar = subprocess.run(['git', '-C', str(ROOT), 'archive', '--format=tar', commit, 'stitchup_nb', 'tools',
                                  'settings.ini'], capture_output=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e: raise RuntimeError(f'git archive {commit}: {e}') from e
        if tar.returncode: raise RuntimeError(f'git archive {commit}: {tar.stderr.decode().strip()}')
        with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t: t.extractall(tmp/'src', filter='data')
        want = json.dumps({'methods': list(keys), 'noise': list(kinds), 'data': list(datasets)})
        p = subprocess.run([sys.executable, str(tmp/'src'/'tools'/'fingerprints.py'), '--add', want, '--file',
                            str(tmp/'ref.json'), '--parts-out', str(tmp/'parts.json'), '--jobs', str(jobs)], text=True,
                           stderr=subprocess.PIPE, env={**os.environ, **FP_ENV, 'PYTHONPATH': str(tmp/'src'),
                                                        'STITCHUP_CACHE': str(tmp/'cache')})   # its progress shows
        if p.returncode: raise RuntimeError(f'the fingerprint tool of {commit} exited {p.returncode}: {p.stderr.strip()[-2000:]}')
        return json.loads((tmp/'parts.json').read_text())


def parts_of(fps) -> tuple:
    "The method keys, noise kinds and data sets of every machine's parts in `fps`."
    return tuple(sorted(set().union(*[a[p] for a in arithmetics(fps)])) for p in ('methods', 'noise', 'data'))
def label(fps, i) -> str:
    "The machine of arithmetic `i` of `fps`, in words."
    name = machine_labels(fps)[i]
    return name or 'the machine that computed the file (not recorded)'
def said(diffs, i, fps) -> str:
    return '\n'.join(f'  {p} {k}: committed {o}, now {n}' for p, k, o, n in diffs) + f'\n(compared with the parts of {label(fps, i)})'


def load(path) -> dict:
    "The fingerprints file `path`, read and checked (`stitchup_nb.evidence.load_fingerprints`): empty parts where there is none yet."
    return load_fingerprints(path)


def csvs(folder=RESULTS): return sorted(Path(folder).glob('benchmark*.csv'))


def tables(folder) -> list:
    """Every benchmark CSV in `folder` as (path, its text, its rows as dicts), each read whole and checked before any
    is written: a ValueError names the file, what is wrong and the fix."""
    out = []
    for f in csvs(folder):
        try:
            with open(f, newline='') as fh: text = fh.read()
            rows = list(reader := csv.DictReader(io.StringIO(text)))
        except (OSError, UnicodeError, csv.Error) as e: raise ValueError(f'{f}: cannot read it as a CSV ({e})') from None
        unknown = [c for c in reader.fieldnames or [] if c not in FIELDS]
        if unknown:
            raise ValueError(f'{f}: unknown column(s) {unknown}; a benchmark CSV holds only the columns of '
                             f'stitchup_nb.experiments.FIELDS: rename or remove {"it" if len(unknown) == 1 else "them"} '
                             f'in {f}, or move the file out of {Path(folder)}, then run again')
        if (n := next((n for n, r in enumerate(rows, 1) if None in r), None)):
            raise ValueError(f'{f}: row {n} has more values than the header has columns: mend that row, then run again')
        out.append((f, text, rows))
    return out


def read(f): return read_rows(f)     # as the tables read it: a cut-off last line is named


def options(ap, argv) -> tuple:
    "The options, every one checked before anything is computed or written; the file; with --add, the parts it names."
    a = ap.parse_args(argv)
    if a.jobs < 1: ap.error(f'--jobs must be >= 1, got {a.jobs}')
    if a.adopt and not a.source: ap.error('--adopt FILE needs --source HASH (the source that computed FILE and made the rows)')
    if a.source and not a.adopt: ap.error('--source goes with --adopt')
    if a.parts_out and a.add is None: ap.error('--parts-out goes with --add')
    path, wanted = Path(a.file), None
    if a.add is not None:             # an empty --add is a bad object, not a --check
        try: want = json.loads(a.add); wanted = tuple(list(want.get(k, [])) for k in ('methods', 'noise', 'data'))
        except (ValueError, AttributeError) as e: ap.error(f'--add must be a JSON object of lists: {e}')
        wanted = (sorted(set(map(respell_key, wanted[0]))), *wanted[1:])     # as the readers look keys up ({"t": 1.0} as {"t": 1})
    if (a.check or a.update or a.record_machine or a.status) and not path.is_file(): ap.error(f'--file {path} does not exist')
    if not a.adopt:                   # the file each other mode reads (--add: where there is one), whole and of its shape
        try: load(path)
        except ValueError as e: ap.error(f'--file {e}')
    if a.adopt:                       # FILE's shape, and rows of --source to stamp, before any CSV is touched
        try: fps = json.loads(Path(a.adopt).read_text())
        except (OSError, ValueError) as e: ap.error(f'--adopt {a.adopt}: no readable fingerprints file ({e})')
        if (wrong := fingerprints_problem(fps)): ap.error(f'--adopt {a.adopt}: not a fingerprints file: {wrong}')
        try: found = tables(path.parent)          # every CSV --adopt rewrites, readable and of known columns
        except ValueError as e: ap.error(f'--adopt: {e}; nothing was changed')
        if not any(r.get('source_hash') == a.source for _, _, rows in found for r in rows):
            ap.error(f'--source {a.source}: no row of the CSVs beside {path} has that source hash (a typo?); nothing was changed')
    return a, path, wanted


def status(path):
    "--status: how many rows of each CSV beside the file its parts make current."
    fps = load(path)
    for f in csvs(path.parent):
        df = read(f); print(f'{f.name}: {int(current_mask(df, fps).sum())} of {len(df)} rows current')


def restamped(f, rows, source, fps) -> tuple:
    """CSV `f`'s `rows` with those of `source` stamped with the parts `fps`, as the text of the CSV under the current
    FIELDS (new columns empty, every other value's text kept), and how many rows were stamped."""
    mine = 0
    for n, r in enumerate(rows, 1):
        if r.get('source_hash') != source: continue
        try: r['fingerprint'] = row_fingerprint(r, fps) or ''
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f'{f}: row {n} (source {source}) has no readable config, so no fingerprint '
                             f'({type(e).__name__}: {e}): mend or remove that row, then run again') from None
        mine += 1
    text = io.StringIO()
    w = csv.DictWriter(text, FIELDS); w.writeheader(); w.writerows(rows)
    return text.getvalue(), mine


def adopt(path, file, source):
    """--adopt: the rows of `source` stamped with the parts of `file`, which is written as the file. Every CSV is read
    and stamped before any is written; each is written whole (atomic_write), then the file, last."""
    fps = respell_keys(json.loads(Path(file).read_text()))     # a file of keys written before equal numbers were written alike
    try: new = [(f, text, *restamped(f, rows, source, fps)) for f, text, rows in tables(path.parent)]
    except ValueError as e: sys.exit(f'--adopt: {e}; nothing was changed')
    todo = [f.name for f, text, stamped_text, _ in new if stamped_text != text]
    for f, text, stamped_text, mine in new:
        if stamped_text != text:                     # the machine and fingerprint columns, every row's text kept
            try:
                with locked_csv(f) as fh:            # the runner's lock: no row is appended to the file being replaced
                    fh.seek(0)
                    if fh.read() != text:
                        raise OSError(f'{f} changed while --adopt ran (a benchmark appending to it?)')
                    atomic_write(f, lambda o: o.write(stamped_text.encode()))
            except OSError as e:
                done = todo[:todo.index(f.name)]
                sys.exit(f'--adopt: {e}\nwritten: {", ".join(done) or "none"}; not written: '
                         f'{", ".join(todo[len(done):])} and {path}. Run the same command again once fixed: it stamps '
                         'each row alike.')
        print(f'{f.name}: {mine} rows of source {source} stamped')
    with locked(path): write(path, merge_fingerprints({}, fps))
    print(f'wrote {path}')


def record(path, old, new, here, i, changed):
    "--record-machine: this machine's parts, or this machine beside the recorded one that computes exactly its parts."
    if not changed:                     # exactly a recorded machine's parts: one more processor of that arithmetic
        if here in machine_groups(old)[i]:
            print(f'{path}: this machine computes the parts of {label(old, i)}, as recorded: nothing to record'); return
        write(path, stamped(record_machine(old, new, here)))
        print(f'wrote {path}: this machine ({here}) computes exactly the parts of {label(old, i)}, recorded with it '
              '(--verify now re-runs the rows of either exactly on the other)'); return
    if i == 0 and old.get('machine') == here:
        sys.exit(f'{path}: its own parts were computed on this machine ({here}), so a difference here is a change of '
                 'behaviour, not of arithmetic: python tools/fingerprints.py --update')
    write(path, stamped(record_machine(old, new, here)))
    print(f'wrote {path}: the parts of {here} ({len(changed)} differ from those of {label(old, i)})')


def refuse_unrecorded(path, old, here):
    "--update on a processor the file does not record: refused (it cannot tell a change of behaviour from arithmetic)."
    known = set().union(*machine_groups(old))
    if old.get('machine') and here not in known:
        # on a processor the file does not know, a part that differs may be its arithmetic, not a change of behaviour:
        # written as the latter, it would take the other machines' parts (and their rows) out
        sys.exit(f'{path}: this processor ({here}) is not one the file records ({", ".join(sorted(known))}), '
                 'so --update cannot tell a change of behaviour from its arithmetic. Run --update on a recorded processor, '
                 'or first, on the commit whose --check passes elsewhere: python tools/fingerprints.py --record-machine.')


def refuse_other_pretrain(path, old, new, here):
    "--add of parts whose pretraining no recorded machine computes: refused (another processor's arithmetic)."
    if old.get('pretrain') and new.get('pretrain') not in {x.get('pretrain') for x in arithmetics(old)}:
        # another processor's arithmetic, not recorded yet: writing its parts over the file's would take every row out
        sys.exit(f'{path}: this machine ({here}) computes the pretraining part as {new["pretrain"]}, and no machine the file '
                 f'records does ({sorted({x.get("pretrain") for x in arithmetics(old)})}). If the code is the one whose '
                 '--check passes elsewhere, its processor computes differently: python tools/fingerprints.py '
                 '--record-machine, then run again. If the pretraining changed: python tools/fingerprints.py --update.')


def written(path, a, new, here):
    """--add, --update, --record-machine: the parts `new` computed here merged into the file as it is now, under its
    lock: re-read (another process may have written parts while these were computed), refused or merged, written."""
    with locked(path):
        try: old = load(path)
        except ValueError as e: sys.exit(f'{e}; nothing was written')
        if a.update: refuse_unrecorded(path, old, here)
        i, changed = closest_arithmetic(old, new)
        if a.record_machine: return record(path, old, new, here, i, changed)
        if a.add is not None: refuse_other_pretrain(path, old, new, here)
        return update(path, old, new, here, i, changed, a.parts_out)


def update(path, old, new, here, i, changed, parts_out):
    "--update and --add: the parts computed here written into the file (left as it is when none is new or changed)."
    if parts_out: write(Path(parts_out), new)
    if not changed:                   # its source_commit still names the code that computed its parts
        return print(f'{path}: every part computed here is the one it holds: left as it is')
    write(path, stamped(merge_fingerprints(old, new, here)))    # whole or not at all: copies of benchmark.py may add at once
    print(f'wrote {path}: {len(changed)} part(s) of {label(old, i)} new or changed'
          + ''.join(f'\n  {p} {k}: {o} -> {n}' for p, k, o, n in changed))


def against_source(path, old, new, here, i, changed, keys, kinds, datasets, jobs):
    """--check on a processor the file does not record: a part that differs may be its arithmetic. The code that
    computed the file (its source_commit) computes them here too, and only a difference from that is a change of
    behaviour."""
    ref = old['source_commit']
    print(f'this processor ({here}) is not one the file records, and {len(changed)} part(s) differ from those of '
          f'{label(old, i)}: computing them here with the code that computed the file (commit {ref[:12]}) to compare',
          flush=True)
    try: was = reference_parts(ref, keys, kinds, datasets, jobs)
    except RuntimeError as e:
        sys.exit(f'{path}: {len(changed)} fingerprint(s) differ on this processor ({here}), which the file does not '
                 f'record, and the code of commit {ref[:12]} could not be run here to tell its arithmetic from a change '
                 f'of behaviour ({e}):\n' + said(changed, i, old) + '\nIf the code is the one whose --check passes '
                 'elsewhere, this processor computes differently: python tools/fingerprints.py --record-machine.')
    moved = diff_fingerprints(was, new)
    if moved:
        sys.exit(f'{path}: on this processor ({here}) the code computes {len(moved)} part(s) otherwise than the code '
                 f'that computed the file (commit {ref[:12]}), here too: a change of behaviour\n'
                 + '\n'.join(f'  {p} {k}: commit {ref[:12]} {o}, now {n}' for p, k, o, n in moved)
                 + '\nIf it is meant: python tools/fingerprints.py --update on a recorded processor, then re-run the grids.')
    print(f'{path}: every fingerprint matches the code as the code of commit {ref[:12]}, which computed the file, '
          f'computes them on this processor ({here}); it is not recorded ({len(changed)} of its parts differ from those '
          f'of {label(old, i)}): python tools/fingerprints.py --record-machine records it')


def unheld(path, fps) -> tuple:
    """The parts that stamped rows (a fingerprint) of the CSVs beside the file stand on and the file holds on no machine:
    ({part: names}, [(csv name, rows)]). Such rows leave every table without --check computing a part that changed."""
    held = {p: set().union(*[a[p] for a in arithmetics(fps)]) for p in ('methods', 'noise', 'data')}
    want, where = {p: set() for p in held}, []
    for f in csvs(path.parent):
        try: df = read(f)
        except (OSError, ValueError) as e: sys.exit(f'{f}: cannot read it as a CSV ({e}); --check reads the stamped rows beside {path}')
        n = 0
        for _, r in df[df.get('fingerprint', pd.Series('', index=df.index)).fillna('') != ''].iterrows():
            try: parts = {'methods': row_behaviour_key(r), 'data': json.loads(r['config'])['dataset'], 'noise': noise_part(r)}
            except (ValueError, KeyError, TypeError): continue        # no parts to read: current under no file
            gone = {p: v for p, v in parts.items() if v not in held[p] and (p, v) != ('noise', 'clean')}
            for p, v in gone.items(): want[p].add(v)
            n += bool(gone)
        if n: where.append((f.name, n))
    return {p: sorted(v) for p, v in want.items() if v}, where


def refuse_unheld(path, fps):
    "--check: fail, naming them and the fix, where stamped rows beside the file stand on parts it no longer holds."
    want, where = unheld(path, fps)
    if not where: return
    add = json.dumps({p: want.get(p, []) for p in ('methods', 'noise', 'data')})
    sys.exit(f'{path}: {sum(n for _, n in where)} stamped row(s) of the CSVs beside it stand on parts the file no longer '
             'holds, so no table shows them and --check cannot tell whether the code still makes them:\n'
             + '\n'.join(f'  {name}: {n} row(s)' for name, n in where) + '\nthe parts missing:\n'
             + '\n'.join(f'  {p} {k}' for p, ks in want.items() for k in ks)
             + f'\nIf the file lost them by mistake, restore it: git checkout -- {path}. Else compute them with this code '
             f'(rows of another behaviour then stay out of the tables): python tools/fingerprints.py --add {shlex.quote(add)} '
             f'--file {shlex.quote(str(path))}')


def check(path, old, here, i, changed, keys, kinds, datasets):
    "--check on a processor the file records (or where it cannot tell): every part as the file has it, or exit 1."
    if changed:
        sys.exit(f'{path}: {len(changed)} fingerprint(s) no longer match the code, so the tables built on them would show '
                 'numbers this code does not make:\n' + said(changed, i, old)
                 + '\nIf the change of behaviour is meant: python tools/fingerprints.py --update (the rows of the old '
                 'behaviour leave the tables), then re-run their grids with tools/benchmark.py. If the code is the one '
                 'whose --check passes on that machine and this processor computes differently: python '
                 'tools/fingerprints.py --record-machine.')
    print(f'{path}: every fingerprint matches the code ({len(keys)} methods, {len(kinds)} noise kinds, {len(datasets)} data '
          f'sets, the pretraining), as {label(old, i)} computes them'
          + ('' if here in machine_groups(old)[i] else f'; this processor ({here}) is not recorded with it: python '
             'tools/fingerprints.py --record-machine records it, and --verify then holds that machine\'s rows to the '
             'exact tolerance here'))


def main(argv=None):
    ap = parser()
    a, path, wanted = options(ap, argv)
    if a.status: return status(path)
    if a.adopt: return adopt(path, a.adopt, a.source)
    restart_in(FP_ENV, __file__, argv)       # main() called from Python: torch has computed nothing yet, start again in it
    warnings.filterwarnings('ignore')
    old = load(path)
    here, known = machine(), set().union(*machine_groups(old))
    if a.update: refuse_unrecorded(path, old, here)          # before computing anything; again before writing
    if a.check: refuse_unheld(path, old)                     # rows whose parts the file lost: no part to compare
    keys, kinds, datasets = wanted if a.add is not None else parts_of(old)
    print(f'recomputing {len(keys)} method, {len(kinds)} noise and {len(datasets)} data fingerprints and the pretraining '
          f'({a.jobs} at once)', flush=True)
    new = compute(keys, kinds, datasets, a.jobs, log=lambda s: print(' ', s, flush=True))
    if not a.check: return written(path, a, new, here)
    i, changed = closest_arithmetic(old, new)
    if changed and here not in known and old.get('source_commit'):
        return against_source(path, old, new, here, i, changed, keys, kinds, datasets, a.jobs)
    check(path, old, here, i, changed, keys, kinds, datasets)


if __name__ == '__main__': main()
