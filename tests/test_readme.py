"""README.md is what tools/make_readme.py makes of nbs/index.ipynb, and its quick start is two commands."""
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_generated_from_the_index_notebook():
    p = subprocess.run([sys.executable, ROOT/'tools'/'make_readme.py', '--check'], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_quick_start_is_two_make_targets_that_exist():
    text = (ROOT/'README.md').read_text()
    block = re.search(r'## Quick start.*?```sh\n(.*?)```', text, re.S).group(1)
    cmds = [l.split('#')[0].strip() for l in block.splitlines() if l.split('#')[0].strip()]
    assert cmds == ['make demo', 'make test']
    targets = re.findall(r'^([\w-]+):', (ROOT/'Makefile').read_text(), re.M)
    assert {'demo', 'test'} <= set(targets)


def test_the_results_tables_are_the_current_sources_report():
    "The README's results come from `tools/benchmark.py --report` on the CSVs as they are, for the current source hash."
    from stitchup_nb.results import RESULTS, report
    assert (RESULTS/'benchmark_table.md').read_text() == report(write=False), \
        'nbs/experiments/results/benchmark_table.md is stale: run `python tools/benchmark.py --report`, then `make readme`'
