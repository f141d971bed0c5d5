"""tools/bench_speed.py --peers: every peer of the method table is timed against BCE on the same backbone and batch; a
bad option is named before anything is timed; the README's table (`--out`'s .md, `--report`) says where it was measured."""
import json

import pytest
import torch

from stitchup_nb.methods import METHODS
from tests.conftest import load_tool


def test_bench_peers_times_every_peer():
    rows = load_tool('bench_speed').bench_peers('digits_cnn 64px', 'digits_cnn', 64, 32, n_steps=1, device=torch.device('cpu'), rounds=2)
    peers = [n for n, m in METHODS.items() if m.get('peer')]
    assert [r['method'] for r in rows] == ['bce', *peers]          # co-teaching's twin networks included
    assert all(r['steps'] == 2 and r['step_s'] > 0 for r in rows), rows
    bce = rows[0]['step_s']
    assert all(abs(r['ratio_to_bce'] - r['step_s'] / bce) < .02 for r in rows)     # the ratio of the unrounded times


def test_bad_options_are_named_before_anything_is_timed(tmp_path, capsys):
    """An unknown model (named once, after a model's timing), --steps 0 (printed NaN), --rounds 0 (an IndexError), a batch
    of none, an --out in no folder, a folder or an existing file as --out: each refused by `options`, exit status 2."""
    tool = load_tool('bench_speed')
    kept = tmp_path/'rows.json'; kept.write_text('[]')
    cases = [(['--models', 'digits,foo'], "--models: unknown 'foo'; choose from digits, resnet50"),
             (['--steps', '0'], '--steps must be >= 1, got 0'),
             (['--peers', '--rounds', '0'], '--rounds must be >= 1, got 0'),
             (['--cpu_bs', '0'], '--cpu_bs must be >= 1, got 0'),
             (['--out', str(tmp_path/'nodir'/'r.json')], f"its folder {tmp_path/'nodir'} does not exist"),
             (['--out', str(tmp_path)], f'--out {tmp_path} is a folder'),
             (['--out', str(kept)], f'--out {kept} exists')]
    if not torch.cuda.is_available(): cases.append((['--gpu'], '--gpu times on a CUDA device, and this machine has none'))
    for args, said in cases:
        with pytest.raises(SystemExit) as e: tool.options(args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and said in err, (args, err)
    assert kept.read_text() == '[]' and sorted(q.name for q in tmp_path.iterdir()) == ['rows.json']
    a = tool.options(['--models', 'digits, resnet50', '--out', str(tmp_path/'new.json')])
    assert a.model_list == ['digits', 'resnet50'] and (a.steps, a.rounds, a.cpu_bs) == (5, 3, 8)


def test_the_readme_table_says_where_it_was_measured_and_which_rows_miss_a_target(tmp_path, capsys):
    "`--out`'s JSON records the machine with the rows; `markdown` (the .md beside it, `--report`) names each row missing a target."
    tool = load_tool('bench_speed')
    row = dict(model='m', batch=8, precision='fp32', channels_last=False, bce_step_s=.1, full_step_s=.5, ratio=5.,
               ratio_over_floor=.94, data_over_train=16., peak_rss_gb=1.2)
    data = dict(measured=dict(command='python tools/bench_speed.py', machine='CPU X [abc]', threads=2, torch='2.x', commit='c0ffee',
                              date='2026-12-06', steps=5),
                rows=[row, dict(row, model='slow data', data_over_train=2.5), dict(row, model='gpu', precision='bf16', channels_last=True, peak_cuda_gb=3.)])
    md = tool.markdown(data)
    assert md.startswith('Measured by `python tools/bench_speed.py` on CPU X [abc] (2 threads), torch 2.x, commit c0ffee, 2026-12-06')
    assert '| m | 8 | fp32 | 0.1 s | 0.5 s | 5.0 | 0.94 | 16.0× | 1.2 GB |  |' in md            # no CUDA figure: an empty cell
    assert '| gpu | 8 | bf16 + channels-last |' in md and '| 3.0 GiB |' in md
    assert md.rstrip().endswith('met by 2 of 3 rows; not by slow data.'), md
    (tmp_path/'s.json').write_text(json.dumps(data))
    tool.main(['--report', str(tmp_path/'s.json')])
    assert (tmp_path/'s.md').read_text() == md
    for bad in ('[]', '{"measured": {}}'):
        (tmp_path/'bad.json').write_text(bad)
        with pytest.raises(SystemExit): tool.options(['--report', str(tmp_path/'bad.json')])
        assert f"--report {tmp_path/'bad.json'}: not a JSON this tool wrote" in capsys.readouterr().err
    (tmp_path/'t.md').write_text('kept')                                # an --out whose table would replace a file
    with pytest.raises(SystemExit): tool.options(['--out', str(tmp_path/'t.json')])
    assert f"{tmp_path/'t.md'} exists beside it" in capsys.readouterr().err and (tmp_path/'t.md').read_text() == 'kept'
