"""The Digits-MLT-Noise benchmark runner: every method × noise kind × rate × seed, one CSV row per run.

    python tools/benchmark.py                 # the full grid (hours on 2 CPU cores); resumable
    python tools/benchmark.py --jobs 2        # two copies, one a core: they share the work through one claims file
    python tools/benchmark.py --methods bce,full --seeds 3,4   # more seeds for some methods' rows (METHODS names)
    python tools/benchmark.py --quick         # 1 seed, 2 rates, flip only, 1 epoch on digits-small: the CI smoke version
    python tools/benchmark.py --sweep         # sensitivity: alpha_head, beta_tail, t, warmup_epoch (flip 0.5)
    python tools/benchmark.py --factorial     # Stitch-Up with each sampler × loss pairing (why the two branches differ)
    python tools/benchmark.py --peers         # the peer methods (ASL, large-loss rejection, MixUp, ...) at every cell
    python tools/benchmark.py --plus          # beyond the paper: full_plus and each of its changes at flip 0.7 and cooc 0.5
    python tools/benchmark.py --authors       # peers as their papers set them: co-teaching with tau = the noise rate (an
                                              # oracle) at the peers' cells, large-loss rejection at Δrel 0.1-0.5 at flip 0.7
    python tools/benchmark.py --fresh         # the pre-registered test of full_plus_auto (07j_full_plus): it and its
                                              # baselines on fresh seeds 5-9 of another Digits-MLT instance (FRESH)
    STITCHUP_SETUP=mine.py python tools/benchmark.py --methods mine,bce,full --cells flip:0.5,cooc:0.7 --data_seed 3 --out mine.csv
                                              # your variant (its script adds it to METHODS and MAIN_ROWS) and two
                                              # baselines at two cells of Digits-MLT instance 3 (--cells: the main,
                                              # --quick and --peers grids; --data_seed: their instance, default 0)
    STITCHUP_SETUP=mine.py python tools/benchmark.py --fresh --fresh_spec mine_fresh.json --out mine_fresh.csv
                                              # your own pre-registered test: a JSON file of FRESH's fields
                                              # (method, baselines, seeds, data_seed, cells, criterion), checked by
                                              # stitchup_nb.grids.check_fresh; stitchup_nb.leaderboard.fresh_test
                                              # reads its rows (spec=)
    python tools/benchmark.py --report        # from the CSVs' current rows (fingerprint matches): benchmark_table.md and the figures
    python tools/benchmark.py --verify 3      # re-run 3 random current rows: exact on the machine that made them, within
                                              # the measured cross-machine tolerance elsewhere (stitchup_nb.verify.verify)

--cells and --data_seed are recorded as the rows' cells and their configuration's data_seed (the Digits-MLT instance):
a CSV holds one instance, and the tool refuses to add another's rows to it. Your own pre-registration is checked
before anything runs (an unknown method, seeds your development runs drew: the spec's used_seeds, by default the
grids' 0,1,2, ...), and its rows go to the --out you name: benchmark_fresh.csv is the kit's own test.

Each row records the resolved configuration, the training source's hash, the commit, torch, the thread count, the
CPU kernels, the machine (stitchup_nb.experiments) and its behaviour fingerprint (stitchup_nb.evidence: before a grid
the tool computes the fingerprints of its methods with tools/fingerprints.py and writes them to fingerprints.json).
Runs and --verify compute with the benchmark's CPU kernels (AVX2 code in ATen, oneDNN and MKL:
stitchup_nb.pins.CPU_ENV): the tool starts itself again with them set, before it imports torch. They are exact on one machine and within
--verify's cross-machine tolerance on another (stitchup_nb.verify.CROSS_MACHINE_TOL, set above the spread measured in
nbs/experiments/results/cross_machine.md); the fingerprints are exact on each machine, and fingerprints.json holds
each processor's own where they differ (tools/fingerprints.py). Rows the current code makes (their
fingerprint matches) already in the CSV are skipped, so an interrupted grid picks up where it stopped, and a grid
made by other behaviour is re-run beside its rows. Each run uses --threads PyTorch threads (default 1: one copy per
core), so a row does not depend on what runs beside it.
"""
import argparse, csv, json, os, subprocess, sys, tempfile, warnings
from pathlib import Path

from stitchup_nb.images import decode_workers
from stitchup_nb.pins import CPU_ENV, FINGERPRINTS, RESULTS
from _restart import restart_in     # tools/_restart.py


def parser():
    "The command line (the module's docstring is its --help)."
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='the CI smoke grid on digits-small')
    ap.add_argument('--report', action='store_true', help='only write the table and figures from the CSVs')
    ap.add_argument('--sweep', action='store_true', help='sensitivity at flip 0.5: the full method with one setting changed (alpha_head, beta_tail, '
                    'warmup_epoch), and trained once per seed and scored at each ensemble weight t of experiments.TS')
    ap.add_argument('--factorial', action='store_true', help='Stitch-Up with each sampler × loss pairing')
    ap.add_argument('--peers', action='store_true', help='the peer methods at every cell of the main grid')
    ap.add_argument('--plus', action='store_true', help='full_plus and its candidate changes at flip 0.7 and cooc 0.5 (with their main-grid baselines)')
    ap.add_argument('--authors', action='store_true', help="co-teaching with the oracle tau (the cell's noise rate) at the peers' cells and large-loss rejection at each Δrel of its paper's range at flip 0.7, as rows set apart by `extra` in benchmark_authors.csv")
    ap.add_argument('--fresh', action='store_true', help="the pre-registered test (stitchup_nb.grids.FRESH): full_plus_auto, BCE and the full method on its fresh seeds and Digits-MLT instance, to benchmark_fresh.csv")
    ap.add_argument('--fresh_spec', '--fresh-spec', default=None, metavar='FILE.json', help="with --fresh: your own "
                    "pre-registration in place of FRESH, a JSON object of its fields (method, baselines, seeds, data_seed, cells, "
                    "criterion; optional used_seeds, the seeds your development runs drew, default 0,1,2), checked before "
                    "anything runs (stitchup_nb.grids.check_fresh); needs --out")
    ap.add_argument('--cells', default=None, metavar='KIND:RATE,...', help="the grid's noise cells in place of its own, kind:rate "
                    "pairs joined by commas, e.g. flip:0.5,cooc:0.7 (a noise kind of stitchup_nb.config.NOISE_KINDS, a rate in "
                    "(0, 1)); the main, --quick and --peers grids (each row at every cell); a cell not of the grid needs --out")
    ap.add_argument('--data_seed', '--data-seed', type=int, default=None, metavar='N', help="the Digits-MLT instance the "
                    "main, --quick and --peers grids' rows draw (default 0), recorded in each row's config as --fresh records its own")
    ap.add_argument('--verify', type=int, default=None, metavar='K', help='re-run K random current rows of the CSV (their fingerprint matches)')
    ap.add_argument('--seeds', default=None, help='comma list (default: 0,1,2; quick: 0; fresh: the pre-registered 5,6,7,8,9)')
    ap.add_argument('--methods', default=None, help="comma list of METHODS names: only the grid's rows of these methods "
                    "(e.g. --methods bce,full --seeds 3,4 adds two seeds to two methods' rows)")
    ap.add_argument('--epochs', type=int, default=None, help='default: 8; quick: 1')
    ap.add_argument('--threads', type=int, default=1, help='PyTorch threads per run (default 1: one copy per core)')
    ap.add_argument('--jobs', type=int, default=1, help='copies of this grid working at once, sharing the claims file (default 1; one a core)')
    ap.add_argument('--out', default=None, help='CSV (default: nbs/experiments/results/benchmark[_quick|_sweep|_factorial|_peers|_plus|_authors|_fresh].csv)')
    return ap


if __name__ == '__main__':
    restart_in(CPU_ENV, __file__)   # in the benchmark's CPU kernels before torch starts: one start-up of it
    parser().parse_args()           # --help, or a flag argparse refuses, answers here: before torch starts (main reads them again)


from stitchup_nb.evidence import behaviour_key, load_fingerprints, row_fingerprint, row_fingerprints
from stitchup_nb.verify import verify
from stitchup_nb.experiments import TS, append_rows, claim, extra_key, one_run, row_key, t_sweep
from stitchup_nb.grids import (DEV_SEEDS, FRESH, GRID_CELLS, GRIDS, MAIN_ROWS, PLUS_BASE, PLUS_CELLS, check_cells, check_fresh,
                               grid)
from stitchup_nb.config import OPTIONS
from stitchup_nb.methods import METHODS
from stitchup_nb.report import report


COPY = 'STITCHUP_BENCHMARK_COPY'     # set in the copies --jobs starts: the file of the grid's parts the first one computed


def grid_fingerprints(runs, dataset, epochs, sweep, file) -> str:
    """Compute (tools/fingerprints.py --add) the fingerprints of every method of the grid on this machine; the path of
    a file holding them (the rows are stamped with them; `file`, the fingerprints.json beside the CSV, records them as
    this machine's: `results.load` reads them there)."""
    keys = {behaviour_key(o['method'], dataset, epochs, e) for _, o, _, e, _ in runs}
    if sweep: keys |= {behaviour_key('full', dataset, epochs, {'t': t}) for t in TS}
    kinds = sorted({s['kind'] for _, o, s, _, _ in runs if o.get('noise_rate', s['rate']) > 0})
    want = json.dumps({'methods': sorted(keys), 'noise': kinds, 'data': [dataset]})
    fd, parts = tempfile.mkstemp(prefix='stitchup_grid_parts_', suffix='.json'); os.close(fd)
    if subprocess.run([sys.executable, str(Path(__file__).with_name('fingerprints.py')), '--add', want, '--jobs', '2',
                       '--parts-out', parts, '--file', str(file)]).returncode:
        sys.exit('benchmark.py: the grid\'s fingerprints could not be computed (tools/fingerprints.py --add, above); nothing ran')
    return parts


def options(ap, argv) -> tuple:
    "The options, every one checked before anything runs or is written; the grid's name, the seeds, --methods' names."
    a = ap.parse_args(argv)
    chosen = [g for g in GRIDS if g != 'main' and getattr(a, g, False)]      # the grid's flag; none: the main grid
    if len(chosen) > 1: ap.error(f"{', '.join('--' + g for g in GRIDS if g != 'main')} are separate grids: pass one")
    name = chosen[0] if chosen else 'main'
    if a.plus and a.out: ap.error('--out does not apply to --plus: its baselines are rows of the main grid (benchmark.csv), its candidates go to benchmark_plus.csv')
    if a.out is not None and Path(a.out).is_dir(): ap.error(f'--out {a.out} is a folder: pass a CSV file (e.g. --out {Path(a.out)/"mine.csv"})')
    spec = fresh_spec(ap, a)
    default_seeds = '0' if a.quick else ','.join(map(str, spec['seeds'])) if a.fresh else ','.join(map(str, DEV_SEEDS))
    try: seeds = [int(s) for s in (default_seeds if a.seeds is None else a.seeds).split(',')]
    except ValueError: ap.error(f'--seeds must be integers joined by commas, got {a.seeds!r}')
    if any(s < 0 for s in seeds): ap.error(f'--seeds must be >= 0, got {a.seeds!r}')
    if a.fresh and (seen := [s for s in seeds if s not in spec['seeds']]):
        ap.error(f"--seeds {','.join(map(str, seen))}: the pre-registered test (--fresh) runs its own fresh seeds "
                 f"{','.join(map(str, spec['seeds']))} only ({a.fresh_spec or 'stitchup_nb.grids.FRESH'}); others would not be fresh")
    if a.epochs is not None and a.epochs < 1: ap.error(f'--epochs must be >= 1, got {a.epochs}')
    if a.threads < 1: ap.error(f'--threads must be >= 1, got {a.threads}')
    if a.verify is not None and a.verify < 1: ap.error(f'--verify must be >= 1, got {a.verify}')
    if a.jobs < 1: ap.error(f'--jobs must be >= 1, got {a.jobs}')
    if a.jobs > 1 and (a.report or a.verify is not None): ap.error('--jobs applies to a grid, not to --report or --verify')
    if a.jobs > (cores := decode_workers()):      # each copy a process with torch loaded: hundreds would exhaust the memory
        ap.error(f'--jobs {a.jobs}: this process may use {cores} cores, and the copies run one a core: pass --jobs {cores} or fewer')
    if a.report and (k := next((f for f, v in (('--seeds', a.seeds), ('--epochs', a.epochs), ('--verify', a.verify),
                                                ('--cells', a.cells), ('--data_seed', a.data_seed), ('--fresh_spec', a.fresh_spec),
                                                ('--threads', a.threads != 1 or None), (f'--{name}', chosen or None),
                                                ('--out', a.out)) if v is not None), None)):
        ap.error(f'{k} does not apply to --report, which writes the tables and figures from the CSVs as they are')
    if a.verify is not None and (k := '--epochs' if a.epochs is not None else '--seeds' if a.seeds is not None else
                                 '--threads' if a.threads != 1 else next((f for f, v in (('--cells', a.cells), ('--data_seed', a.data_seed))
                                                                          if v is not None), None)):
        ap.error(f'{k} does not apply to --verify, which re-runs rows as they were made (their own epochs, seed and threads)')
    if a.methods is not None and (a.report or a.verify is not None or a.plus or a.sweep):
        ap.error('--methods applies to a grid of separate runs: not to --report, --verify, --plus (its candidates and '
                 'baselines run together) or --sweep (one training makes every t)')
    want = None
    if a.methods is not None:
        want = [m.strip() for m in a.methods.split(',') if m.strip()]
        if unknown := [m for m in want if m not in METHODS]:
            ap.error(f"--methods: no method {', '.join(map(repr, unknown))}; the methods are {', '.join(METHODS)}")
        there = sorted({o['method'] for _, o, _, _ in grid(name, spec=spec if a.fresh_spec else None)})
        if not set(want) & set(there): ap.error(f"--methods: the {name} grid runs none of {', '.join(want)}; it runs {', '.join(there)}")
    a.cells, a.data_seed, a.spec = grid_cells(ap, a, name), a.data_seed or 0, spec if a.fresh_spec else None
    return a, name, seeds, want


def fresh_spec(ap, a) -> dict:
    "--fresh_spec: the user's pre-registration read and checked (`check_fresh`); FRESH without it."
    if a.fresh_spec is None: return FRESH
    if not a.fresh: ap.error(f'--fresh_spec applies to --fresh (the pre-registered test): pass --fresh --fresh_spec {a.fresh_spec}')
    if a.verify is not None: ap.error('--fresh_spec does not apply to --verify, which re-runs rows as they were made')
    if not a.out or Path(a.out).resolve().parent == RESULTS.resolve():
        ap.error(f'--fresh_spec needs an --out of its own, outside {RESULTS} (e.g. --out mine_fresh.csv): the CSVs there are the '
                 "kit's published grids and its own pre-registered test (FRESH)")
    try: spec = json.loads(Path(a.fresh_spec).read_text())
    except OSError as e: ap.error(f'--fresh_spec {a.fresh_spec}: cannot be read ({e.strerror}); pass a JSON file of FRESH\'s fields')
    except ValueError as e: ap.error(f'--fresh_spec {a.fresh_spec} is not JSON ({e}); write one object of FRESH\'s fields')
    try: return check_fresh(spec, where=f'--fresh_spec {a.fresh_spec}')
    except ValueError as e: ap.error(str(e))


def default_out(name) -> Path:
    "The kit's CSV of grid `name`: benchmark.csv for the main grid, benchmark_NAME.csv for the others."
    return RESULTS/('benchmark.csv' if name == 'main' else f'benchmark_{name}.csv')


def grid_cells(ap, a, name):
    "--cells and --data_seed checked against the grid (`GRID_CELLS`): the cells as (kind, rate) pairs, or None."
    given = [f for f, v in (('--cells', a.cells), ('--data_seed', a.data_seed)) if v is not None]
    if given and name not in GRID_CELLS:
        why = ("the pre-registration fixes its cells and Digits-MLT instance (FRESH, or your --fresh_spec's cells and data_seed)"
               if name == 'fresh' else f"the {name} grid's cells are part of what it tests")
        ap.error(f"{' and '.join(given)} {'do' if len(given) > 1 else 'does'} not apply to --{name}: {why}; "
                 f"{' and '.join(given)} apply to the main, --quick and --peers grids")
    if a.data_seed is not None:
        try: OPTIONS['data_seed'].check(a.data_seed, '--data_seed')
        except ValueError as e: ap.error(str(e))
    if a.cells is None: return None
    try: cells = [(k.strip(), float(r)) for k, r in (c.split(':') for c in a.cells.split(','))]
    except ValueError: ap.error(f'--cells takes noise kind:rate pairs joined by commas (e.g. flip:0.5,cooc:0.7), got {a.cells!r}')
    try: cells = check_cells(cells, '--cells')
    except ValueError as e: ap.error(str(e))
    if not a.out and (off := [c for c in cells if c not in GRID_CELLS[name]]):
        ap.error(f"--cells {','.join(f'{k}:{r:g}' for k, r in off)}: not cells of the {name} grid, and its rows would go to the kit's "
                 f"published {default_out(name).name}: pass --out")
    return cells


def check_results_csv(ap, out, flag='--out'):
    "Refuse `out` (a CSV `flag` reads) unless it is a results CSV of this tool: its header has the epochs and config columns."
    try:
        with open(out, newline='') as f: cols = csv.DictReader(f).fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e: ap.error(f'{flag} {out} cannot be read as a CSV ({e}): pass another --out')
    if not {'epochs', 'config'} <= set(cols):
        ap.error(f'{flag} {out} is not a results CSV of this tool (its header has no epochs and config columns): pass the --out of '
                 'a grid this tool ran')


def check_schedule(ap, out, epochs, dataset, data_seed=0):
    """Refuse a CSV that holds rows of another schedule (epochs, data set, Digits-MLT instance `data_seed`): its rows would
    count as done, or be averaged with them."""
    if not out.is_file(): return
    with open(out) as f:
        rows = csv.DictReader(f)
        if out.stat().st_size and not {'epochs', 'config'} <= set(rows.fieldnames or ()):
            ap.error(f'--out {out} is not a results CSV of this tool (its header has no epochs and config columns): pass another --out')
        try: held = {(int(r['epochs']), (c := json.loads(r['config'])).get('dataset'), c.get('data_seed') or 0) for r in rows if r.get('config')}
        except (KeyError, TypeError, ValueError): ap.error(f'--out {out} is not a results CSV of this tool (no epochs or config column): pass another --out')
    if other := sorted(h for h in held if h != (epochs, dataset, data_seed)):
        inst = lambda s: f' (Digits-MLT instance {s})' if s else ''
        ap.error(f'--out {out} holds rows of {", ".join(f"{e} epochs on {d}{inst(s)}" for e, d, s in other)}, and this grid runs '
                 f'{epochs} epochs on {dataset}{inst(data_seed)}: a table would average them together; pass another --out'
                 + (f' (or --epochs {other[0][0]})' if other[0][1:] == (dataset, data_seed) else ''))


def reverify(ap, out, k):
    "--verify: `k` random current rows of `out` re-run (stitchup_nb.verify.verify)."
    if not out.is_file(): ap.error(f'--verify: {out} does not exist (pass --out, or --quick for the quick grid)')
    try: res = verify(out, k)
    except (ValueError, AssertionError) as e: sys.exit(f'benchmark.py --verify: {e}')
    print(f'{len(res)} row(s) of {out} re-ran to their totals: ' + '; '.join(sorted(set(res.check))))


def start_copies(jobs, argv, parts) -> list:
    "The other `jobs - 1` copies of this command, told where the grid's parts are (`COPY`)."
    args = list(sys.argv[1:] if argv is None else argv)
    i = next(k for k, v in enumerate(args) if v == '--jobs' or v.startswith('--jobs='))
    del args[i:i + (1 if '=' in args[i] else 2)]
    copies = [subprocess.Popen([sys.executable, __file__, *args], env={**os.environ, COPY: parts}) for _ in range(jobs - 1)]
    print(f'{jobs} copies at work (this one and {jobs - 1} more)', flush=True)
    return copies


def run_order(runs):
    """The sort key of the grid's runs. The order: every seed of the first cell (flip 0.5) and the clean references,
    then seed 0 of every cell, then the other seeds cell by cell (a stopped grid leaves whole cells at 3 seeds): the
    first cell's rate, then lowest first."""
    cells = list(dict.fromkeys((s['kind'], s['rate']) for _, _, s, _, _ in runs))
    first = cells[0]
    later = sorted(cells, key=lambda c: (c[1] != first[1], c[1]))
    return lambda r: ((0, 0, r[4]) if (r[2]['kind'], r[2]['rate']) == first or r[1].get('noise_rate') == 0.
                      else (1, 0, 0) if r[4] == 0 else (2, later.index((r[2]['kind'], r[2]['rate'])), r[4]))


def claim_key(r) -> list:
    "A run of the grid as `row_key` names its row (method, noise kind and rate, seed, extra), for `claim` to compare."
    return [r[0], r[2]['kind'], float(r[1].get('noise_rate', r[2]['rate'])), r[4], extra_key(json.dumps(r[3] or {}))]


def sweep(out, seeds, epochs, threads, here, current):
    "The ensemble weight t (one training, evaluated at every t) for each seed, by the copy that claims it."
    for seed in seeds:
        if claim(out, [['sweep t', seed]], lambda d: row_key(d)[:1] + row_key(d)[3:4], current) is None: continue
        rows = [dict(r, fingerprint=row_fingerprint(r, here)) for r in t_sweep(seed, epochs, threads=threads)]
        append_rows(out, rows)
        for r in rows: print(f"sweep t={json.loads(r['extra'])['t']:.1f} seed {seed}: total {r['total']:.2f} "
                             f"head {r['head']:.2f} tail {r['tail']:.2f}", flush=True)


def phases(out, runs, seeds, plus) -> list:
    "(CSV, runs) in the order they run."
    if not plus: return [(out, runs)]
    # seed by seed: the baselines as rows of the main grid (which then skips them), then the candidates
    main_csv = out.with_name('benchmark.csv')
    return [p for seed in seeds for p in (
        (main_csv, [(m, MAIN_ROWS[m], dict(kind=k, rate=r), None, seed) for k, r in PLUS_CELLS for m in PLUS_BASE]),
        (out, [r for r in runs if r[4] == seed]))]


def run_phases(work, current, here, epochs, dataset, threads):
    "Each run of each phase in `work` ((CSV, runs) pairs, from `phases`) that no current row holds and no other copy has claimed, its row appended as it ends."
    for csv_path, todo in work:
        while (i := claim(csv_path, [claim_key(r) for r in todo], current=current)) is not None:
            m, o, s, extra, seed = todo[i]
            row = one_run(m, o, s['kind'], s['rate'], seed, epochs, extra, dataset, threads)
            row['fingerprint'] = row_fingerprint(row, here)
            append_rows(csv_path, [row])
            print(f"[{csv_path.name} {i+1}/{len(todo)}] {m:24s}{' ' + json.dumps(extra) if extra else ''} {s['kind']} {row['rate']:.1f} seed {seed}: total {row['total']:.2f} "
                  f"head {row['head']:.2f} medium {row['medium']:.2f} tail {row['tail']:.2f} ({row['seconds']:.0f} s)", flush=True)


def main(argv=None):
    ap = parser()
    a, name, seeds, want = options(ap, argv)
    if a.report: print(report()); return
    out = Path(a.out) if a.out else default_out(name)
    epochs, dataset = a.epochs or (1 if a.quick else 8), 'digits-small' if a.quick else 'digits'
    if a.verify is None:
        instance = (a.spec or FRESH)['data_seed'] if a.fresh else a.data_seed      # the Digits-MLT instance this grid's rows draw
        for csv_path in {out, *([out.with_name('benchmark.csv')] if a.plus else [])}:
            check_schedule(ap, csv_path, epochs, dataset, instance if csv_path == out else 0)
    elif out.is_file(): check_results_csv(ap, out, '--verify: --out')     # before the restart (reverify says a missing one)
    restart_in(CPU_ENV, __file__, argv)      # main() called from Python: torch has computed nothing yet, start again in them
    warnings.filterwarnings('ignore')
    if a.verify is not None: return reverify(ap, out, a.verify)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [(m, o, s, e, seed) for seed in seeds for m, o, s, e in grid(name, a.cells, a.data_seed, a.spec)]
    if a.methods is not None: runs = [r for r in runs if r[1]['method'] in want]
    base = [(m, MAIN_ROWS[m], dict(kind=k, rate=r), None, 0) for k, r in PLUS_CELLS for m in PLUS_BASE] if a.plus else []
    # a copy started below finds them computed by the copy that started it (in the file): computing them again costs minutes
    fp_file = out.parent/FINGERPRINTS.name         # beside the CSV, where results.load reads them
    parts = os.environ.get(COPY) or grid_fingerprints(runs + base, dataset, epochs, a.sweep, fp_file)
    here = json.loads(Path(parts).read_text())     # this machine's parts: a new row is stamped with them
    fps = load_fingerprints(fp_file)               # every machine's: a row any of them made is done
    # the other copies start once the fingerprints are in place; each claims its own runs
    copies = start_copies(a.jobs, argv, parts) if a.jobs > 1 else []
    try: grid_runs(a, out, runs, seeds, epochs, dataset, here, fps, copies)
    except KeyboardInterrupt:       # Ctrl-C: one line; every row written so far stays, and the same command continues
        if os.environ.get(COPY): sys.exit(130)     # a copy stops without a word: the copy that started it says the line
        for p in copies: p.wait()   # the copies got the same signal (one process group) and stop with it
        sys.exit(f'interrupted: the rows written so far stay in {out}; the same command continues the grid (the rows of '
                 'the current code are skipped)')
    finally:
        if not os.environ.get(COPY): Path(parts).unlink(missing_ok=True)
    print(f'results in {out}')


def grid_runs(a, out, runs, seeds, epochs, dataset, here, fps, copies):
    "The grid's runs (and --sweep's), each appended as it ends, then the other copies waited for."
    current = lambda r: bool(r.get('fingerprint')) and r['fingerprint'] in row_fingerprints(r, fps)   # made by this behaviour
    if not a.plus: runs.sort(key=run_order(runs))
    print(f'rows in {out} whose fingerprint is the current code\'s are skipped', flush=True)
    if a.sweep: sweep(out, seeds, epochs, a.threads, here, current)    # the ensemble weight t first
    run_phases(phases(out, runs, seeds, a.plus), current, here, epochs, dataset, a.threads)
    failed = [p.pid for p in copies if p.wait() != 0]
    if failed: sys.exit(f'{len(failed)} of the other copies failed (pids {failed}); their runs stay unclaimed, run again to finish them')


if __name__ == '__main__': main()
