"""tools/bench_e2e.py on a CPU (`--tiny`): the phases of a run add up, the second run reads the decoded-image cache, the
JSON and the README's table are written, a compiled run (dynamo's capture path on a CPU) gives the plain run's
numbers, a run that fails is kept with its log's end (a crash with its stack) and fails the call, and bad calls are
refused before anything runs or is written: an existing --out without --append or --overwrite, a --budget of no time,
a file --append or --report reads that this tool did not write, --digits or --grid without a CUDA GPU."""
import json, math, os, subprocess, sys
from pathlib import Path

import pytest

from tests.conftest import load_tool

TOOL = Path(__file__).resolve().parents[1]/'tools'/'bench_e2e.py'


def bench(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True)


def test_tiny_runs_are_timed_by_phase(tmp_path):
    out = tmp_path/'e2e.json'
    p = bench('--tiny', '--runs', 'first run,second run,compiled', '--root', tmp_path/'root', '--out', out)
    data = json.loads(out.read_text()) if out.is_file() else {'runs': []}
    errors = {r['name']: r['error'] for r in data['runs'] if 'error' in r}     # each failed run's own log tail
    assert p.returncode == 0 and not errors, (errors, p.stdout[-3000:], p.stderr[-3000:])
    assert data['machine']['gpu'] is None and data['source'] != 'unknown'
    first, second, compiled = data['runs']
    assert (first['name'], first['decode_cache'], second['decode_cache']) == ('first run', 'cold', 'warm')
    for r in (first, second, compiled):
        p = r['phases_s']
        assert all(p[k] >= 0 for k in ('startup', 'decode', 'build', 'train', 'validate', 'score', 'exit'))
        parts = sum(p[k] for k in ('startup', 'decode', 'build', 'train', 'validate', 'score', 'exit'))
        assert parts <= p['total'] + 0.1 and len(p['epoch']) == 1
        assert r['steps'] > 0 and r['train_tflop'] > 0 and math.isfinite(r['map'])
        assert (r['precision'], r['channels_last']) == ('fp32', False)      # --precision auto on a CPU
    assert (compiled['compiled'], compiled['map']) == ('eager', first['map']) and 'compiled' not in first
    md = out.with_suffix('.md').read_text()
    assert '| tiny | compiled | 1 | fp32, compiled (eager) | warm |' in md
    assert '| tiny | first run | 1 | fp32 | cold |' in md and 'Not in this file' in md


def test_a_failed_run_is_written_and_fails_the_call(tmp_path):
    "A run whose process fails is kept in the JSON with its log's end, shown in the table, and the exit status is 1."
    (tmp_path/'root'/'tiny').mkdir(parents=True)
    (tmp_path/'root'/'tiny'/'options.json').write_text(json.dumps(      # the set's options, pointing at no data
        {'dataset': 'voc', 'data_root': str(tmp_path/'no_voc'), 'appendix': str(tmp_path/'no_appendix')}))
    out = tmp_path/'e2e.json'
    p = bench('--tiny', '--runs', 'first run', '--root', tmp_path/'root', '--out', out)
    assert p.returncode == 1 and '1 run(s) failed: tiny first run' in p.stderr, p.stderr[-2000:]
    (run,) = json.loads(out.read_text())['runs']
    assert 'the run failed (exit 1)' in run['error'] and 'no_appendix' in run['error'] and 'phases_s' not in run
    assert '| tiny | first run | | | | failed: ' in out.with_suffix('.md').read_text()


def test_a_run_that_crashes_leaves_its_stack_in_the_error(tmp_path):
    """A run killed by a signal says so (its exit status) and where it was: the child runs with Python's faulthandler,
    so the end of its log, which the error carries, holds the stack. Here the child crashes as it starts (a
    sitecustomize that reads address 0), before any training."""
    site = tmp_path/'site'; site.mkdir()
    (site/'sitecustomize.py').write_text('import ctypes\nctypes.string_at(0)\n')
    env = {**os.environ, 'PYTHONPATH': str(site)}
    with pytest.raises(RuntimeError) as e: load_tool('bench_e2e').run_child({}, tmp_path/'run', env, timeout=60)
    said = str(e.value)
    assert 'the run failed (exit -11)' in said and 'Fatal Python error: Segmentation fault' in said and 'sitecustomize' in said, said


def test_bad_calls_are_refused(tmp_path):
    p = bench('--tiny', '--runs', 'third run', '--out', tmp_path/'x.json')
    assert p.returncode == 2 and "--runs: unknown ['third run']" in p.stderr
    p = bench('--report', '--out', tmp_path/'none.json')
    assert p.returncode == 2 and f"--report: {tmp_path/'none.json'} does not exist" in p.stderr
    other = tmp_path/'other.json'
    other.write_text(json.dumps({'made': '2026-01-01T00:00:00', 'source': 'abc', 'machine': {}, 'commit': 'x', 'command': '', 'runs': []}))
    p = bench('--tiny', '--runs', 'BCE', '--append', '--out', other)
    assert p.returncode == 2 and '--append: ' in p.stderr and 'made by source abc' in p.stderr
    p = bench('--no-voc', '--digits', '1', '--out', tmp_path/'d.json')     # fp32 against bf16, which a CPU runs as fp32
    assert p.returncode == 2 and '--digits compares exact fp32 with bf16, which needs a CUDA GPU' in p.stderr, p.stderr[-2000:]
    assert not (tmp_path/'x.json').exists() and not (tmp_path/'d.json').exists()


def test_an_existing_out_is_kept_and_bad_options_are_named_before_anything_is_written(tmp_path):
    """An --out already there is refused unless --append or --overwrite says what to do with it (also where nothing would
    run: --budget -1 once wrote a JSON of no runs over it); a --budget of no time, a folder as --out, and --append or
    --report on a file this tool did not write are refused by name, each before the machine is asked (no torch)."""
    old = tmp_path/'old.json'; old.write_text('{"x": 1}\n')
    notes, listed, empty = tmp_path/'notes.csv', tmp_path/'list.json', tmp_path/'empty.json'
    notes.write_text('a,b\n1,2\n'); listed.write_text('[1, 2]\n'); empty.write_text('{}\n')
    new = tmp_path/'new.json'
    cases = [(['--tiny', '--budget', '-1', '--out', old], '--budget must be > 0 seconds, got -1'),
             (['--tiny', '--budget', '5', '--out', old], f'--out {old} exists: pass --append to add these runs to it, --overwrite to replace it'),
             (['--tiny', '--budget', '0', '--out', new], '--budget must be > 0 seconds, got 0'),
             (['--tiny', '--append', '--overwrite', '--out', old], '--append adds to the JSON at --out and --overwrite replaces it: pass one'),
             (['--tiny', '--out', tmp_path], f'--out {tmp_path}: it (or its .md beside it) is a folder'),
             (['--tiny', '--append', '--out', notes], f'--append: {notes} is not JSON'),
             (['--tiny', '--append', '--out', listed], f'--append: {listed} is not a JSON of this tool (it holds a list'),
             (['--tiny', '--append', '--out', old], f'--append: {old} is not a JSON of this tool (it has no made, command, commit, machine, runs)'),
             (['--report', '--out', notes], f'--report: {notes} is not JSON'),
             (['--report', '--out', empty], f'--report: {empty} is not a JSON of this tool (it has no made')]
    for args, said in cases:
        p = bench(*args)
        assert p.returncode == 2 and said in p.stderr and 'Traceback' not in p.stderr, (args, p.stderr[-2000:])
    assert old.read_text() == '{"x": 1}\n' and notes.read_text() == 'a,b\n1,2\n' and listed.read_text() == '[1, 2]\n'
    assert sorted(q.name for q in tmp_path.iterdir()) == ['empty.json', 'list.json', 'notes.csv', 'old.json']    # no .md either


def test_grid_and_digits_need_a_gpu_and_overwrite_gets_past_the_out_check(tmp_path):
    "--grid, like --digits, is refused on a machine without a CUDA GPU; --overwrite lets an existing --out through to that check."
    import torch
    if torch.cuda.is_available(): pytest.skip('this machine has a CUDA GPU')
    old = tmp_path/'old.json'; old.write_text('{"x": 1}\n')
    p = bench('--no-voc', '--grid', '--out', tmp_path/'g.json')
    assert p.returncode == 2 and '--grid packs --jobs Digits runs at a time on one CUDA GPU, and this machine has none' in p.stderr, p.stderr[-2000:]
    p = bench('--no-voc', '--digits', '1', '--overwrite', '--out', old)
    assert p.returncode == 2 and '--digits compares exact fp32 with bf16, which needs a CUDA GPU' in p.stderr, p.stderr[-2000:]
    assert old.read_text() == '{"x": 1}\n' and sorted(q.name for q in tmp_path.iterdir()) == ['old.json']


def test_options_the_call_would_ignore_are_refused(tmp_path):
    """--tiny with --coco or --no-voc, --jobs without --digits or --grid, and --no-voc alone were ignored (the last wrote a
    JSON of no runs and exited 0); a --root under a file stopped with a traceback once the JSON's machine was asked."""
    (tmp_path/'f').write_text('x')
    cases = [(['--tiny', '--coco'], '--tiny times its own 40 + 24 image set, not the VOC- or COCO-sized ones: drop --coco'),
             (['--tiny', '--no-voc'], 'drop --no-voc (or --tiny)'),
             (['--no-voc'], '--no-voc leaves nothing to run: add --coco, --digits N or --grid'),
             (['--tiny', '--jobs', '3'], '--jobs 3 packs the Digits runs of --digits and --grid; the timed runs go one at a time'),
             (['--tiny', '--jobs', '0'], '--jobs >= 1'),
             (['--tiny', '--root', tmp_path/'f'/'sets'], f"--root {tmp_path/'f'/'sets'}: {tmp_path/'f'} is not a folder")]
    for args, said in cases:
        p = bench(*args, '--out', tmp_path/'x.json')
        assert p.returncode == 2 and said in p.stderr and 'Traceback' not in p.stderr, (args, p.stderr[-2000:])
    assert sorted(q.name for q in tmp_path.iterdir()) == ['f']


def test_runs_without_a_timed_set_and_an_unsearchable_root_are_refused(tmp_path, monkeypatch, capsys):
    """--runs with --no-voc and without --coco picks among no timed runs: it was ignored without a word; a --root whose
    folder cannot be searched (Python 3.11's Path.exists raises PermissionError there) stopped with a traceback."""
    p = bench('--no-voc', '--digits', '1', '--runs', 'first run', '--out', tmp_path/'x.json')
    assert p.returncode == 2 and "--runs first run picks the timed runs of the VOC and COCO sets" in p.stderr, p.stderr[-2000:]
    assert 'drop --runs (or add --coco)' in p.stderr and 'Traceback' not in p.stderr and not any(tmp_path.iterdir())
    tool, shut = load_tool('bench_e2e'), tmp_path/'shut'
    def exists(q, **k):
        if shut in (q, *q.parents): raise PermissionError(13, 'Permission denied', str(q))
        return os.path.exists(q)
    monkeypatch.setattr(tool.Path, 'exists', exists)    # root passes any permission check: the refusal is simulated
    ap = tool.parser()
    with pytest.raises(SystemExit) as e: tool.wanted_runs(ap, ap.parse_args(['--tiny', '--root', str(shut/'sets')]))
    said = capsys.readouterr().err
    assert e.value.code == 2 and f"--root {shut/'sets'}: cannot look there (Permission denied: {shut/'sets'})" in said, said
