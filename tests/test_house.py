"""The house: the README's table of notebooks lists every module once, in an order in which each module imports only
modules above it (no circle, nothing importing upward), and the notebooks' file names sort in that order (a file browser,
JupyterLab's or the docs' sidebar, lists them as the data flows)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rows():
    "The README's notebook table, in its order: `(notebook, module)`, the module '—' for a notebook that exports none."
    table = (ROOT/'README.md').read_text().split('## The notebooks', 1)[1]
    return [(nb, mod.strip('`')) for nb, mod in re.findall(r'^\| `([\w/]+)` \| (`\w+`|—) \|', table, re.M)]


def _order():
    "Modules in the order of the README's notebook table."
    return [mod for _, mod in _rows() if mod != '—']


def test_every_module_is_in_the_table_once():
    mods = sorted(p.stem for p in (ROOT/'stitchup_nb').glob('*.py') if not p.stem.startswith('_'))
    assert sorted(_order()) == mods


def _notebooks():
    "Numbered notebooks (`NNx_name`) in the order of the README's notebook table."
    return [nb for nb, _ in _rows() if re.fullmatch(r'\d\d[a-z]?_\w+', nb)]


def test_notebook_names_sort_in_the_table_order():
    nbs = _notebooks()
    assert sorted(p.stem for p in (ROOT/'nbs').glob('[0-9]*.ipynb')) == sorted(nbs), 'the table lists every numbered notebook'
    prefixes = [n.split('_', 1)[0] for n in nbs]
    assert len(set(prefixes)) == len(prefixes), f'two notebooks share a number: {sorted(p for p in prefixes if prefixes.count(p) > 1)}'
    assert nbs == sorted(nbs), f'rename so that the files sort as the table reads: {[a for a, b in zip(nbs, sorted(nbs)) if a != b]}'


def test_each_module_imports_only_modules_above_it():
    order, bad = _order(), []
    for m in order:
        for line in (ROOT/'stitchup_nb'/f'{m}.py').read_text().splitlines():
            for dep in re.findall(r'from\s+(?:stitchup_nb)?\.(\w+)\s+import', line) + re.findall(r'import\s+stitchup_nb\.(\w+)', line):
                if dep in order and order.index(dep) >= order.index(m): bad.append(f'{m} imports {dep}: {line.strip()}')
    assert not bad, bad


def test_pyflakes_finds_nothing():
    """No unused import, undefined name or placeholder-less f-string in the package, the tools or the tests. fastcore's
    `@patch` methods share their names on purpose (`show` on each browser): pyflakes' redefinition notice is no finding there."""
    from pyflakes import api, messages, reporter
    class Keep(reporter.Reporter):
        def __init__(self): self.found = []
        def unexpectedError(self, filename, msg): self.found.append(f'{filename}: {msg}')
        def syntaxError(self, filename, msg, lineno, offset, text): self.found.append(f'{filename}:{lineno}: {msg}')
        def flake(self, m):
            if isinstance(m, messages.RedefinedWhileUnused):
                lines = Path(m.filename).read_text().splitlines()
                if lines[m.lineno - 2].strip() == '@patch': return
            self.found.append(str(m))
    rep = Keep()
    api.checkRecursive([str(ROOT/d) for d in ('stitchup_nb', 'tools', 'tests')], rep)
    assert not rep.found, '\n'.join(rep.found)


def test_the_package_imports_without_its_dev_requirements():
    """`pip install -e .` (no `[dev]`) is enough for the console scripts and `import stitchup_nb`: every module but
    `showdoc` (a development tool for nbdev's docs) imports with each dev requirement missing. And none imports
    torchvision, which imports torch._dynamo (with sympy and triton): about 2 s of CPU in every process the kit starts
    (a console script, a benchmark run, a probe), measured; the ResNet backbones import it when they are built."""
    import subprocess, sys
    from importlib import metadata
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from tests.conftest import load_tool
    module = lambda name: canonicalize_name(name).replace('-', '_')            # the import name of most packages
    declared = load_tool('lowest_versions').declared()
    dev, runtime = ({module(n) for k, n, _ in declared if k == key} for key in ('dev_requirements', 'requirements'))
    needed = {module(Requirement(r).name) for d in runtime for r in (metadata.requires(d) or [])   # accelerate needs psutil
              if not Requirement(r).marker or Requirement(r).marker.evaluate({'extra': ''})}
    blocked = sorted((dev - needed) | {'nbdev', 'pytest'})
    mods = [p.stem for p in sorted((ROOT/'stitchup_nb').glob('*.py')) if not p.stem.startswith('_') and p.stem != 'showdoc']
    code = (f'import sys\nfor m in {blocked!r}: sys.modules[m] = None     # importing any of them raises ImportError\n'
            f'import importlib\nfor m in {mods!r}: importlib.import_module("stitchup_nb." + m)\n'
            'print("heavy:", [m for m in ("torchvision", "torch._dynamo") if m in sys.modules])\n'
            'try: import stitchup_nb.showdoc\nexcept ImportError as e: print("showdoc needs", e.name.split(".")[0])')
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ['heavy:', '[]', 'showdoc', 'needs', 'nbdev'], p.stdout     # the check blocks what it says it blocks


def test_every_public_function_has_its_show_doc():
    """Each public callable of a module (a name in its `__all__`) has a `show_doc(NAME)` (or `show_doc(X.NAME)`) cell in
    the numbered notebook that exports the module (`#| default_exp M`), so the docs page documents it."""
    import importlib, json
    missing = []
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        code = '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code')
        exp = re.search(r'^#\|\s*default_exp\s+([\w.]+)', code, re.M)
        if not exp: continue
        mod = importlib.import_module(f'stitchup_nb.{exp.group(1)}')
        shown = set(re.findall(r'show_doc\((?:\w+\.)*(\w+)', code))
        names = [n for n in getattr(mod, '__all__', []) if callable(getattr(mod, n, None)) and n not in shown]
        if names: missing.append(f'{nb.stem}: {", ".join(names)}')
    assert not missing, 'add a show_doc cell after each of these:\n' + '\n'.join(missing)


def test_no_module_or_tool_imports_another_modules_private_name():
    """A name another module needs is public where it is defined (docstring, show_doc, an example), or lives in the one
    module that uses it: the package's modules and the tools import no underscore name from another module (the tests may,
    to test it)."""
    import ast
    bad = []
    for f in sorted((ROOT/'stitchup_nb').glob('*.py')) + sorted((ROOT/'tools').glob('*.py')):
        if f.stem == '_modidx': continue
        for node in ast.walk(ast.parse(f.read_text())):
            if not (isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('stitchup_nb'))): continue
            src = (node.module or '').rsplit('.', 1)[-1]
            bad += [f'{f.relative_to(ROOT)}: {a.name} from {src}' for a in node.names
                    if a.name.startswith('_') and not a.name.startswith('__') and src != f.stem]
    assert not bad, 'make these public where they are defined, or move them to their one user:\n' + '\n'.join(bad)
