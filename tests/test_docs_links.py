"""The offline docs pages (`tools/render_docs.py`, `make docs`) link the repository's files from where the page is: the
README's page (index.ipynb, whose links are read from the repository root, as GitHub reads the README's) linked
`nbs/07j_full_plus.ipynb` and `data/README.md` as written, so from `_docs/index.html` every one went nowhere."""
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_index_pages_links_reach_their_pages_and_files(tmp_path):
    (tmp_path/'outputs').mkdir(); (tmp_path/'outputs'/'index.json').write_text('{}')      # index.ipynb runs no code
    p = subprocess.run([sys.executable, ROOT/'tools'/'render_docs.py', '--outputs', tmp_path/'outputs', '--out', tmp_path/'docs',
                        ROOT/'nbs'/'index.ipynb'], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    links = {h for h in re.findall(r'<a href="([^"#]*)', (tmp_path/'docs'/'index.html').read_text()) if h and ':' not in h}
    pages, files = [h for h in links if h.endswith('.html')], [h for h in links if not h.endswith('.html')]
    assert {'07j_full_plus' + '.html', 'experiments/benchmark.html'} <= set(pages), sorted(links)     # a notebook: its page
    assert all((ROOT/'nbs'/h).with_suffix('.ipynb').is_file() for h in pages), pages
    assert any(h.endswith('data/README.md') for h in files), sorted(links)                       # a file: itself, from the page
    assert all((tmp_path/'docs'/h).resolve().is_file() for h in files), files


def test_a_link_in_code_is_left_as_written(tmp_path):
    """A link written inside a code span or a fenced code block shows Markdown source, not a link: `page_links` leaves it
    as written (it rewrote it too, so the page showed the page's address where the notebook says the notebook's). A link
    whose text is code, or one after a code span on its line, is still made to work from the page."""
    import nbformat
    from tests.conftest import load_tool
    tool = load_tool('render_docs')
    nb_, page = '13_results.ipynb', '13_results' + '.html'                # the linked notebook, its page
    src = (f"A link [`13_results`]({nb_}), then code `[x]({nb_})` and ``a `[y]({nb_})` b``; then [z]({nb_}).\n"
           f"```python\n[f]({nb_})  # in a fence\n```\n"
           f"~~~~\n```\n[g]({nb_})\n~~~~\n"
           f"An unclosed ` backtick and [after]({nb_}).\n\nA paragraph's ` pairs with none before it: [next]({nb_}).")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(src)])
    tool.page_links(nb, ROOT/'nbs'/'12_experiments.ipynb', tmp_path/('12_experiments' + '.html'))
    said = nb.cells[0].source
    assert said.count(f'({page})') == 4, said                           # the link of code text, z, after, next
    assert all(f'{l}({page})' in said for l in ('[`13_results`]', '[z]', '[after]', '[next]')), said
    assert said.count(f'({nb_})') == 4, said                            # x, y, f, g: as written
    assert f'`[x]({nb_})`' in said and f'[f]({nb_})  # in a fence' in said and f'\n[g]({nb_})\n' in said, said
