"""README.md from nbs/index.ipynb, offline (nbdev_readme needs Quarto, which cannot be installed here).

Hidden cells (`#| hide`) are dropped and nbdev directives stripped, as nbdev's own README build does. A markdown
line `<!-- include: PATH -->` is replaced by the file at PATH (relative to the repo): the results tables that
`python tools/benchmark.py --report` writes from the CSVs, so the README's numbers are never typed by hand.
`--check` exits 1 when README.md is out of date (used by the tests).
"""
import argparse, re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r'^<!-- include: (\S+) -->$', re.M)


def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = nbformat.read(nb_path, as_version=4)
    parts = ['<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->']
    for cell in nb.cells:
        src = cell.source.strip()
        lines = src.splitlines()
        if cell.cell_type == 'code':
            if any(l.strip().startswith(('#| hide', '#|hide', '#| default_exp', '#| export')) for l in lines): continue
            code = '\n'.join(l for l in lines if not l.strip().startswith('#|')).strip()
            if code: parts.append(f'```python\n{code}\n```')
        elif cell.cell_type == 'markdown' and src:
            parts.append(INCLUDE.sub(lambda m: (ROOT/m.group(1)).read_text().strip(), src))
    return '\n\n'.join(parts) + '\n'


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--check', action='store_true', help='exit 1 if README.md is out of date; write nothing')
    args = ap.parse_args()          # --help answers, and an unknown flag is refused, before anything is written
    text, out = render(), ROOT/'README.md'
    if args.check:
        if not out.exists() or out.read_text() != text:
            sys.exit('README.md is out of date: run `make readme` (python tools/make_readme.py).')
    else: out.write_text(text); print(f'wrote {out}')
