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
