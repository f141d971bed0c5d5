"""The peers as their authors set them: the `--authors` grid's rows are set apart from the peers' own rows
(labels, `extra`, their own CSV), the oracle row's tau is the cell's rate, the tables never count them in a method's
row, and the README's paragraphs about them are the ones the analysis notebooks wrote."""
import json, subprocess, sys
from pathlib import Path

import pandas as pd

from stitchup_nb import leaderboard
from stitchup_nb.grids import CELLS, LL_CELL, LL_DELTA, LL_DELTAS, ORACLE_CT, PEER_ROWS, grid
from stitchup_nb.pins import RESULTS

ROOT = Path(__file__).resolve().parents[1]
CT = next(m for m, o in PEER_ROWS.items() if o['method'] == 'coteaching')


def test_the_grid_sets_its_rows_apart():
    runs = list(grid('authors'))
    assert len(runs) == len(CELLS) + len(LL_DELTAS)
    for label, opts, cell, extra in runs:
        assert label in (ORACLE_CT, LL_DELTA) and label not in PEER_ROWS and extra
        if label == ORACLE_CT: assert opts == {'method': 'coteaching'} and extra == {'ct_tau': cell['rate']}
        else: assert opts == {'method': 'large_loss'} and (cell['kind'], cell['rate']) == LL_CELL and set(extra) == {'ll_delta_rel'}
    assert 'oracle' in ORACLE_CT


def test_the_committed_rows_ran_what_they_say():
    "Every row of benchmark_authors.csv ran its label's method with its `extra` (read back from its config)."
    f = RESULTS/'benchmark_authors.csv'
    if not f.exists(): return
    df = pd.read_csv(f, dtype={'extra': str, 'config': str})
    assert len(df) and set(df.method) <= {ORACLE_CT, LL_DELTA}
    for _, r in df.iterrows():
        cfg, extra = json.loads(r.config), json.loads(r.extra)
        assert cfg['method'] == ('coteaching' if r.method == ORACLE_CT else 'large_loss')
        assert all(cfg[k] == v for k, v in extra.items())
        if r.method == ORACLE_CT: assert extra == {'ct_tau': r.rate}


def _rows(method, kind, rate, totals, extra='{}'):
    return [dict(method=method, kind=kind, rate=rate, seed=s, total=t, head=t, medium=t, tail=t, extra=extra) for s, t in enumerate(totals)]


def test_the_tables_keep_the_oracle_out_of_co_teaching_s_row():
    res = pd.DataFrame(_rows('BCE', 'flip', .3, [70., 71., 72.]) + _rows('BCE', *LL_CELL, [40., 41., 42.]))
    peers = pd.DataFrame(_rows(CT, 'flip', .3, [50., 51., 52.]))
    authors = pd.DataFrame(_rows(ORACLE_CT, 'flip', .3, [60., 60., 60.], json.dumps({'ct_tau': .3})) +
                           [r for d in LL_DELTAS for r in _rows(LL_DELTA, *LL_CELL, [44., 45., 46.], json.dumps({'ll_delta_rel': d}))])
    levels, vs_bce, _ = leaderboard.leaderboard(res, peers)
    assert levels.loc[CT, 'flip 0.3'] == '51.0 ± 1.0' and ORACLE_CT not in levels.index
    t = leaderboard.authors_tables(res, peers, authors)
    assert t['oracle'].loc[CT, 'flip 0.3'] == '51.0 ± 1.0' and t['oracle'].loc[ORACLE_CT, 'flip 0.3'] == '60.0 ± 0.0'
    assert t['oracle_vs'].loc[f'oracle minus {CT}', 'flip 0.3'].startswith('+9.0 [')
    assert t['delta'].loc['Δrel 0.2', 'total minus BCE'] == '+4.0 [+4.0, +4.0] (3/3)'
    md = leaderboard.authors_markdown(res, peers, authors)
    assert '**oracle**' in md and 'Δrel' in md


def test_authors_is_a_grid_of_its_own():
    p = subprocess.run([sys.executable, str(ROOT/'tools'/'benchmark.py'), '--authors', '--peers'], capture_output=True, text=True)
    assert p.returncode == 2 and 'separate grids' in p.stderr


def test_the_readme_shows_what_the_notebooks_wrote():
    readme = (ROOT/'README.md').read_text()
    for f in ('coteaching_probe.md', 'large_loss_probe.md', 'benchmark_authors.md'):
        text = (RESULTS/f).read_text().strip()
        assert text and text in readme, f
    assert 'oracle' in (RESULTS/'benchmark_authors.md').read_text()
