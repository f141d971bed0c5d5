"""The browsers in a real JupyterLab, in a real browser (`make browser-test`; CI runs it after `make test`).

Starts JupyterLab on a free localhost port with a token, in a fresh folder holding copies of the
notebooks to open, and drives Debian's chromium with Playwright:

- the notebooks open on the python3 kernel their kernelspec names, with no kernel-selection dialog
  (a copy without a kernelspec, the control, does get the dialog);
- `nbs/_widget_demo.ipynb`: run all cells, drag the image slider, and the StitchBrowser's DOM follows
  (anchor title, image, chips, slider readout);
- a training run (`stitchup_train`, digits-small, 4 epochs, into a temporary work dir; it trains while the
  tests above drive the browser), then a notebook
  that builds `CorrectionBrowser.from_checkpoint(path)` and `StitchBrowser.from_run(work dir)` from its
  files alone: both render, the correction browser's title follows its slider, and a browser whose
  thresholds are all off says why in words.

Screenshots go to `tests/browser/artifacts/`. Installs nothing: chromium comes from
`apt-get install chromium` (`.ci/run`), Playwright's own browsers are never downloaded. The server is
stopped whatever happens.
"""
import json, os, re, secrets, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NBS = ROOT/'nbs'
DEMO = NBS/'_widget_demo.ipynb'
ARTIFACTS = Path(__file__).parent/'artifacts'
CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
STITCH, CORRECT = '.su-stitch-browser', '.su-correction-browser'
KERNEL_DIALOG = '.jp-Dialog'
ENV = {'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def api(base, token, path, method='GET'):
    req = urllib.request.Request(f'{base}{path}', method=method, headers={'Authorization': f'token {token}'})
    with urllib.request.urlopen(req, timeout=10) as r: return json.loads(r.read() or b'null')


def notebook(*sources) -> dict:
    "A notebook of code cells, with the kernelspec every notebook under nbs/ carries."
    return {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': f'c{k}', 'metadata': {}, 'outputs': [], 'source': s}
                      for k, s in enumerate(sources)],
            'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
            'nbformat': 4, 'nbformat_minor': 5}


@pytest.fixture
def jupyterlab(tmp_path):
    "A JupyterLab server on a free port, its own config/data/settings folders; put notebooks in `root` before opening them."
    root, home = tmp_path/'root', tmp_path/'home'
    root.mkdir(); home.mkdir()
    news = home/'settings'/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings'
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))       # no news prompt over the page
    env = {**os.environ, **ENV,
           'JUPYTER_CONFIG_DIR': str(home/'config'), 'JUPYTER_DATA_DIR': str(home/'data'), 'JUPYTER_RUNTIME_DIR': str(home/'runtime'),
           'JUPYTERLAB_SETTINGS_DIR': str(home/'settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(home/'workspaces'),
           'IPYTHONDIR': str(home/'ipython')}
    env.pop('MPLBACKEND', None)
    port, token = free_port(), secrets.token_hex(16)
    base = f'http://127.0.0.1:{port}'
    log = open(tmp_path/'jupyterlab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
                             '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
                             '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None',
                             '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                             *(['--allow-root'] if os.geteuid() == 0 else [])],     # CI containers run as root
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None: raise RuntimeError(f'JupyterLab exited ({proc.returncode}):\n{(tmp_path/"jupyterlab.log").read_text()[-3000:]}')
            try: api(base, token, '/api/status'); break
            except OSError:
                if time.time() > deadline: raise RuntimeError('JupyterLab did not answer within 120 s')
                time.sleep(0.5)
        yield dict(base=base, token=token, root=root, log=tmp_path/'jupyterlab.log')
    finally:
        try:
            for k in api(base, token, '/api/kernels'): api(base, token, f'/api/kernels/{k["id"]}', method='DELETE')
        except OSError: pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try: proc.wait(20)
            except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()


@pytest.fixture
def chromium(tmp_path):
    "A Playwright page in Debian's chromium (skipped where it is not installed)."
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (`apt-get install -y chromium`; .ci/run does)")
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path/'chromium-profile'), executable_path=str(CHROMIUM), headless=True,
                                                    args=CHROMIUM_ARGS, viewport={'width': 1400, 'height': 1000})
        try: yield ctx.new_page()
        finally: ctx.close()


def open_notebook(page, lab, name) -> bool:
    "Open notebook `name` of the server's root; True once its kernel is idle, False if a kernel-selection dialog came instead."
    page.goto(f"{lab['base']}/lab/tree/{name}?token={lab['token']}", wait_until='domcontentloaded', timeout=120_000)
    page.wait_for_function(f"""() => {{
        if (document.querySelector('{KERNEL_DIALOG}')) return true;
        const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        return w && w.context && w.context.path === {json.dumps(name)} && w.sessionContext && w.sessionContext.session
               && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle'; }}""", timeout=180_000)
    return page.locator(KERNEL_DIALOG).count() == 0


def run_all(page):
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def kernel_name(page) -> str:
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.name")


def drag_slider(page, widget, dx=90):
    "Drag the first slider handle of `widget` by `dx` pixels, as a person would."
    handle = page.locator(f'{widget} .noUi-handle').first
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
    page.mouse.move(x, y); page.mouse.down(); page.mouse.move(x + dx, y, steps=10); page.mouse.up()


def failed(page, lab, name):
    page.screenshot(path=str(ARTIFACTS/f'{name}_failure.png'))
    print(lab['log'].read_text()[-3000:])


def test_notebooks_open_without_kernel_dialog(jupyterlab, chromium):
    "The notebooks as committed name their kernel: JupyterLab starts it without asking. Without a kernelspec it asks."
    lab, page = jupyterlab, chromium
    names = [DEMO.name, '11a_widgets.ipynb']
    for name in names: (lab['root']/name).write_text((NBS/name).read_text())
    bare = json.loads(DEMO.read_text()); bare['metadata'].pop('kernelspec')
    (lab['root']/'no_kernelspec.ipynb').write_text(json.dumps(bare))
    try:
        for name in names:
            assert open_notebook(page, lab, name), f'{name}: JupyterLab asked for a kernel'
            assert kernel_name(page) == 'python3'
        assert not open_notebook(page, lab, 'no_kernelspec.ipynb'), 'the control notebook should have asked for a kernel'
        assert 'Select Kernel' in page.locator(KERNEL_DIALOG).inner_text()
    except Exception:
        failed(page, lab, 'kernel_dialog'); raise


def test_slider_updates_the_stitch_browser(jupyterlab, chromium):
    lab, page = jupyterlab, chromium
    (lab['root']/DEMO.name).write_text(DEMO.read_text())
    shot = ARTIFACTS/'jupyterlab_stitch_browser.png'
    try:
        assert open_notebook(page, lab, DEMO.name)
        run_all(page)
        page.wait_for_selector(f'{STITCH} .noUi-handle', timeout=240_000)
        title = page.locator(f'{STITCH} .su-anchor-title')
        page.wait_for_function(f"() => document.querySelector('{STITCH} .su-anchor-title').innerText.includes('anchor #0')",
                               timeout=60_000)
        src0 = page.locator(f'{STITCH} img').first.get_attribute('src')
        assert page.locator(f'{STITCH} .su-chip').count() > 0
        drag_slider(page, STITCH)
        page.wait_for_function(f"() => !document.querySelector('{STITCH} .su-anchor-title').innerText.includes('anchor #0')",
                               timeout=60_000)
        readout = page.locator(f'{STITCH} .widget-readout').first.inner_text().strip()
        assert int(readout) > 0 and title.inner_text().strip() == f'anchor #{readout}'
        page.wait_for_function(f"(src) => document.querySelector('{STITCH} img').src !== src", arg=src0, timeout=30_000)
        page.locator(STITCH).scroll_into_view_if_needed()
        page.screenshot(path=str(shot))
    except Exception:
        failed(page, lab, 'jupyterlab'); raise
    assert shot.stat().st_size > 10_000


@pytest.fixture(scope='module', autouse=True)
def training(tmp_path_factory):
    """A `stitchup_train` run of the full method (digits-small, 4 epochs: its correctors change labels by then, CPU),
    started as the module's first test starts: it trains while the tests before the one that reads it drive the
    browser (`run_dir` waits for it). Stopped if the module ends first."""
    work = tmp_path_factory.mktemp('run')
    cmd = [Path(sys.executable).parent/'stitchup_train', '--dataset', 'digits-small', '--epochs', '4', '--warmup_iters', '10',
           '--work_dir', work, '--quiet']
    log = open(work.parent/f'{work.name}.log', 'w+')
    proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, **ENV})
    yield work, proc, log
    if proc.poll() is None: proc.kill(); proc.wait()
    log.close()


@pytest.fixture(scope='module')
def run_dir(training):
    "The finished run of `training`: its work dir."
    work, proc, log = training
    rc = proc.wait(timeout=900)
    log.seek(0)
    assert rc == 0, f'stitchup_train failed:\n{log.read()[-3000:]}'
    assert (work/'epoch_4.pth').exists() and (work/'config.json').exists()
    return work


def test_browsers_render_from_a_checkpoint_path(jupyterlab, chromium, run_dir):
    "A newcomer's notebook: the two browsers of a finished run, from its checkpoint path and work dir alone."
    lab, page = jupyterlab, chromium
    (lab['root']/'run.ipynb').write_text(json.dumps(notebook(
        'from stitchup_nb.widgets import StitchBrowser\n'
        'from stitchup_nb.corrections import CorrectionBrowser\n'
        f'corrections = CorrectionBrowser.from_checkpoint({str(run_dir/"epoch_4.pth")!r})\n'
        'corrections',
        f'StitchBrowser.from_run({str(run_dir)!r})',
        'from stitchup_nb.colearn import THRESHOLDS\n'
        f'CorrectionBrowser.from_checkpoint({str(run_dir/"epoch_4.pth")!r}, thresholds=dict(THRESHOLDS))')))
    title = f'{CORRECT} .su-correction-title'
    try:
        assert open_notebook(page, lab, 'run.ipynb')
        run_all(page)
        page.wait_for_selector(f'{CORRECT} table.su-changes', timeout=300_000)
        first = page.locator(title).first.inner_text()
        readout = page.locator(f'{CORRECT} .widget-readout').first.inner_text().strip()
        assert f'training image #{readout} (1 of ' in first             # the title agrees with the slider
        assert 'other labels' in first and page.locator(f'{CORRECT} .su-caption').first.inner_text().startswith('class:')
        assert page.locator(f'{CORRECT} table.su-changes').first.locator('tbody tr').count() >= 1
        assert page.locator(f'{CORRECT} img').first.get_attribute('src')
        drag_slider(page, CORRECT, dx=60)
        page.wait_for_function(f"(t) => document.querySelector('{title}').innerText !== t", arg=first, timeout=60_000)
        readout = page.locator(f'{CORRECT} .widget-readout').first.inner_text().strip()
        assert f'training image #{readout} (' in page.locator(title).first.inner_text()
        page.wait_for_selector(f'{STITCH} .su-anchor-title', timeout=240_000)
        page.wait_for_function(f"() => document.querySelector('{STITCH} .su-anchor-title').innerText.includes('anchor #0')",
                               timeout=60_000)
        assert 'feature level' in page.locator(STITCH).inner_text() and page.locator(f'{STITCH} .su-chip').count() > 0
        page.wait_for_function(f"() => document.querySelectorAll('{CORRECT}').length === 2", timeout=300_000)
        off = page.locator(title).nth(1)
        page.wait_for_function(f"() => document.querySelectorAll('{title}')[1].innerText.length > 0", timeout=60_000)
        assert re.search(r'No label was corrected: correction is off\. Every threshold \(.*epoch_4\.pth, overridden by', off.inner_text())
        page.locator(CORRECT).first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS/'jupyterlab_run_browsers.png'))
    except Exception:
        failed(page, lab, 'run_browsers'); raise
