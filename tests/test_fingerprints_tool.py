"""tools/fingerprints.py: the behaviour fingerprints the published tables stand on (stitchup_nb.evidence). --check
recomputes a fingerprints file and fails, naming the part, when the code no longer makes it; the committed file covers
every current row; options are checked before anything runs.

The parts are computed for real once (the tool in its own process, started with FP_ENV, `--add` into a new file); every
other call runs the tool's `main` in this process with `compute` giving those parts, so that each case costs no probe
run (CI's `tools/fingerprints.py --check` recomputes every part of the committed file besides)."""
import copy, csv, json, os, subprocess, sys, threading, time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from tests.conftest import load_tool
from stitchup_nb.pins import FINGERPRINTS, FP_ENV
from stitchup_nb.evidence import (behaviour_key, current_mask, fingerprints_problem, load_fingerprints, row_behaviour_key,
                                  row_fingerprint)
from stitchup_nb.experiments import FIELDS

ROOT = Path(__file__).resolve().parents[1]
KEY = behaviour_key('bce', 'digits-small', 1)
PARTS = {'methods': [KEY], 'noise': ['flip'], 'data': ['digits-small']}      # BCE on digits-small with flip noise


TOOL = load_tool('fingerprints')


@pytest.fixture(scope='module')
def computed(tmp_path_factory):
    "This machine's parts for PARTS and the pretraining, computed by the tool as a user runs it (`--add`, a new file)."
    root = tmp_path_factory.mktemp('fingerprints')
    # started with FP_ENV, as the tool would restart itself: one start-up of torch, not two
    p = subprocess.run([sys.executable, str(ROOT/'tools'/'fingerprints.py'), '--add', json.dumps(PARTS), '--file',
                        str(root/'new.json'), '--parts-out', str(root/'parts.json')],
                       capture_output=True, text=True, timeout=900, env={**os.environ, **FP_ENV})
    assert p.returncode == 0 and 'wrote ' in p.stdout, p.stdout + p.stderr
    parts, written = (json.loads((root/f).read_text()) for f in ('parts.json', 'new.json'))
    assert {k: sorted(parts[k]) for k in PARTS} == PARTS and len(parts['pretrain']) == 12
    assert all(written[k] == parts[k] for k in ('pretrain', *PARTS))         # a new file holds exactly what was computed
    return parts


@pytest.fixture
def tool(monkeypatch, capsys):
    """Runs the tool's `main` here, as `python tools/fingerprints.py ARGS` would (FP_ENV in force): returns its exit
    status, stdout and stderr. Computing raises, unless a test gives `compute` parts (see `computing`)."""
    for k, v in FP_ENV.items(): monkeypatch.setenv(k, v)
    def computes(*a, **kw): raise AssertionError('the tool computed parts in a case that must not reach computing')
    def recomputes(*a, **kw): raise AssertionError("the tool ran the file's code in a case that must not")
    monkeypatch.setattr(TOOL, 'compute', computes)
    monkeypatch.setattr(TOOL, 'reference_parts', recomputes)
    def run(*args):
        code, said = 0, ''
        try: TOOL.main([str(a) for a in args])
        except SystemExit as e: code, said = (e.code, '') if isinstance(e.code, int) or e.code is None else (1, f'{e.code}\n')
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code or 0, stdout=out.out, stderr=out.err + said)
    return run


@pytest.fixture
def computing(tool, computed, monkeypatch):
    "`tool`, its `compute` giving the parts `computed` made (asked for those and no others)."
    def compute(keys, kinds, datasets, jobs=1, log=print):
        assert (sorted(keys), sorted(kinds), sorted(datasets)) == tuple(PARTS[k] for k in ('methods', 'noise', 'data'))
        return copy.deepcopy(computed)
    monkeypatch.setattr(TOOL, 'compute', compute)
    return tool


@pytest.mark.parametrize('args,said', [(['--check', '--jobs', '0'], '--jobs must be >= 1'),
                                       (['--adopt', 'x.json'], '--adopt FILE needs --source'),
                                       (['--status', '--source', 'abc'], '--source goes with --adopt'),
                                       (['--add', '[1, 2'], '--add must be a JSON object'),
                                       (['--add', ''], '--add must be a JSON object'),
                                       (['--check', '--file', 'no/such.json'], 'does not exist'),
                                       (['--record-machine', '--file', 'no/such.json'], 'does not exist'),
                                       (['--check', '--parts-out', 'x.json'], '--parts-out goes with --add'),
                                       (['--status', '--file', 'no/such.json'], 'does not exist'),
                                       (['--adopt', 'no/such.json', '--source', 'abc'], 'no readable fingerprints file'),
                                       (['--adopt', str(ROOT/'settings.ini'), '--source', 'abc'], 'no readable fingerprints file'),
                                       # the committed file has the shape; no published row has this source: a typo,
                                       # refused before a CSV is stamped or the file written
                                       (['--adopt', str(FINGERPRINTS), '--source', 'no-such-hash'], 'no row of the CSVs beside')])
def test_bad_options_are_named(tool, args, said):
    p = tool(*args)
    assert p.returncode == 2 and said in p.stderr, p.stderr


def _parts(keys, fp='f' * 12):
    "Parts as `compute` gives them, for `keys` on digits-small with flip noise (each method part `fp`)."
    return {'pretrain': 'a' * 12, 'data': {'digits-small': 'd' * 12}, 'noise': {'flip': 'n' * 12}, 'methods': {k: fp for k in keys}}


def _add(key, f, said):
    "`tools/fingerprints.py --add` of method `key` into `f`, in a thread; what ended it (an exception) goes in `said`."
    def run():
        try: TOOL.main(['--add', json.dumps({'methods': [key], 'noise': ['flip'], 'data': ['digits-small']}), '--file', str(f)])
        except BaseException as e: said.append(e)
    t = threading.Thread(target=run); t.start()
    return t


def test_adds_at_once_each_keep_their_parts(tool, tmp_path, monkeypatch, capsys):
    """Two `--add`s into one file at once (copies of tools/benchmark.py on one --out): each reads the file, computes its
    parts (outside the lock), then holding the file's lock reads it again and merges its parts into what it holds then.
    Both parts are in the file; a writer holding the lock keeps the others waiting; no lock file is left."""
    f, said = tmp_path/'fingerprints.json', []
    keys = [behaviour_key('bce', 'digits-small', 1), behaviour_key('stitch_up', 'digits-small', 1), behaviour_key('asl', 'digits-small', 1)]
    both = threading.Barrier(2, timeout=60)
    def compute(keys, kinds, datasets, jobs=1, log=print):
        both.wait()                                    # both have read the file (none yet) before either writes
        return _parts(keys)
    monkeypatch.setattr(TOOL, 'compute', compute)
    for t in [_add(k, f, said) for k in keys[:2]]: t.join(60)
    assert not said and sorted(json.loads(f.read_text())['methods']) == sorted(keys[:2]), said
    monkeypatch.setattr(TOOL, 'compute', lambda keys, *a, **kw: _parts(keys))
    with TOOL.locked(f):                               # another writer holds the lock and adds a part meanwhile
        t = _add(keys[2], f, said)
        time.sleep(0.5)
        assert t.is_alive(), 'an --add wrote while another process held the lock'
        TOOL.write(f, {**json.loads(f.read_text()), 'methods': _parts(keys)['methods']})
    t.join(60)
    assert not said and sorted(json.loads(f.read_text())['methods']) == sorted(keys), said
    assert 'waiting for process' in capsys.readouterr().out and not Path(f'{f}.lock').exists()


ROW = {'method': 'bce', 'kind': 'flip', 'rate': '0.5', 'seed': '0', 'epochs': '1', 'total': '50.0', 'extra': '',
       'source_hash': 'abc', 'config': json.dumps({'method': 'bce', 'dataset': 'digits-small', 'epochs': 1})}


def _csv(f, rows, fields):
    "CSV `f` of `rows` under the header `fields`, as the runner writes one."
    with open(f, 'w', newline='') as fh: w = csv.DictWriter(fh, fields); w.writeheader(); w.writerows(rows)


def test_adopt_checks_every_csv_before_writing_any(tool, tmp_path):
    """--adopt stamps the rows of --source in every CSV beside the file, then writes the file: a CSV of a column the
    runner does not write is refused by name before any CSV or the file is written; once mended, the rows are stamped
    under the current columns and the file written."""
    fps = _parts([KEY])
    (tmp_path/'adopted.json').write_text(json.dumps(fps))
    out = tmp_path/'g'; out.mkdir()
    _csv(out/'benchmark_a.csv', [ROW, {**ROW, 'seed': '1', 'source_hash': 'other'}], [c for c in FIELDS if c not in ('machine', 'fingerprint')])
    _csv(out/'benchmark_b.csv', [{**ROW, 'note': 'x'}], [*FIELDS, 'note'])
    (out/'fingerprints.json').write_text('{"methods": {}, "noise": {}, "data": {}}\n')
    was = {f.name: f.read_bytes() for f in out.iterdir()}
    p = tool('--adopt', tmp_path/'adopted.json', '--source', 'abc', '--file', out/'fingerprints.json')
    assert p.returncode == 2 and "benchmark_b.csv: unknown column(s) ['note']" in p.stderr and 'rename or remove it' in p.stderr, p.stderr
    assert 'Traceback' not in p.stderr and {f.name: f.read_bytes() for f in out.iterdir()} == was
    _csv(out/'benchmark_b.csv', [{**ROW, 'source_hash': 'other'}], FIELDS)
    p = tool('--adopt', tmp_path/'adopted.json', '--source', 'abc', '--file', out/'fingerprints.json')
    assert p.returncode == 0 and 'benchmark_a.csv: 1 rows of source abc stamped' in p.stdout, p.stdout + p.stderr
    with open(out/'benchmark_a.csv', newline='') as fh: rows = list(reader := csv.DictReader(fh))
    assert reader.fieldnames == FIELDS and [r['fingerprint'] for r in rows] == [row_fingerprint(ROW, fps), '']
    assert json.loads((out/'fingerprints.json').read_text())['methods'] == fps['methods']



def test_a_file_of_keys_spelt_before_equal_numbers_were_written_alike_is_read_and_written_as_now(tool, tmp_path, monkeypatch):
    """A fingerprints file written before behaviour_key wrote equal numbers alike holds {"t": 1.0} where the key is now
    {"t": 1}: reading it (load_fingerprints, --adopt) finds the part of a row whose extra says either, and --add of a key
    so spelt writes it as now (the readers miss it otherwise, and their rows leave every table without a word)."""
    old = json.dumps({'method': 'full', 'dataset': 'digits-small', 'epochs': 1, 't': 1.0}, sort_keys=True)
    now = behaviour_key('full', 'digits-small', 1, {'t': 1.0})
    assert now != old and '"t": 1}' in now
    row = {**ROW, 'method': 'sweep t', 'extra': '{"t": 1.0}', 'config': json.dumps({'method': 'full', 'dataset': 'digits-small', 'epochs': 1})}
    fps = _parts([old])
    (tmp_path/'old.json').write_text(json.dumps({**fps, 'machine': 'A', 'machines': [{'machine': 'B', 'methods': {old: 'b' * 12}}]}))
    got = load_fingerprints(tmp_path/'old.json')
    assert got['methods'] == {now: 'f' * 12} and got['machines'][0]['methods'] == {now: 'b' * 12}
    assert row_fingerprint(row, got) == row_fingerprint(dict(row, extra='{"t": 1}'), got) == row_fingerprint(row, _parts([now]))
    # both spellings in one file (an old file a new --add wrote into): one key, the current spelling's part
    (tmp_path/'both.json').write_text(json.dumps({**fps, 'methods': {now: 'c' * 12, old: 'f' * 12}}))
    assert load_fingerprints(tmp_path/'both.json')['methods'] == {now: 'c' * 12}
    out = tmp_path/'g'; out.mkdir()
    _csv(out/'benchmark_t.csv', [row], FIELDS)
    p = tool('--adopt', tmp_path/'old.json', '--source', 'abc', '--file', out/'fingerprints.json')
    assert p.returncode == 0 and 'benchmark_t.csv: 1 rows of source abc stamped' in p.stdout, p.stdout + p.stderr
    with open(out/'benchmark_t.csv', newline='') as fh: stamped = list(csv.DictReader(fh))
    assert [r['fingerprint'] for r in stamped] == [row_fingerprint(row, _parts([now]))], stamped
    assert list(json.loads((out/'fingerprints.json').read_text())['methods']) == [now]
    asked = []
    monkeypatch.setattr(TOOL, 'compute', lambda keys, *a, **kw: asked.append(sorted(keys)) or _parts(keys))
    p = tool('--add', json.dumps({'methods': [old], 'noise': ['flip'], 'data': ['digits-small']}), '--file', tmp_path/'new.json')
    assert p.returncode == 0 and asked == [[now]], (asked, p.stdout + p.stderr)
    assert list(json.loads((tmp_path/'new.json').read_text())['methods']) == [now]

@pytest.mark.parametrize('text,said', [('{"methods": ', 'it is not JSON'), ('[1, 2]', 'it is a JSON array'),
                                       ('{"noise": {}, "data": {}}', "it has no 'methods' part"),
                                       ('{"methods": {"k": 1}, "noise": {}, "data": {}}', "its 'methods' part gives 'k' a JSON number")])
def test_a_damaged_file_is_named(tool, tmp_path, text, said):
    "Every mode that reads --file refuses a damaged one in one line (exit 2) naming it and what is wrong, before computing."
    f = tmp_path/'fingerprints.json'
    f.write_text(text)
    for mode in (['--check'], ['--status'], ['--update'], ['--record-machine'], ['--add', json.dumps(PARTS)]):
        p = tool(*mode, '--file', f)
        assert p.returncode == 2 and f'{f}: not a fingerprints file: {said}' in p.stderr and 'Traceback' not in p.stderr, (mode, p.stderr)
        assert f.read_text() == text


def test_check_fails_where_stamped_rows_lost_their_parts(tool, tmp_path):
    """A file whose parts no longer cover the stamped rows beside it (its methods emptied) makes no row current, and
    --check, comparing only the parts the file holds, would pass: it fails first, naming the CSV, the parts and the fix.
    Rows without a fingerprint stand on nothing."""
    f = tmp_path/'fingerprints.json'
    f.write_text(json.dumps({**_parts([KEY]), 'methods': {}}))
    other = behaviour_key('asl', 'digits-small', 1)
    _csv(tmp_path/'benchmark_a.csv', [{**ROW, 'fingerprint': 'f' * 12}, {**ROW, 'seed': '1', 'fingerprint': ''},
                                      {**ROW, 'method': 'asl', 'config': json.dumps(json.loads(other)), 'fingerprint': ''}], FIELDS)
    p = tool('--check', '--file', f)
    assert p.returncode == 1 and 'benchmark_a.csv: 1 row(s)' in p.stderr and f'methods {KEY}' in p.stderr, p.stderr
    assert f'git checkout -- {f}' in p.stderr and 'tools/fingerprints.py --add' in p.stderr and other not in p.stderr, p.stderr
    assert TOOL.unheld(f, _parts([KEY])) == ({}, [])


def test_the_committed_file_covers_every_row_the_tables_show():
    "Each CSV's current rows are those its fingerprint parts name; the README's tables read exactly these."
    fps = load_fingerprints()
    assert fingerprints_problem(fps) is None    # the shape every mode of the tool reads (load_fingerprints checks it)
    assert TOOL.unheld(FINGERPRINTS, fps) == ({}, [])     # every stamped row's parts: --check compares them all
    assert fps['methods'] and fps['pretrain'] and set(fps['noise']) >= {'flip', 'cooc'}
    for f in sorted(FINGERPRINTS.parent.glob('benchmark*.csv')):
        df = pd.read_csv(f, dtype=str)
        cur = df[current_mask(df, fps)]
        assert len(cur), f'{f.name}: no current row'
        assert {row_behaviour_key(r) for _, r in cur.iterrows()} <= set(fps['methods'])


def _only(fps, key):
    "`fps` cut down to the parts of BCE on digits-small flip (each machine's), as a small file to check."
    cut = lambda a: {k: v for k, v in {'pretrain': a.get('pretrain'), 'data': {d: a['data'][d] for d in a.get('data', {}) if d == 'digits-small'},
                                       'noise': {n: a['noise'][n] for n in a.get('noise', {}) if n == 'flip'},
                                       'methods': {m: a['methods'][m] for m in a.get('methods', {}) if m == key}}.items() if v}
    return {**cut(fps), 'machine': fps.get('machine'), 'machines': [dict(cut(m), machine=m['machine']) for m in fps.get('machines', [])]}


def _here(parts):
    "A file whose machine is this one, holding `parts` (CI's --check compares the committed file with the code)."
    from stitchup_nb.experiments import machine
    return {'machine': machine(), **{k: copy.deepcopy(parts[k]) for k in ('pretrain', *PARTS)}}


def test_check_passes_on_this_code_and_names_a_changed_part(computing, computed, tmp_path):
    mine = _here(computed)
    f = tmp_path/'fingerprints.json'
    f.write_text(json.dumps(mine))
    p = computing('--check', '--file', f)
    assert p.returncode == 0 and 'every fingerprint matches' in p.stdout and 'as ' in p.stdout, p.stdout + p.stderr
    p = computing('--add', json.dumps(PARTS), '--file', f)       # parts it holds already: the file (its source_commit) stays
    assert p.returncode == 0 and 'left as it is' in p.stdout and json.loads(f.read_text()) == mine, p.stdout + p.stderr
    wrong = {**mine, 'methods': {KEY: '0123456789ab'}, 'source_commit': 'f' * 40}
    f.write_text(json.dumps(wrong))       # what another behaviour computed, on this machine: no other code is run
    p = computing('--check', '--file', f)
    assert p.returncode == 1 and KEY in p.stderr and 'committed 0123456789ab' in p.stderr and '--update' in p.stderr, p.stderr


def test_another_processor_records_its_own_parts_and_then_checks(computing, tool, tmp_path, monkeypatch):
    """A file whose only machine ('another processor') computed the pretraining and the method part differently, as an
    AMD EPYC and an Intel Xeon do: --check fails naming both and the way out; --add refuses to write this machine's
    parts over the file's; --record-machine adds this machine's parts beside the others, and --check then passes; a
    processor computing exactly a recorded machine's parts is recorded with that machine."""
    from stitchup_nb.experiments import machine
    fps = load_fingerprints()
    here = [m for m in fps.get('machines', []) if m['machine'] == machine()]
    mine = _only(fps, KEY)
    theirs = {**{k: v for k, v in mine.items() if k != 'machines'}, 'machine': 'another processor',
              'pretrain': 'aaaaaaaaaaaa', 'methods': {KEY: 'bbbbbbbbbbbb'}}
    f = tmp_path/'fingerprints.json'
    f.write_text(json.dumps(theirs))
    p = computing('--check', '--file', f)
    assert p.returncode == 1 and 'committed aaaaaaaaaaaa' in p.stderr and '--record-machine' in p.stderr, p.stderr
    p = computing('--add', json.dumps(PARTS), '--file', f)
    assert p.returncode == 1 and '--record-machine' in p.stderr and json.loads(f.read_text()) == theirs, p.stderr
    def computes(*a, **kw): raise AssertionError('--update computed parts on a processor the file does not record')
    with monkeypatch.context() as m:                         # nor --update, before it computes anything
        m.setattr(TOOL, 'compute', computes)
        p = tool('--update', '--file', f)
    assert p.returncode == 1 and 'is not one the file records' in p.stderr and json.loads(f.read_text()) == theirs, p.stderr
    p = computing('--record-machine', '--file', f)
    assert p.returncode == 0, p.stderr
    got = json.loads(f.read_text())
    assert got['pretrain'] == 'aaaaaaaaaaaa' and got['methods'] == {KEY: 'bbbbbbbbbbbb'}        # theirs, kept
    assert [m['machine'] for m in got['machines']] == [machine()] and set(got['machines'][0]) >= {'pretrain', 'methods'}
    if here: assert got['machines'][0].get('pretrain', fps['pretrain']) == here[0].get('pretrain', fps['pretrain'])
    p = computing('--check', '--file', f)
    assert p.returncode == 0 and machine() in p.stdout, p.stdout + p.stderr
    # the file names another processor for exactly this machine's parts (two Intel Xeon generations compute alike):
    # this machine is recorded with it, not as parts of its own; recording again has nothing to do
    f.write_text(json.dumps({**got, 'machines': [dict(got['machines'][0], machine='a sibling processor')]}))
    p = computing('--record-machine', '--file', f)
    assert p.returncode == 0 and 'computes exactly the parts of a sibling processor' in p.stdout, p.stdout + p.stderr
    got = json.loads(f.read_text())
    assert [(m['machine'], m.get('also')) for m in got['machines']] == [('a sibling processor', [machine()])]
    assert got['pretrain'] == 'aaaaaaaaaaaa' and got['methods'] == {KEY: 'bbbbbbbbbbbb'}
    p = computing('--record-machine', '--file', f)          # recorded: nothing to do
    assert p.returncode == 0 and 'nothing to record' in p.stdout, p.stdout + p.stderr


def test_an_unrecorded_processor_is_compared_with_the_code_that_computed_the_file(computing, computed, tmp_path, monkeypatch):
    """On a processor the file does not record, parts that differ may be its arithmetic: --check computes them again
    with the code of the file's `source_commit`, on this processor, and fails only where this code differs from that
    one; without a `source_commit`, or where that code cannot run, it fails as before. Every write names the commit."""
    theirs = {'machine': 'another processor', **{k: copy.deepcopy(computed[k]) for k in ('data', 'noise')},
              'pretrain': 'aaaaaaaaaaaa', 'methods': {KEY: 'bbbbbbbbbbbb'}, 'source_commit': 'c0ffee' + '0' * 34}
    f = tmp_path/'fingerprints.json'
    f.write_text(json.dumps(theirs))
    asked = []
    def ref(commit, keys, kinds, datasets, jobs=1, moved=None):
        asked.append((commit, sorted(keys), sorted(kinds), sorted(datasets)))
        return {**copy.deepcopy(computed), **({'methods': moved} if moved else {})}
    monkeypatch.setattr(TOOL, 'reference_parts', ref)
    p = computing('--check', '--file', f)
    assert p.returncode == 0 and 'commit c0ffee000000' in p.stdout and '--record-machine' in p.stdout, p.stdout + p.stderr
    assert asked == [(theirs['source_commit'], *(PARTS[k] for k in ('methods', 'noise', 'data')))]
    monkeypatch.setattr(TOOL, 'reference_parts', lambda *a, **kw: ref(*a, **kw, moved={KEY: 'cccccccccccc'}))
    p = computing('--check', '--file', f)
    assert p.returncode == 1 and 'a change of behaviour' in p.stderr and f'commit c0ffee000000 cccccccccccc, now {computed["methods"][KEY]}' in p.stderr, p.stderr
    def fails(*a, **kw): raise RuntimeError('no such commit')
    monkeypatch.setattr(TOOL, 'reference_parts', fails)
    p = computing('--check', '--file', f)
    assert p.returncode == 1 and 'could not be run here' in p.stderr and '(no such commit)' in p.stderr, p.stderr
    assert 'committed aaaaaaaaaaaa' in p.stderr and '--record-machine' in p.stderr, p.stderr
    p = computing('--record-machine', '--file', f)                # a write names the commit whose package computed it
    assert p.returncode == 0 and json.loads(f.read_text()).get('source_commit') == TOOL.clean_head(), p.stderr


def test_the_code_of_a_commit_runs_from_git(computed):
    "The real path: HEAD's files from `git archive`, its own tool, a cache of its own, give the parts this code gives."
    if TOOL.clean_head() is None: pytest.skip('not a git checkout whose package is its HEAD')
    assert TOOL.reference_parts('HEAD', *(PARTS[k] for k in ('methods', 'noise', 'data'))) == computed
    with pytest.raises(RuntimeError, match='git archive no-such-commit'): TOOL.reference_parts('no-such-commit', [KEY], [], [])
