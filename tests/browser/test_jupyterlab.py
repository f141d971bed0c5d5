"""The StitchBrowser in a real JupyterLab, in a real browser (`make browser-test`; CI runs it after `make test`).

Starts JupyterLab on a free localhost port with a token, opens `nbs/_widget_demo.ipynb` (a copy, in a
fresh folder) in Debian's chromium driven by Playwright, runs all cells, drags the image slider and
checks that the widget's DOM follows: anchor title, image, chips, slider readout. Saves a screenshot
to `tests/browser/artifacts/`. Installs nothing: chromium comes from `apt-get install chromium`
(`.ci/run`), Playwright's own browsers are never downloaded. The server is stopped whatever happens.
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT/'nbs'/'_widget_demo.ipynb'
ARTIFACTS = Path(__file__).parent/'artifacts'
CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
WIDGET = '.su-stitch-browser'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def api(base, token, path, method='GET'):
    req = urllib.request.Request(f'{base}{path}', method=method, headers={'Authorization': f'token {token}'})
    with urllib.request.urlopen(req, timeout=10) as r: return json.loads(r.read() or b'null')


@pytest.fixture
def jupyterlab(tmp_path):
    "A JupyterLab server on a free port, its own config/data/settings folders, the demo notebook in its root."
    root, home = tmp_path/'root', tmp_path/'home'
    root.mkdir(); home.mkdir()
    nb = json.loads(DEMO.read_text())
    nb['metadata']['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}   # no kernel dialog
    (root/DEMO.name).write_text(json.dumps(nb))
    news = home/'settings'/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings'
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))       # no news prompt over the page
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
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
        yield dict(base=base, token=token, notebook=DEMO.name, log=tmp_path/'jupyterlab.log')
    finally:
        try:
            for k in api(base, token, '/api/kernels'): api(base, token, f'/api/kernels/{k["id"]}', method='DELETE')
        except OSError: pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try: proc.wait(20)
            except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()


def test_slider_updates_the_stitch_browser(jupyterlab, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (`apt-get install -y chromium`; .ci/run does)")
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS/'jupyterlab_stitch_browser.png'
    url = f"{jupyterlab['base']}/lab/tree/{jupyterlab['notebook']}?token={jupyterlab['token']}"
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path/'chromium-profile'), executable_path=str(CHROMIUM), headless=True,
                                                    args=CHROMIUM_ARGS, viewport={'width': 1400, 'height': 1000})
        page = ctx.new_page()
        try:
            page.goto(url, wait_until='domcontentloaded', timeout=120_000)
            page.wait_for_function("""() => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
                       && w.sessionContext.session.kernel.status === 'idle'; }""", timeout=180_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(f'{WIDGET} .noUi-handle', timeout=240_000)
            title = page.locator(f'{WIDGET} .su-anchor-title')
            page.wait_for_function(f"() => document.querySelector('{WIDGET} .su-anchor-title').innerText.includes('anchor #0')",
                                   timeout=60_000)
            image = page.locator(f'{WIDGET} img').first
            src0 = image.get_attribute('src')
            assert page.locator(f'{WIDGET} .su-chip').count() > 0

            handle = page.locator(f'{WIDGET} .noUi-handle').first
            handle.scroll_into_view_if_needed()
            box = handle.bounding_box()
            x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
            page.mouse.move(x, y); page.mouse.down(); page.mouse.move(x + 90, y, steps=10); page.mouse.up()
            page.wait_for_function(f"() => !document.querySelector('{WIDGET} .su-anchor-title').innerText.includes('anchor #0')",
                                   timeout=60_000)
            readout = page.locator(f'{WIDGET} .widget-readout').first.inner_text().strip()
            assert int(readout) > 0 and title.inner_text().strip() == f'anchor #{readout}'
            page.wait_for_function(f"(src) => document.querySelector('{WIDGET} img').src !== src", arg=src0, timeout=30_000)
            page.locator(WIDGET).scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
        except Exception:
            page.screenshot(path=str(ARTIFACTS/'jupyterlab_failure.png'))
            print(jupyterlab['log'].read_text()[-3000:])
            raise
        finally:
            ctx.close()
    assert shot.stat().st_size > 10_000
