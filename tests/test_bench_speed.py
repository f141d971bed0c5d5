"tools/bench_speed.py --peers: every peer of the method table is timed against BCE on the same backbone and batch."
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
