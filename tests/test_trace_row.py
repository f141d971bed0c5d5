"""tools/trace_row.py (re-runs across machines): a row traced twice on one machine agrees step by step, and
--compare names the first step and the part (batch, loss, weights) where two traces part."""
import copy, json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL, QUICK = ROOT/'tools'/'trace_row.py', ROOT/'nbs'/'experiments'/'results'/'benchmark_quick.csv'


def _tool(*args, cwd=None):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_a_trace_agrees_with_itself_and_the_first_difference_is_named(tmp_path):
    a = tmp_path/'a.json'
    r = _tool('--csv', QUICK, '--row', 0, '--steps', 2, '--out', a)
    assert r.returncode == 0, r.stderr[-2000:]
    t = json.loads(a.read_text())
    assert len(t['steps']) == 2 and t['kernels'].endswith('pinned') and t['start'] and t['pretrained'], t
    assert set(t['steps'][0]) == {'x', 'y', 'loss', 'weights'} and t['steps'][0]['weights'] != t['steps'][1]['weights']
    assert {'beta', 'matmul', 'conv_onednn', 'conv_nnpack', 'conv_native', 'conv_backward'} <= set(t['primitives']), t
    r = _tool('--compare', a, a)
    assert r.returncode == 0 and 'identical over the 2 steps both traced' in r.stdout, r.stdout + r.stderr
    assert f"primitives: all {len(t['primitives'])} identical" in r.stdout, r.stdout
    b = copy.deepcopy(t); b['primitives']['beta'] = '0' * 12           # another machine's Beta sampler
    (tmp_path/'b.json').write_text(json.dumps(b))
    r = _tool('--compare', a, tmp_path/'b.json')
    assert f"primitives that differ: beta (1 of {len(t['primitives'])})" in r.stdout, r.stdout
    for part, step, said in (('weights', 1, 'first difference at step 2: weights differ (the weights after the step first)'),
                             ('x', 0, 'first difference at step 1: x differ (the batch first)')):
        b = copy.deepcopy(t); b['steps'][step][part] = '0' * 16
        (tmp_path/'b.json').write_text(json.dumps(b))
        r = _tool('--compare', a, tmp_path/'b.json')
        assert r.returncode == 1 and said in r.stdout, r.stdout + r.stderr
    b = dict(t, start='0' * 16); (tmp_path/'b.json').write_text(json.dumps(b))
    r = _tool('--compare', a, tmp_path/'b.json')
    assert r.returncode == 1 and 'the starting weights differ' in r.stdout, r.stdout


def test_bad_options_are_named_and_nothing_is_overwritten(tmp_path):
    out = tmp_path/'t.json'; out.write_text('{}')
    for args, said in ((['--csv', QUICK, '--row', 0, '--out', out], f'--out {out} exists'),
                       (['--csv', QUICK, '--row', 10_000, '--out', tmp_path/'n.json'], '--row must be in 0..'),
                       (['--csv', tmp_path/'none.csv', '--row', 0, '--out', tmp_path/'n.json'], 'does not exist'),
                       (['--compare', out, tmp_path/'none.json'], 'is not a trace')):
        r = _tool(*args)
        assert r.returncode == 2 and said in r.stderr, (args, r.stderr)
    assert out.read_text() == '{}' and not (tmp_path/'n.json').exists()


def test_a_bad_csv_row_out_folder_or_trace_is_named_before_anything_is_computed(tmp_path):
    """Each refused before the restart and the trace (seconds, no training): a CSV that is no results CSV (its missing
    columns named), a row whose config is not a JSON object, an --out in a folder that does not exist, and --compare
    files that are JSON but no trace (empty, a list, another object: the file and what it lacks named)."""
    notes, bad_cfg = tmp_path/'notes.csv', tmp_path/'bad.csv'
    notes.write_text('a,b\n1,2\n')
    bad_cfg.write_text('method,kind,rate,seed,config\nbce,flip,0.5,0,not json\n')
    empty, listed, other = tmp_path/'empty.json', tmp_path/'list.json', tmp_path/'other.json'
    empty.write_text('{}'); listed.write_text('[]'); other.write_text(json.dumps({'pretrained': {}, 'steps': 3}))
    for args, said in ((['--csv', notes, '--row', 0, '--out', tmp_path/'n.json'],
                        f'--csv: {notes} is not a results CSV of tools/benchmark.py (it has no method, kind, rate, seed, config column)'),
                       (['--csv', bad_cfg, '--row', 0, '--out', tmp_path/'n.json'], f'--row 0 of {bad_cfg}: its config is not a JSON object'),
                       (['--csv', QUICK, '--row', 0, '--out', tmp_path/'nodir'/'t.json'],
                        f"--out {tmp_path/'nodir'/'t.json'}: its folder {tmp_path/'nodir'} does not exist"),
                       (['--compare', empty, empty], f'--compare: {empty} is not a trace of this tool (it has no pretrained object'),
                       (['--compare', listed, empty], f'--compare: {listed} is not a trace of this tool (it holds a list, not an object)'),
                       (['--compare', other, empty], f'--compare: {other} is not a trace of this tool (its steps is not a list of steps')):
        r = _tool(*args)
        assert r.returncode == 2 and said in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr[-2000:])
    assert sorted(q.name for q in tmp_path.iterdir()) == ['bad.csv', 'empty.json', 'list.json', 'notes.csv', 'other.json']
