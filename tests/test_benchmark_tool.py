"""The benchmark (stitchup_nb.experiments, tools/benchmark.py) shares a grid between processes: each claims its next
run under a lock, rows already in the CSV are skipped, and claims of processes that died lapse. A row's numbers do not
depend on what runs beside it, and --verify re-runs current rows (stitchup_nb.evidence) made with the CPU kernels it
computes with (the tool pins them: stitchup_nb.pins.CPU_ENV): exactly when this machine made them, within the
cross-machine tolerance when another did."""
import csv, json, os, shutil, subprocess, sys, textwrap
from pathlib import Path

import pytest

from stitchup_nb import experiments as bm
from stitchup_nb import grids, results
from stitchup_nb.pins import CPU_ENV, RESULTS
from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]

KEYS = [[f'm{i}', 'flip', .5, s, '{}'] for i in range(6) for s in range(3)]


def _row(k): return dict(method=k[0], kind=k[1], rate=k[2], seed=k[3], extra=k[4], epochs=1, total=1., seconds=0.)


def test_rows_in_the_csv_are_skipped_and_claims_are_held(tmp_path):
    out = tmp_path/'b.csv'
    bm.append_rows(out, [_row(KEYS[0]), _row(KEYS[2])])
    assert bm.claim(out, KEYS) == 1
    # this process's own claim does not block it (a retry after a failed run); another live process's does
    assert bm.claim(out, KEYS) == 1
    live = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        with open(f'{out}.claims', 'a') as f: f.write(json.dumps([live.pid, KEYS[3]]) + '\n')
        bm.append_rows(out, [_row(KEYS[1])])
        assert bm.claim(out, KEYS) == 4
    finally: live.kill(); live.wait()
    # the claimant died without writing its row: its run is free again
    bm.append_rows(out, [_row(KEYS[4])])
    assert bm.claim(out, KEYS) == 3


def test_everything_claimed_gives_none(tmp_path):
    out = tmp_path/'b.csv'
    bm.append_rows(out, [_row(k) for k in KEYS])
    assert bm.claim(out, KEYS) is None



def test_a_run_set_apart_by_a_whole_number_is_done_however_its_row_wrote_it(tmp_path):
    """The sweep's alpha 1.0 ({'balance_head_alpha': 1.0}) is done when the CSV holds its row written with 1 (one_run
    with extra={'balance_head_alpha': 1}): claim_key and row_key read extra as one setting (extra_key), as the tables do.
    1.0 and 1 were two keys, and the grid ran the run again."""
    tool = load_tool('benchmark')
    out = tmp_path/'b.csv'
    run = ('sweep alpha_head', {'method': 'full'}, dict(kind='flip', rate=.5), {'balance_head_alpha': 1.0}, 0)
    bm.append_rows(out, [_row(['sweep alpha_head', 'flip', .5, 0, '{"balance_head_alpha": 1}'])])
    assert bm.claim(out, [tool.claim_key(run), tool.claim_key(run[:4] + (1,))]) == 1

@pytest.mark.parametrize('n', [2, 3])
def test_copies_side_by_side_do_every_run_once(tmp_path, n):
    out = tmp_path/'b.csv'
    script = textwrap.dedent(f"""
        import json, sys, time
        from stitchup_nb import experiments as bm
        keys = {KEYS!r}
        while (i := bm.claim({str(out)!r}, keys)) is not None:
            time.sleep(0.02)   # a run
            bm.append_rows({str(out)!r}, [dict(method=keys[i][0], kind='flip', rate=.5, seed=keys[i][3], extra='{{}}')])
            print(i, flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    done = [int(l) for p in procs for l in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(done) == list(range(len(KEYS)))          # each run exactly once
    assert len(results.load('b', tmp_path, current=None)) == len(KEYS)


def test_factorial_tables_pair_each_sampler_loss_combination_by_seed():
    "The 2 × 2 of Stitch-Up effects joins the main grid's reference pairings with the --factorial runs, seed by seed."
    import pandas as pd
    base = {'BCE': 40, 'BCE+Stitch-Up': 37, 'DB-Focal': 36, 'DB-Focal+Stitch-Up': 38,          # main grid
            'DB-Focal, random': 41, 'DB-Focal+Stitch-Up, random': 39,
            'BCE, class-aware': 35, 'BCE+Stitch-Up, class-aware': 38}
    rows = [dict(method=m, kind=k, rate=r, seed=s, total=v + s + (r == .3) * 30)
            for m, v in base.items() for k, r in (('flip', .7), ('flip', .3), ('cooc', .9)) for s in range(3)]
    rows = pd.DataFrame(rows)
    fac = rows[rows.method.isin(grids.FACTORIAL) & (rows.kind == 'flip')]
    res = rows[~rows.method.isin(grids.FACTORIAL)]
    levels, effect = results.factorial_tables(res, fac)
    assert list(effect.columns) == ['flip 0.3', 'flip 0.7']                    # only the cells the factorial ran
    assert effect.loc['random sampling, BCE (reference)', 'flip 0.7'] == '-3.0 [-3.0, -3.0] (0/3)'
    assert effect.loc['random sampling, DB-Focal', 'flip 0.7'] == '-2.0 [-2.0, -2.0] (0/3)'
    assert effect.loc['class-aware sampling, BCE', 'flip 0.7'] == '+3.0 [+3.0, +3.0] (3/3)'
    assert effect.loc['class-aware sampling, DB-Focal (reference)', 'flip 0.3'] == '+2.0 [+2.0, +2.0] (3/3)'
    assert levels.loc['BCE, class-aware', 'flip 0.7'] == '36.0 ± 1.0' and len(levels) == 8


RUN = """
import json, sys
from stitchup_nb.experiments import one_run
row = one_run('BCE', dict(method='bce', data_seed=3), 'flip', .5, 0, 1, dataset='digits-small', threads=1)
print(json.dumps(row))
"""     # pinned_row's run (your_grid's BCE row), as one_run makes it


def _totals(n, env=None):
    procs = [subprocess.Popen([sys.executable, '-c', RUN], stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return [json.loads(o.splitlines()[-1])['total'] for o in outs]


@pytest.fixture(scope='module')
def your_grid(tmp_path_factory):
    """--quick --cells flip:0.5 --data_seed 3 --methods bce, run once for the module: BCE at flip 0.5 and its clean
    reference on Digits-MLT instance 3 (digits-small, 1 epoch). `(the CSV, the finished process)`: the grid's test checks
    them, and its BCE row is pinned_row (one training where the grid and the pinned row each made their own)."""
    out = tmp_path_factory.mktemp('grid')/'b.csv'
    return out, _bench('--quick', '--cells', 'flip:0.5', '--data_seed', '3', '--methods', 'bce', '--out', str(out), timeout=900)   # restarts


@pytest.fixture(scope='module')
def pinned_row(your_grid):
    """A quick-grid row made by tools/benchmark.py (it starts itself again with the benchmark's CPU kernels): your_grid's
    BCE row, read back as the kit reads a CSV (numbers as numbers, an empty field left out, as one_run leaves it out) and
    stamped with its fingerprint under the committed file. Each test writes its own CSV from a copy of it."""
    from stitchup_nb.evidence import load_fingerprints, read_rows, row_fingerprint
    out, p = your_grid
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    r = read_rows(out).set_index('method', drop=False).loc['BCE']
    row = {k: v.item() if hasattr(v, 'item') else v for k, v in r.items() if not (isinstance(v, float) and v != v)}
    assert row['isa'].endswith(' pinned'), row['isa']
    row['fingerprint'] = row_fingerprint(row, load_fingerprints())      # as tools/benchmark.py stamps it
    assert row['fingerprint'], 'the quick grid\'s BCE has a committed fingerprint'
    return row


def test_a_row_run_alone_and_beside_another_copy_agrees_exactly(pinned_row):
    """One thread per run: the same row alone and with a second copy competing for the cores gives the same total. With the
    benchmark's CPU kernels, as its copies run (the tool starts itself again in them): the row alone is pinned_row's, which
    the tool made."""
    side_by_side = _totals(2, env={**os.environ, **CPU_ENV})
    assert [pinned_row['total']] * 2 == side_by_side, (pinned_row['total'], side_by_side)


def _bench(*args, **kw):
    "The tool's command line, as a user types it (it restarts itself with the CPU kernels to run)."
    return subprocess.run([sys.executable, str(ROOT/'tools'/'benchmark.py'), *args], capture_output=True, text=True, **kw)


BAD_OPTIONS = [(['--threads', '0'], '--threads must be >= 1'),
               (['--seeds', '0,x'], '--seeds must be integers'),
               (['--seeds', ''], "--seeds must be integers joined by commas, got ''"),      # not the default seeds
               (['--quick', '--sweep'], 'separate grids'),
               (['--verify', '0'], '--verify must be >= 1'),
               (['--jobs', '0'], '--jobs must be >= 1'),
               (['--jobs', str(len(os.sched_getaffinity(0)) + 1)], 'cores, and the copies run one a core: pass --jobs'),   # it started them all
               (['--fresh', '--seeds', '0,5'], '--seeds 0: the pre-registered test (--fresh) runs its own fresh seeds'),
               (['--jobs', '2', '--report'], '--jobs applies to a grid'),
               (['--methods', 'bce,nope'], "--methods: no method 'nope'"),
               (['--peers', '--methods', 'bce'], '--methods: the peers grid runs none of bce'),
               (['--sweep', '--methods', 'full'], '--methods applies to a grid of separate runs'),
               (['--report', '--seeds', '7'], '--seeds does not apply to --report'),
               (['--report', '--quick'], '--quick does not apply to --report'),
               (['--quick', '--verify', '1', '--threads', '4'], '--threads does not apply to --verify'),
               (['--quick', '--verify', '1', '--epochs', '5'], '--epochs does not apply to --verify'),
               (['--cells', 'flop:0.5'], "--cells: no noise kind 'flop'; the kinds are flip"),
               (['--cells', 'flip:1.5'], '--cells: the rate of flip must be a number in (0, 1)'),
               (['--cells', 'flip:0'], '--cells: the rate of flip must be a number in (0, 1)'),
               (['--verify', '1', '--fresh', '--fresh_spec', 'x.json', '--out', 'x.csv'], '--fresh_spec does not apply to --verify'),
               (['--cells', 'flip'], '--cells takes noise kind:rate pairs joined by commas'),
               (['--cells', 'flip:0.5,flip:0.5'], '--cells: flip 0.5 is given twice'),
               (['--sweep', '--cells', 'flip:0.5'], "--cells does not apply to --sweep: the sweep grid's cells are part of what it tests"),
               (['--fresh', '--data_seed', '2'], '--data_seed does not apply to --fresh: the pre-registration fixes its cells and Digits-MLT instance'),
               (['--data_seed', '-1'], '--data_seed must be an integer >= 0'),
               (['--fresh_spec', 'mine.json'], '--fresh_spec applies to --fresh'),
               (['--report', '--cells', 'flip:0.5'], '--cells does not apply to --report'),
               (['--quick', '--verify', '1', '--data_seed', '2'], '--data_seed does not apply to --verify')]

# every bad option through the tool's main() in one process (one start-up of torch instead of one a case), as the
# command line calls it; os.execve (the restart with the CPU kernels, after the checks) stops a case that got past them.
# Started with the CPU kernels (CPU_ENV), it makes no restart: --verify runs in it (verify_answers). Each case's answer:
# [exit status, stderr, stdout], a message that sys.exit gives written to stderr, as Python writes it on exit
BAD_DRIVER = textwrap.dedent('''
    import contextlib, io, json, os, sys, traceback
    tool, cases, answers = sys.argv[1:4]
    sys.argv[0] = tool
    sys.path.insert(0, os.path.dirname(tool))
    def execve(*a): raise RuntimeError('got past the option checks: the tool restarts itself to run')
    os.execve = execve
    import benchmark
    out = []
    for args in json.load(open(cases)):
        err, said, code = io.StringIO(), io.StringIO(), 0
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(said):
            try: benchmark.main(args)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
                if not isinstance(e.code, int): print(e.code, file=err)
            except BaseException: code = 99; traceback.print_exc(file=err)
        out.append([code, err.getvalue(), said.getvalue()])
    json.dump(out, open(answers, 'w'))
''')


def another_schedule(folder) -> list:
    """In `folder`, an 8-epoch results CSV on digits and a file that is no results CSV; the commands that would add rows
    of another schedule to them: `[(command line, what its refusal says)]`."""
    out, notes = folder/'benchmark.csv', folder/'notes.txt'
    with open(out, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=bm.FIELDS); w.writeheader()
        w.writerow({**dict.fromkeys(bm.FIELDS, ''), 'method': 'BCE', 'kind': 'flip', 'rate': .5, 'seed': 0, 'epochs': 8,
                    'config': json.dumps({'dataset': 'digits', 'method': 'bce'})})
    notes.write_text('my notes\n')
    return [(['--methods', 'bce', '--epochs', '1', '--seeds', '9', '--out', str(out)],
             [f'--out {out} holds rows of 8 epochs on digits', 'and this grid runs 1 epochs on digits']),
            (['--quick', '--out', str(out)], [f'--out {out} holds rows of 8 epochs on digits', 'and this grid runs 1 epochs on digits-small']),
            (['--quick', '--out', str(notes)], [f'--out {notes} is not a results CSV of this tool']),
            # the pre-registered test draws another Digits-MLT instance: its rows would change the main table's cells
            (['--fresh', '--out', str(out)], [f'--out {out} holds rows of 8 epochs on digits,', 'and this grid runs 8 epochs on '
                                              f"digits (Digits-MLT instance {grids.FRESH['data_seed']})"])]


def folder_and_notes(folder) -> list:
    "In `folder`, a folder `runs` and a CSV this tool did not write; the commands that name them: `[(command line, what it says)]`."
    runs, notes = folder/'runs', folder/'notes.csv'
    runs.mkdir(); notes.write_text('a,b\n1,2\n')
    return [(['--quick', '--out', str(runs)], [f'--out {runs} is a folder: pass a CSV file']),
            (['--quick', '--verify', '1', '--out', str(notes)],
             [f'--verify: --out {notes} is not a results CSV of this tool (its header has no epochs and config columns)'])]


REFUSALS = {'another_schedule': another_schedule, 'folder_and_notes': folder_and_notes}


@pytest.fixture(scope='module')
def refusal_answers(tmp_path_factory):
    """Every refusal of this module that needs no setup script, through BAD_DRIVER in one process (one start-up of torch):
    'bad_options': each case of BAD_OPTIONS with its own --out, `[(exit status, stderr, out)]`; for each of REFUSALS, its
    folder (made for it alone, holding only its files), what the folder held before, and `[(exit status, stderr, what the
    refusal says)]`."""
    root = tmp_path_factory.mktemp('refusals')
    outs = [root/'bad_options'/str(k)/'b.csv' for k in range(len(BAD_OPTIONS))]
    cases = [[*args, '--out', str(o)] for (args, _), o in zip(BAD_OPTIONS, outs)]
    made = {}
    for name, setup in REFUSALS.items():
        (root/name).mkdir()
        said = setup(root/name)
        made[name] = root/name, {q.name: q.read_bytes() for q in (root/name).iterdir() if q.is_file()}, said
        cases += [args for args, _ in said]
    got, k = _driver(root, cases), len(outs)         # the answers in the order of `cases`
    answers = {'bad_options': [(code, err, o) for (code, err, _), o in zip(got, outs)]}
    for name, (folder, before, said) in made.items():
        answers[name] = folder, before, [(code, err, words) for (code, err, _), (_, words) in zip(got[k:], said)]
        k += len(said)
    return answers


@pytest.mark.parametrize('k', range(len(BAD_OPTIONS)), ids=[said for _, said in BAD_OPTIONS])
def test_bad_options_are_named_before_anything_runs(refusal_answers, k):
    code, err, out = refusal_answers['bad_options'][k]
    assert code == 2 and BAD_OPTIONS[k][1] in err, err
    assert not out.exists() and not Path(f'{out}.claims').exists()


def test_a_bad_option_on_the_command_line_exits_2_naming_it(tmp_path):
    "The same refusal from the command itself: exit status 2, the option named on stderr, nothing written."
    out = tmp_path/'b.csv'
    p = _bench('--threads', '0', '--out', str(out))
    assert p.returncode == 2 and '--threads must be >= 1' in p.stderr, p.stderr
    assert not out.exists() and not Path(f'{out}.claims').exists()


OTHER = 'Intel(R) Xeon(R) CPU @ 2.80GHz [00000000]'     # a machine the rows below say made them


@pytest.fixture(scope='module')
def verify_answers(pinned_row, tmp_path_factory):
    """`--verify` of five CSVs made from pinned_row, each case through BAD_DRIVER in one process started with the CPU
    kernels the tool would restart itself with (one start-up of torch, not five), for the three tests below:
    `{name: (exit status, stderr, stdout, the CSV)}`. Each CSV is written as the rows say, one append_rows a list:
    'other behaviour': the row stamped by other behaviour; 'other kernels': that, then the row made with other CPU kernels
    (this behaviour, not comparable); 'typed': those, then numbers the tool did not make, re-run by `--verify 2`, each under
    a label of its own, as rows of other runs (append_rows keeps one row per run and fingerprint; a re-run reads the config;
    a row's seed, noise and method agree with its config, or the CSV is refused before anything re-runs): made here, off by
    .02 (exact on the same machine), and made on another machine beyond the cross-machine tolerance; 'edited': the row and
    a copy of it under another seed (its config still says seed 0); 'elsewhere': the row made on another machine, within
    the tolerance (another machine's last bits)."""
    from stitchup_nb.verify import CROSS_MACHINE_TOL
    root, row = tmp_path_factory.mktemp('verify'), dict(pinned_row)
    made = {'other behaviour': [[dict(row, fingerprint='0123456789ab')]],
            'other kernels': [[dict(row, fingerprint='0123456789ab')], [dict(row, isa='AVX512')]],
            'typed': [[dict(row, fingerprint='0123456789ab')], [dict(row, isa='AVX512')],
                      [dict(row, method='typed here', total=row['total'] + .02),
                       dict(row, method='typed elsewhere', machine=OTHER, total=row['total'] + CROSS_MACHINE_TOL + .5)]],
            'edited': [[row, dict(row, seed=7)]],
            'elsewhere': [[dict(row, machine=OTHER, total=row['total'] + CROSS_MACHINE_TOL / 2)]]}
    csvs = {}
    for k, (name, lists) in enumerate(made.items()):
        csvs[name] = root/str(k)/'b.csv'; csvs[name].parent.mkdir()
        for rows in lists: bm.append_rows(csvs[name], rows)
    got = _driver(root, [['--verify', '2' if name == 'typed' else '1', '--out', str(csvs[name])] for name in made], **CPU_ENV)
    return {name: (*answer, csvs[name]) for name, answer in zip(made, got)}


def test_verify_refuses_rows_of_other_behaviour_other_kernels_and_typed_numbers(verify_answers):
    "Rows made by other behaviour, or with other CPU kernels, are refused; numbers the tool did not make fail, each naming its check."
    from stitchup_nb.verify import CROSS_MACHINE_TOL
    code, err, out, _ = verify_answers['other behaviour']
    assert code == 1 and 'no row whose fingerprint matches the current code' in err, err
    code, err, out, _ = verify_answers['other kernels']
    assert code == 1 and 'no current row made with the CPU kernels' in err, err
    # in one call that re-runs both: made here, off by .02 (exact on the same machine), and made on another machine
    # beyond the cross-machine tolerance
    code, err, out, _ = verify_answers['typed']
    assert code == 1 and '2 of 2 re-run rows differ by more than allowed' in err, out + err
    assert '(same machine, exact)' in err, out + err
    assert f'(made on {OTHER}: cross-machine, within {CROSS_MACHINE_TOL:g})' in err, out + err


def test_a_row_edited_by_hand_or_cut_off_is_refused_by_the_tables_and_verify(tmp_path, pinned_row, verify_answers):
    "A copy of a row under another seed, or a CSV whose last line is cut off: named (file, line, field), nothing re-runs."
    from stitchup_nb.results import load
    code, err, out, made = verify_answers['edited']              # the row, and a copy under seed 7: its config still says 0
    assert code == 1 and "line 3: its seed 7 is not its configuration's (0)" in err, out + err
    out = tmp_path/'benchmark.csv'; shutil.copy(made, out)
    with pytest.raises(ValueError, match="line 3: its seed 7"): load('benchmark', tmp_path, current=None)
    out.write_text(out.read_text()[:-30])
    with pytest.raises(ValueError, match='line 3, its last, is cut off'): load('benchmark', tmp_path)
    with pytest.raises(ValueError, match='line 3, its last, is cut off'): bm.append_rows(out, [dict(pinned_row, seed=1)])


def test_verify_holds_rows_of_another_machine_to_the_cross_machine_tolerance(verify_answers):
    "Within the tolerance it passes, naming the check and the machine (beyond it: the test above)."
    code, err, out, _ = verify_answers['elsewhere']
    assert code == 0 and 'cross-machine, within' in out and 'Xeon' in out, out + err


def test_appending_under_another_header_is_refused(tmp_path):
    out = tmp_path/'old.csv'
    out.write_text('method,kind,rate,seed,total\nBCE,flip,0.3,0,50.0\n')
    with pytest.raises(ValueError, match='upgrade_csv'): bm.append_rows(out, [_row(KEYS[0])])
    assert bm.upgrade_csv(out) == 1
    bm.append_rows(out, [_row(KEYS[0])])
    assert [r['method'] for r in csv.DictReader(open(out))] == ['BCE', 'm0']


def test_a_run_already_in_the_csv_under_its_fingerprint_is_refused(tmp_path):
    "One row per run and behaviour: the same run again (same fingerprint, or none on either) is refused, nothing written."
    out = tmp_path/'b.csv'
    bm.append_rows(out, [_row(KEYS[0]), dict(_row(KEYS[1]), fingerprint='f1')])
    before = out.read_text()
    with pytest.raises(ValueError, match=r"row 2 given is the run of row 1 of .*b.csv \('m0' at flip 0.5 seed 0, no fingerprint on either\)"):
        bm.append_rows(out, [_row(KEYS[2]), dict(_row(KEYS[0]), total=2.)])
    with pytest.raises(ValueError, match='fingerprint f1.*A changed variant takes another label'):
        bm.append_rows(out, [dict(_row(KEYS[1]), fingerprint='f1')])
    assert out.read_text() == before
    bm.append_rows(out, [dict(_row(KEYS[1]), fingerprint='f2'), dict(_row(KEYS[0]), method='m0 v2')])   # new behaviour; own label
    assert [(r['method'], r['fingerprint']) for r in csv.DictReader(open(out))][2:] == [('m0', 'f2'), ('m0 v2', '')]


def test_a_csv_of_another_schedule_is_refused_before_anything_is_written(refusal_answers):
    """An 8-epoch CSV does not take 1-epoch rows (they would count as done, or be averaged with it), nor a quick grid's,
    nor the fresh test's (another Digits-MLT instance); a file that is no results CSV is not one (`another_schedule`).
    All through BAD_DRIVER: refusal_answers."""
    folder, before, got = refusal_answers['another_schedule']
    for code, err, said in got:
        assert code == 2 and all(s in err for s in said), err
    assert len(got) == 4
    assert {q.name: q.read_bytes() for q in folder.iterdir()} == before     # nothing written: no rows, no fingerprints, no claims


def test_a_folder_as_out_and_verify_of_a_csv_that_is_no_results_csv_are_named_before_anything_runs(refusal_answers):
    """--out naming a folder (it failed with IsADirectoryError once the grid began), and --verify of a CSV this tool did
    not write (it said '1 rows made by other behaviour'): refused before the restart (`folder_and_notes`). One process:
    BAD_DRIVER, refusal_answers."""
    folder, before, got = refusal_answers['folder_and_notes']
    for code, err, said in got:
        assert code == 2 and all(s in err for s in said), err
    assert len(got) == 2
    assert (folder/'notes.csv').read_text() == 'a,b\n1,2\n' and not list((folder/'runs').iterdir())
    assert {q.name for q in folder.iterdir()} == {'notes.csv', 'runs'}


def _driver(tmp_path, cases, **env) -> list:
    "Each case (a command line) through BAD_DRIVER in one process: `[(exit status, stderr, stdout)]`; 99: it got past the checks."
    (tmp_path/'cases.json').write_text(json.dumps(cases))
    (tmp_path/'driver.py').write_text(BAD_DRIVER)
    p = subprocess.run([sys.executable, tmp_path/'driver.py', ROOT/'tools'/'benchmark.py', tmp_path/'cases.json', tmp_path/'answers.json'],
                       capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert p.returncode == 0, p.stderr[-3000:]
    return [tuple(x) for x in json.loads((tmp_path/'answers.json').read_text())]


SOFT = """
from stitchup_nb.grids import MAIN_ROWS
from stitchup_nb.methods import METHODS
METHODS['full_soft'] = dict(METHODS['full'], label='Full, soft', random_head_alpha=.6, balance_head_alpha=.6)
MAIN_ROWS['Full, soft'] = dict(method='full_soft')
"""


def test_your_own_variant_cells_instance_and_pre_registration_are_checked_before_anything_is_written(tmp_path):
    """A researcher's variant (STITCHUP_SETUP) in the main grid at cells and a Digits-MLT instance of their choice, and
    their own pre-registration (--fresh --fresh_spec): a bad spec names its field, the instance goes through the CSV's
    schedule check, and a good command gets past every check. No training: one process, BAD_DRIVER."""
    (tmp_path/'soft.py').write_text(SOFT)
    spec = dict(method='full_soft', baselines=['bce', 'full'], seeds=[10, 11], data_seed=2, cells=[['flip', .7]],
                criterion=[[['flip', .7], 'full', 'mean', 0]])
    files = {'good.json': spec, 'unknown.json': dict(spec, method='full_sfot'), 'used.json': dict(spec, seeds=[1, 10]),
             'clause.json': dict(spec, criterion=[[['cooc', .7], 'full', 'mean', 0]])}
    for n, v in files.items(): (tmp_path/n).write_text(json.dumps(v))
    (tmp_path/'broken.json').write_text('{"method": ')
    main = tmp_path/'main.csv'               # a development CSV of Digits-MLT instance 0, 8 epochs on digits
    with open(main, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=bm.FIELDS); w.writeheader()
        w.writerow({**dict.fromkeys(bm.FIELDS, ''), 'method': 'BCE', 'kind': 'flip', 'rate': .5, 'seed': 0, 'epochs': 8,
                    'config': json.dumps({'dataset': 'digits', 'method': 'bce', 'data_seed': 0})})
    before = main.read_bytes()
    fresh = lambda name, *more: ['--fresh', '--fresh_spec', str(tmp_path/name), *more]
    cases = [(fresh('unknown.json', '--out', str(tmp_path/'f.csv')), f"--fresh_spec {tmp_path/'unknown.json'} field 'method': no method 'full_sfot'"),
             (fresh('used.json', '--out', str(tmp_path/'f.csv')), "field 'seeds': 1 is a seed the development runs drew already"),
             (fresh('clause.json', '--out', str(tmp_path/'f.csv')), "clause 1 of --fresh_spec " + str(tmp_path/'clause.json') + " field 'criterion': its cell cooc 0.7 is not one of the field 'cells'"),
             (fresh('broken.json', '--out', str(tmp_path/'f.csv')), 'is not JSON'),
             (fresh('missing.json', '--out', str(tmp_path/'f.csv')), 'cannot be read'),
             (fresh('good.json'), '--fresh_spec needs an --out of its own'),
             (fresh('good.json', '--out', str(RESULTS/'benchmark.csv')), "--fresh_spec needs an --out of its own, outside"),   # not a published CSV
             (fresh('good.json', '--seeds', '5', '--out', str(tmp_path/'f.csv')), f"--seeds 5: the pre-registered test (--fresh) runs its own fresh seeds 10,11 only ({tmp_path/'good.json'})"),
             (fresh('good.json', '--out', str(main)), f'--out {main} holds rows of 8 epochs on digits, and this grid runs 8 epochs on digits (Digits-MLT instance 2)'),
             (['--methods', 'full_soft,bce', '--cells', 'flip:0.4'], "--cells flip:0.4: not cells of the main grid, and its rows would go to the kit's published benchmark.csv: pass --out"),
             # the instance goes through the schedule check: a CSV of instance 0 does not take instance 3's rows
             (['--methods', 'bce', '--data_seed', '3', '--out', str(main)], 'and this grid runs 8 epochs on digits (Digits-MLT instance 3)'),
             # past every check (the driver stops it where the tool restarts itself to run)
             (['--methods', 'full_soft,bce', '--cells', 'flip:0.4,cooc:0.6', '--data_seed', '3', '--out', str(tmp_path/'m.csv')], 'got past the option checks'),
             (fresh('good.json', '--out', str(tmp_path/'f.csv')), 'got past the option checks'),
             (fresh('good.json', '--methods', 'full_soft,full', '--seeds', '11', '--out', str(tmp_path/'f.csv')), 'got past the option checks')]
    got = _driver(tmp_path, [args for args, _ in cases], STITCHUP_SETUP=str(tmp_path/'soft.py'))
    for (code, err, _), (args, said) in zip(got, cases):
        assert code == (99 if said == 'got past the option checks' else 2) and said in err, (args, err[-2000:])
    # without the script the variant is unknown, and the refusal says how to make it known
    code, err, _ = _driver(tmp_path, [fresh('good.json', '--out', str(tmp_path/'f.csv'))])[0]
    assert code == 2 and "no method 'full_soft'" in err and 'STITCHUP_SETUP=script.py' in err, err
    assert main.read_bytes() == before and not [q.name for q in tmp_path.glob('*.csv*') if q != main]   # nothing written


def test_a_grid_at_your_cells_and_instance_records_them_and_keeps_its_csv_to_one_instance(your_grid, tmp_path):
    """your_grid (--quick --cells flip:0.5 --data_seed 3 --methods bce): BCE at flip 0.5 and its clean reference on
    Digits-MLT instance 3 (digits-small, 1 epoch), each row's config recording the instance and stamped with its
    fingerprint; the same CSV then refuses the default instance's rows and another's."""
    out, p = your_grid
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    rows = list(csv.DictReader(open(out)))
    assert [(r['method'], r['kind'], float(r['rate'])) for r in rows] == [('BCE', 'flip', .5), ('BCE (clean)', 'flip', 0.)], rows
    assert all(json.loads(r['config'])['data_seed'] == 3 and json.loads(r['config'])['dataset'] == 'digits-small' and r['fingerprint']
               for r in rows), rows
    assert len(results.load('b', out.parent)) == 2                     # current rows: the fingerprints beside the CSV
    # the refusals are tried on a copy (the fingerprints beside it too): the grid's own CSV, which pinned_row reads, stays
    # the grid's whatever they do, so that no test's outcome hangs on which of them ran first
    for f in (out, out.parent/'fingerprints.json'): shutil.copy(f, tmp_path/f.name)
    out = tmp_path/out.name
    before = out.read_bytes()
    cases = [['--quick', '--cells', 'flip:0.5', '--methods', 'bce', '--out', str(out)],
             ['--quick', '--data_seed', '4', '--methods', 'bce', '--out', str(out)]]
    got = _driver(tmp_path, cases)
    assert got[0][0] == 2 and f'--out {out} holds rows of 1 epochs on digits-small (Digits-MLT instance 3), and this grid runs 1 epochs on digits-small: a table would average them' in got[0][1], got[0]
    assert got[1][0] == 2 and 'and this grid runs 1 epochs on digits-small (Digits-MLT instance 4)' in got[1][1], got[1]
    assert out.read_bytes() == before



def test_jobs_on_a_one_core_machine():
    """On one core (the process's affinity, as taskset or a container's cpuset sets it) --jobs 2 is refused as above the
    cores, and --jobs 2 --report by what is wrong with it first (--jobs applies to a grid): BAD_OPTIONS' case said the
    cores there, so it failed on a one-core machine."""
    one = lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    p = subprocess.run([sys.executable, str(ROOT/'tools'/'benchmark.py'), '--jobs', '2', '--report'], capture_output=True,
                       text=True, preexec_fn=one)
    assert p.returncode == 2 and '--jobs applies to a grid' in p.stderr, p.stderr[-2000:]
    p = subprocess.run([sys.executable, str(ROOT/'tools'/'benchmark.py'), '--quick', '--jobs', '2'], capture_output=True,
                       text=True, preexec_fn=one)
    assert p.returncode == 2 and '--jobs 2: this process may use 1 cores' in p.stderr, p.stderr[-2000:]

# tools/benchmark.py's main() with its grid's work replaced: the fingerprints (a parts file beside --out), the runs (a
# wait, after saying 'working') and the copies (this driver again, as a copy) stand in, so that a Ctrl-C (SIGINT to the
# process group) reaches a parent and its copy while they work, as it reaches `--jobs 2`
INTERRUPT_DRIVER = textwrap.dedent('''
    import os, subprocess, sys, time
    tool, args = sys.argv[1], sys.argv[2:]
    sys.argv[0] = tool
    sys.path.insert(0, os.path.dirname(tool))
    import benchmark
    def fingerprints(*a, **k):
        p = os.path.join(os.path.dirname(args[args.index('--out') + 1]), 'parts.json')
        open(p, 'w').write('{}'); return p
    def runs(*a, **k):          # work that Ctrl-C stops; short sleeps: one of 120 s is cut short only where the signal
        print('working', flush=True)     # reaches the main thread, where a real run's Python loop sees it at its next step
        for _ in range(1200): time.sleep(.1)
    def copies(jobs, argv, parts):
        rest = [x for x in argv if x not in ('--jobs', str(jobs))]
        return [subprocess.Popen([sys.executable, __file__, tool, *rest], env={**os.environ, benchmark.COPY: parts})]
    benchmark.grid_fingerprints, benchmark.grid_runs, benchmark.start_copies = fingerprints, runs, copies
    benchmark.decode_workers = lambda: 2     # the copies' work is a wait: --jobs 2 is no more than a one-core machine can take
    benchmark.main(args)
''')


def test_ctrl_c_with_copies_says_interrupted_once(tmp_path):
    "Ctrl-C reaches every copy of --jobs 2; only the copy that started the others says the line, once they have stopped."
    import signal, time
    (tmp_path/'driver.py').write_text(INTERRUPT_DRIVER)
    p = subprocess.Popen([sys.executable, tmp_path/'driver.py', ROOT/'tools'/'benchmark.py', '--quick', '--jobs', '2',
                          '--out', str(tmp_path/'b.csv')], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **CPU_ENV}, start_new_session=True)      # its own process group, as a terminal's
    try:
        working, t = 0, time.time()
        while working < 2 and time.time() - t < 120:
            working += p.stdout.readline().strip() == 'working'
        assert working == 2, 'the parent and its copy did not both start their work'
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 1 and err.count('interrupted: the rows written so far stay in') == 1, err
    assert 'Traceback' not in err, err
