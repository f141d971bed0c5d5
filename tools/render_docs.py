"""The docs, offline (`make docs`): execute every notebook under nbs/ and render it to HTML under _docs/.

nbdev's `nbdev_docs` builds the docs site with Quarto, which cannot be installed offline; users who
have Quarto get that site with `nbdev_docs`. This script checks the same thing CI needs to know,
that every page executes and renders, with nbconvert alone:

- notebooks are those `nbdev_test` runs (names starting with `_` or `.` are skipped), each in a fresh
  kernel started in its own folder, with this checkout first on the kernel's `PYTHONPATH`;
- cells `nbdev_test` skips are shown but not run: those flagged with a `tst_flags` flag of
  settings.ini (`#| slow`, `#| notest`), `#| eval: false`, and the `nbdev_export()` cell;
- as on nbdev's pages, `#| hide` cells run but are not shown, a cell that only calls `show_doc`
  shows its output without its source, and directive lines (`#| ...`) are dropped;
- the pages read offline (template `tools/templates/docs`): MathJax is copied into the output folder from
  the `jupyter-server-mathjax` package (a dev requirement) and each page loads it by a relative path;
  nothing comes from a CDN (no require.js, no widget manager: a widget output shows the picture that
  `stitchup_nb.widgets` browsers put beside it, or its plain text); printed text wraps between words;
- a Markdown link to a file of the repository is made to work from the page (`page_links`): a notebook's to its
  page, any other file's (data/README.md, a results table, a figure) by its path from the page; links are read from
  the notebook's folder, index.ipynb's from the repository root (it is the README); one written in code is left as it is;
- any cell error fails the build (exit status 1) after every notebook has been tried, and so does a
  shown cell's stderr output (a warning box on the page: fix its cause or catch it in the notebook).

Usage: `python tools/render_docs.py [--workers 2] [--out _docs] [--timeout 1800] [NOTEBOOK ...]`, e.g.
`python tools/render_docs.py nbs/11a_widgets.ipynb` for one page.

With `--outputs _docs/outputs` nothing is executed: the pages take the outputs that the test run
(`make test`, i.e. `tools/nbtest.py`, nbdev_test keeping outputs) recorded per cell id, and the build
fails if a notebook has no recorded run or a recorded cell ended in an error. CI does this, so every
notebook is executed once and both tested and rendered.
"""
import argparse, configparser, json, os, re, shutil, sys, time, traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from nbdev.process import extract_directives

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
TEMPLATES = ROOT/'tools'/'templates'
WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json'
# fastai's import calls torch.jit.script, which torch deprecates with a FutureWarning: a notice for fastai, not for a
# reader, shown on the page of whichever notebook imports fastai first (tools/nbtest.py filters it in the same way)
QUIET_WARNINGS = 'ignore::FutureWarning:torch.jit._script'


def notebooks() -> list:
    "The notebooks under nbs/ that nbdev_test runs: none whose path has a part starting with `_` or `.`."
    return sorted(p for p in NBS.rglob('*.ipynb') if not any(part.startswith(('_', '.')) for part in p.relative_to(NBS).parts))


def skip_flags() -> set:
    "The test flags of settings.ini (`tst_flags`): cells carrying one are not run, as in nbdev_test."
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT/'settings.ini', encoding='utf-8')
    return set(cfg['DEFAULT'].get('tst_flags', '').split())


def runnable(cell, flags:set) -> bool:
    "Whether nbdev_test would run this cell."
    if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return False
    d = extract_directives(cell, remove=False)
    return d.get('eval:', [''])[0].lower() != 'false' and not flags & d.keys()


def for_page(cell):
    "Tag a cell the way nbdev's pages show it; drop its directive lines and Quarto-only link attributes."
    if cell.cell_type != 'code': return
    d = extract_directives(cell, remove=False)
    tags = set(cell.metadata.get('tags', []))
    code = [l for l in cell.source.splitlines() if not l.lstrip().startswith('#|')]
    if 'hide' in d or not ''.join(code).strip(): tags.add('remove_cell')
    elif code and all(re.match(r'\s*show_doc\(', l) for l in code if l.strip()): tags.add('remove_input')
    cell.metadata['tags'] = sorted(tags)
    cell.source = '\n'.join(code).strip('\n')
    for out in cell.get('outputs', []):     # show_doc's links carry Quarto-only attributes
        md = out.get('data', {}).get('text/markdown')
        if md: out['data']['text/markdown'] = re.sub(r'\{target="_blank"[^}]*\}', '', md)
        out.get('data', {}).pop(WIDGET_VIEW, None)       # no widget manager on the page: the output's picture or text shows


LINK = re.compile(r'\[([^\]]*)\]\(([^)\s]+)\)')
FENCE = re.compile(r' {0,3}(`{3,}|~{3,})')                      # a line that opens a fenced code block
SPAN = re.compile(r'(?<![`\\])(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)', re.S)   # a code span: backticks to the next run as
                                                                                 # long, in one paragraph


def code_parts(md:str) -> list:
    """Where Markdown `md` is code, as (start, end) offsets: its fenced code blocks (to the closing fence of the opening's
    character and at least its length, or the end) and the code spans outside them."""
    parts, at, fence = [], 0, None
    for line in md.splitlines(keepends=True):
        if fence is None and (m := FENCE.match(line)) and not (m.group(1)[0] == '`' and '`' in line[m.end():]):
            fence, start = m.group(1), at
        elif fence is not None and re.fullmatch(rf' {{0,3}}{fence[0]}{{{len(fence)},}}[ \t]*\n?', line):
            parts.append((start, at + len(line))); fence = None
        at += len(line)
    if fence is not None: parts.append((start, len(md)))
    prose = list(md)
    for s, e in parts: prose[s:e] = [c if c == '\n' else ' ' for c in md[s:e]]     # a fence's backticks open no span
    return parts + [m.span() for m in SPAN.finditer(''.join(prose))]


def page_links(nb, path:Path, page:Path):
    """Make `nb`'s Markdown links to the repository's files work from its HTML page `page` (under the pages' folder, which
    mirrors nbs/): a rendered notebook's becomes its page's, any other file's its path from the page. A link is read from
    the notebook's folder, index.ipynb's from the repository root (it is the README, whose links GitHub reads from there);
    a web address, an anchor, a link to nothing and one written in code (a code span, a fenced block: `code_parts`) is
    left as it is."""
    base, top = (ROOT if path == NBS/'index.ipynb' else path.parent), page.parents[len(path.relative_to(NBS).parts) - 1]
    def fix(m):
        target, _, anchor = m.group(2).partition('#')
        f = (base/target).resolve() if target and not re.match(r'[a-z]+:', target) else None
        if f is None or not f.exists(): return m.group(0)
        if f.suffix == '.ipynb' and f in notebooks(): f = top/f.relative_to(NBS).with_suffix('.html')
        return f"[{m.group(1)}]({Path(os.path.relpath(f, page.parent)).as_posix()}{'#' + anchor if anchor else ''})"
    def outside_code(md):     # a link written in code is Markdown shown as code: left as written
        code, out, at, pos = code_parts(md), [], 0, 0
        while m := LINK.search(md, pos):
            if any(s <= m.start() < e for s, e in code): pos = m.start() + 1; continue
            out += [md[at:m.start()], fix(m)]; at = pos = m.end()
        return ''.join(out) + md[at:]
    for cell in nb.cells:
        if cell.cell_type == 'markdown': cell.source = outside_code(cell.source)


def warning_boxes(nb) -> list:
    "The stderr outputs of the cells a page shows (each would be a warning box): `cell id: first line`."
    return [f"cell {c.get('id')}: {o.get('text', '').strip().splitlines()[0]}" for c in nb.cells
            if c.cell_type == 'code' and 'remove_cell' not in c.metadata.get('tags', [])
            for o in c.get('outputs', []) if o.get('output_type') == 'stream' and o.get('name') == 'stderr' and o.get('text', '').strip()]


def copy_mathjax(out:Path) -> Path:
    "MathJax 2 from the jupyter-server-mathjax package, copied to `out/mathjax`: the pages typeset LaTeX offline."
    try: import jupyter_server_mathjax
    except ImportError: sys.exit('jupyter-server-mathjax is not installed (a dev requirement): pip install -e ".[dev]"')
    dest = out/'mathjax'
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent/'static', dest, dirs_exist_ok=True)
    return dest


def _output(o:dict):
    "An execnb output as nbformat has it in memory: multi-line strings joined (a file may store them as line lists)."
    o = dict(o)
    if isinstance(o.get('text'), list): o['text'] = ''.join(o['text'])
    if 'data' in o: o['data'] = {k: ''.join(v) if isinstance(v, list) else v for k, v in o['data'].items()}
    return nbformat.from_dict(o)


def attach_outputs(nb, recorded:Path):
    "Put the outputs a test run recorded (cell id -> outputs) into `nb`; fail on a missing run or an error output."
    if not recorded.exists(): raise FileNotFoundError(f'{recorded}: no recorded run of this notebook (run `make test` first)')
    ran = json.loads(recorded.read_text(encoding='utf-8'))
    for cell in nb.cells:
        if cell.cell_type != 'code' or cell.get('id') not in ran: continue
        cell.outputs = [_output(o) for o in ran[cell.id]['outputs']]
        cell.execution_count = ran[cell.id]['execution_count']
        err = next((o for o in cell.outputs if o.get('output_type') == 'error'), None)
        if err: raise RuntimeError(f'cell {cell.id} ended in {err.get("ename")}: {err.get("evalue")}')


def render(path:Path, out:Path, timeout:int, outputs:Path|None=None) -> tuple:
    "Execute one notebook (or take a test run's outputs) and write its page; returns (path, seconds, error or None)."
    t0 = time.time()
    try:
        nb = nbformat.read(path, as_version=4)
        if outputs is not None: attach_outputs(nb, outputs/path.relative_to(NBS).with_suffix('.json'))
        else:
            flags = skip_flags()
            client = NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}})
            with client.setup_kernel():
                for i, cell in enumerate(nb.cells):
                    if runnable(cell, flags): client.execute_cell(cell, i)
        for cell in nb.cells: for_page(cell)
        boxes = warning_boxes(nb)
        if boxes: raise RuntimeError('the page would show warning boxes (stderr): ' + '; '.join(boxes))
        page = out/path.relative_to(NBS).with_suffix('.html')
        page_links(nb, path, page)
        exporter = HTMLExporter(template_name='docs', extra_template_basedirs=[str(TEMPLATES)])
        exporter.mathjax_url = Path(os.path.relpath(out/'mathjax'/'MathJax.js', page.parent)).as_posix() + '?config=TeX-AMS-MML_HTMLorMML-full,Safe'
        exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={'remove_cell'}, remove_input_tags={'remove_input'}),
                                       enabled=True)
        html, _ = exporter.from_notebook_node(nb, resources={'metadata': {'name': path.stem}})
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(html, encoding='utf-8')
        return path, time.time() - t0, None
    except Exception as e:
        return path, time.time() - t0, ''.join(traceback.format_exception_only(type(e), e))[-4000:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', type=Path, help='notebooks to render (default: all that nbdev_test runs)')
    ap.add_argument('--workers', type=int, default=2, help='notebooks executed at once')
    ap.add_argument('--out', type=Path, default=ROOT/'_docs', help='folder for the HTML pages')
    ap.add_argument('--timeout', type=int, default=1800, help='seconds one cell may run')
    ap.add_argument('--outputs', type=Path, default=None, help="render a test run's recorded outputs (tools/nbtest.py) instead of executing")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or notebooks()
    if not paths: sys.exit('No notebooks found under nbs/: nothing to render is a failure.')
    # the kernels import this checkout and draw figures inline even where CI sets MPLBACKEND=Agg
    os.environ['PYTHONPATH'] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])
    os.environ.pop('MPLBACKEND', None)
    os.environ['PYTHONWARNINGS'] = ','.join(filter(None, [os.environ.get('PYTHONWARNINGS'), QUIET_WARNINGS]))
    # notebooks run side by side share the cores rather than each claiming all of them (torch reads this at import)
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // args.workers)))
    copy_mathjax(args.out.resolve())
    t0, failed = time.time(), []
    print(f'Rendering {len(paths)} notebooks to {args.out} with {args.workers} workers', flush=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for path, secs, err in pool.map(render, paths, [args.out] * len(paths), [args.timeout] * len(paths),
                                        [args.outputs and args.outputs.resolve()] * len(paths)):
            print(f'{"FAILED" if err else "ok":>6}  {secs:6.0f} s  {path.relative_to(ROOT)}', flush=True)
            if err: failed.append(path); print(err, flush=True)
    print(f'{len(paths) - len(failed)} of {len(paths)} notebooks rendered to {args.out} in {time.time() - t0:.0f} s.')
    if failed: sys.exit(f'Docs build failed: {", ".join(str(p.relative_to(ROOT)) for p in failed)}.')


if __name__ == '__main__': main()
