"""README.md is what tools/make_readme.py makes of nbs/index.ipynb, its quick start is two commands, and what it and
the other docs show (tables, versions, imports, the names they point to) is what the code and the lock hold."""
import re, subprocess, sys
from pathlib import Path

from tests.conftest import load_tool, locked

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
    from stitchup_nb.pins import RESULTS
    from stitchup_nb.report import report
    assert (RESULTS/'benchmark_table.md').read_text() == report(write=False), \
        'nbs/experiments/results/benchmark_table.md is stale: run `python tools/benchmark.py --report`, then `make readme`'


def versions_named(text, lock, ranges):
    """What the README says of each locked or declared package's version, checked against the two files that hold them:
    an exact version in prose (`torch 2.14.1`) is the lock's; a pin in a command (`fastprogress==1.0.3`) is in the
    declared range; `A to B` is the declared range, from its floor to the last series under its upper bound; `X or
    later` is the declared floor; a series (`fastai 2.8`) meets the range. A build with a local label (`2.11.0+cu130`)
    is a measured machine's own and is left alone. Returns the disagreements, each with what the files say."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
    names = sorted({*lock, *ranges}, key=len, reverse=True)
    pat = re.compile(r'\b(%s)(==| )(\d+(?:\.\d+)+)(\+\S+)?(?: (to) (\d+(?:\.\d+)+)| (or later))?'
                     % '|'.join(map(re.escape, names)))
    series = lambda x: [f'{x}.{k}' for k in range(1000)]
    bad, text = [], ' '.join(text.split())
    for m in pat.finditer(text):
        name, sep, v, local, to, upper, later = m.groups()
        spec, said = SpecifierSet(ranges.get(name, '')), m.group(0)
        floor = next((s.version for s in spec if s.operator in ('>=', '==')), None)
        if local: continue
        if to:
            nxt = Version(upper).release[:-1] + (Version(upper).release[-1] + 1,)
            ok = floor == v and spec.contains(upper) and not spec.contains('.'.join(map(str, nxt)))
        elif later: ok = floor == v
        elif sep == '==': ok = spec.contains(v)
        elif v.count('.') >= 2: ok = lock.get(name) == v
        else: ok = any(spec.contains(x) for x in series(v))
        if not ok: bad.append(f'{said!r}: the lock has {lock.get(name)}, settings.ini declares {name}{spec or " (nothing)"}')
    return bad


def test_the_versions_the_readme_names_are_the_lock_and_the_declared_ranges():
    from packaging.utils import canonicalize_name
    lock = locked()
    ranges = {canonicalize_name(name): spec for _, name, spec in load_tool('lowest_versions').declared()}
    text = (ROOT/'README.md').read_text()
    assert versions_named(text, lock, ranges) == [], \
        'the README (nbs/index.ipynb) names versions the lock or settings.ini no longer hold; say what they hold'
    # the check can fail: each kind of statement, out of step with the files
    for stale in ('torch 2.14.0', 'torch 2.10 to 2.14', 'torch 2.11 to 2.15', 'timm 1.0.30 or later', 'fastai 2.9', 'fastcore==1.15.0'):
        assert len(versions_named(stale, lock, ranges)) == 1, stale
    assert versions_named('torch 2.11.0+cu130, torch 2.11 to 2.14, fastai 2.8, fastprogress==1.0.3', lock, ranges) == []


def _texts(prose:bool=False) -> dict:
    """Where a reader meets the kit's names: the READMEs and every notebook (its markdown alone with `prose`), else also
    the notebooks' code, the package, the tools and the tests."""
    import json
    texts = {md: (ROOT/md).read_text() for md in ('README.md', 'data/README.md')}
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        texts[str(nb.relative_to(ROOT))] = '\n'.join(''.join(c['source']) for c in cells if not prose or c['cell_type'] == 'markdown')
    if not prose:
        for d in ('stitchup_nb', 'tools', 'tests'):
            texts.update({str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT/d).rglob('*.py')) if p.name != '_modidx.py'})
    return texts


def test_every_import_the_docs_show_resolves():
    """Each `from stitchup_nb.M import a, b` a reader may copy (README.md, data/README.md, the notebooks' prose) names a
    module and names that exist: data/README.md still said `from stitchup_nb.data import voc_mlt` after the readers moved
    to `stitchup_nb.readers`."""
    import importlib
    seen, bad = 0, []
    for where, text in _texts(prose=True).items():
        for mod, names in re.findall(r'from (stitchup_nb(?:\.\w+)?) import ([\w, ]+)', text):
            seen += 1
            try: m = importlib.import_module(mod)
            except ImportError as e: bad.append(f'{where}: {mod}: {e}'); continue
            bad += [f'{where}: {mod} has no {n}' for n in (s.strip() for s in names.split(',')) if n and not hasattr(m, n)]
    assert seen >= 5 and not bad, bad


def test_every_name_the_docs_point_to_exists():
    """Each `stitchup_nb.M.name`, each notebook named by its stem (`07b_checks`) and each `notebook.name`
    (`08_metrics.choose_t`) the docs, comments and docstrings point to exists: when a function moves to another
    chapter, the pointers to its old one fail here (three did when `correction_snapshot` and `check_config` moved)."""
    import importlib
    nbs = {p.stem: p for p in (ROOT/'nbs').rglob('*.ipynb')}
    module = lambda stem: re.search(r'#\| default_exp (\w+)', nbs[stem].read_text())
    seen, bad = [0, 0], set()
    for where, text in _texts().items():
        for mod, name in re.findall(r'\bstitchup_nb\.([a-z]\w*)(?:\.([A-Za-z]\w*))?', text):
            if name == 'X': continue               # a placeholder in prose (`stitchup_nb.cli.X`)
            seen[0] += 1
            try: m = importlib.import_module(f'stitchup_nb.{mod}')
            except ImportError: bad.add(f'{where}: stitchup_nb.{mod} is no module'); continue
            if name and not hasattr(m, name): bad.add(f'{where}: stitchup_nb.{mod} has no {name}')
        for stem, name in re.findall(r'(?<![\w/.])(\d\d[a-z]?_[a-z][a-z_]*)(?:\.ipynb)?(?:\.([A-Za-z]\w*))?', text):
            seen[1] += 1
            if stem not in nbs: bad.add(f'{where}: no notebook {stem}'); continue
            if name and not ((m := module(stem)) and hasattr(importlib.import_module(f'stitchup_nb.{m.group(1)}'), name)):
                bad.add(f'{where}: {stem} defines no {name}')
    assert min(seen) > 50 and not bad, sorted(bad)
