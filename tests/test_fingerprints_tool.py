"""tools/fingerprints.py: the behaviour fingerprints the published tables stand on (stitchup_nb.evidence). --check
recomputes a fingerprints file and fails, naming the part, when the code no longer makes it; the committed file covers
every current row; options are checked before anything runs."""
import json, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest

from stitchup_nb.evidence import FINGERPRINTS, behaviour_key, current_mask, load_fingerprints, row_behaviour_key

ROOT = Path(__file__).resolve().parents[1]


def _tool(*args):
    return subprocess.run([sys.executable, str(ROOT/'tools'/'fingerprints.py'), *args], capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize('args,said', [(['--check', '--jobs', '0'], '--jobs must be >= 1'),
                                       (['--adopt', 'x.json'], '--adopt FILE needs --source'),
                                       (['--status', '--source', 'abc'], '--source goes with --adopt'),
                                       (['--add', '[1, 2'], '--add must be a JSON object'),
                                       (['--check', '--file', 'no/such.json'], 'does not exist')])
def test_bad_options_are_named(args, said):
    p = _tool(*args)
    assert p.returncode == 2 and said in p.stderr, p.stderr


def test_the_committed_file_covers_every_row_the_tables_show():
    "Each CSV's current rows are those its fingerprint parts name; the README's tables read exactly these."
    fps = load_fingerprints()
    assert fps['methods'] and fps['pretrain'] and set(fps['noise']) >= {'flip', 'cooc'}
    for f in sorted(FINGERPRINTS.parent.glob('benchmark*.csv')):
        df = pd.read_csv(f, dtype=str)
        cur = df[current_mask(df, fps)]
        assert len(cur), f'{f.name}: no current row'
        assert {row_behaviour_key(r) for _, r in cur.iterrows()} <= set(fps['methods'])


def test_check_passes_on_this_code_and_names_a_changed_part(tmp_path):
    key = behaviour_key('bce', 'digits-small', 1)
    fps = load_fingerprints()
    mine = {'pretrain': fps['pretrain'], 'data': {'digits-small': fps['data']['digits-small']},
            'noise': {'flip': fps['noise']['flip']}, 'methods': {key: fps['methods'][key]}}
    f = tmp_path/'fingerprints.json'
    f.write_text(json.dumps(mine))
    p = _tool('--check', '--file', str(f))
    assert p.returncode == 0 and 'every fingerprint matches' in p.stdout, p.stdout + p.stderr
    f.write_text(json.dumps(dict(mine, methods={key: '0123456789ab'})))       # what another behaviour computed
    p = _tool('--check', '--file', str(f))
    assert p.returncode == 1 and key in p.stderr and 'committed 0123456789ab' in p.stderr and '--update' in p.stderr, p.stderr
