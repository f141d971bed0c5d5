"""The test command, `tools/run_tests.py` (its warm-up, `--code-only`, commands run side by side), and the lower end of
the declared ranges: `tools/lowest_versions.py` (settings.ini's lower bounds as pip constraints), which
`make test-lowest` installs with before it runs `tools/run_tests.py --code-only`."""
import configparser, re, subprocess, sys, types
from pathlib import Path
import pytest

from tests.conftest import load_tool, locked

ROOT = Path(__file__).resolve().parents[1]


LOW, RUN = load_tool('lowest_versions'), load_tool('run_tests')


def min_python() -> str:
    return re.search(r'^min_python\s*=\s*(\S+)', (ROOT/'settings.ini').read_text(), re.M).group(1)


def test_every_declared_requirement_is_pinned_at_its_lower_bound():
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    declared = [r for k in ('requirements', 'dev_requirements') for r in cfg['DEFAULT'][k].split()]
    pins = LOW.lowest()
    assert len(pins) == len(declared)
    low = dict(p.split('==') for p in pins)
    assert set(low) == {re.split(r'[<>=!~\[]', r)[0] for r in declared}
    assert (low['torch'], low['numpy'], low['pandas'], low['scipy'], low['nbdev']) == ('2.11', '1.26', '2.0', '1.11.1', '2.4.14')
    # the same from the command line, as `make test-lowest` writes it (the system python: stdlib only)
    out = subprocess.run([sys.executable, ROOT/'tools'/'lowest_versions.py'], capture_output=True, text=True, check=True)
    assert out.stdout.split() == pins


def test_a_requirement_without_a_lower_bound_is_refused_by_name(tmp_path):
    ini = tmp_path/'settings.ini'
    ini.write_text('[DEFAULT]\nrequirements = torch>=2.11,<2.15 numpy<3 pandas[performance]>=2.0\ndev_requirements = pytest==8\n')
    with pytest.raises(SystemExit, match=r"requirements: 'numpy<3' declares no lower bound"): LOW.lowest(ini)
    ini.write_text('[DEFAULT]\nrequirements = torch>=2.11,<2.15 pandas[performance]>=2.0\ndev_requirements = pytest==8\n')
    assert LOW.lowest(ini) == ['torch==2.11', 'pandas==2.0', 'pytest==8']


@pytest.fixture
def commands(monkeypatch):
    "run_tests.main with every command it runs recorded, not run (each answers as a pass would)."
    ran = []
    def run_together(*jobs):
        ran.append([' '.join(map(str, j[0] if isinstance(j, tuple) else j)) for j in jobs])
        return types.SimpleNamespace(returncode=0, stdout='\n'.join(f'- Completed {p}' for p in RUN.notebooks()))
    monkeypatch.setattr(RUN, 'run_together', run_together)
    return ran


def test_code_only_stops_after_pytest_and_passes_the_rest_to_it(commands, capsys):
    RUN.main(['--code-only', '-k', 'noise'])
    assert len(commands) == 3 and 'nbtest.py' in commands[1][0] and commands[2][0].endswith('-k noise')
    assert '--code-only' not in commands[2][0]
    assert '--code-only: the published numbers not checked' in capsys.readouterr().out


def test_the_full_command_also_checks_the_published_numbers(commands):
    RUN.main([])
    assert 'fingerprints.py --check' in commands[3][0] and 'benchmark.py --quick --verify 1' in commands[4][0]


def test_make_test_lowest_installs_with_those_constraints_and_runs_the_code_only_tests():
    make = (ROOT/'Makefile').read_text()
    target = make.split('\ntest-lowest:')[1].split('\n\n')[0]
    assert 'tools/lowest_versions.py > $(LOWEST)/constraints.txt' in target
    assert '-c $(LOWEST)/constraints.txt -e ".[dev]"' in target and 'tools/run_tests.py --code-only' in target
    assert 'STITCHUP_BROWSER_TEST=1 $(LOWEST)/bin/python -m pytest tests/browser' in target     # the widgets in a real JupyterLab


def test_make_gives_a_venv_without_pip_its_pip(tmp_path):
    """`python3 -m venv` without Debian's python3-venv leaves a python and no pip; `make` then failed at `pip install`
    until the folder was deleted. The `venv` target (which both installs go through) adds pip, keeping the folder."""
    venv = tmp_path/'v'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', venv], check=True)
    (venv/'kept.txt').write_text('a file of the venv')
    pip = lambda: subprocess.run([venv/'bin'/'python', '-m', 'pip', '--version'], capture_output=True).returncode
    assert pip() != 0
    subprocess.run(['make', '-s', '-C', ROOT, 'venv', f'VENV={venv}', f'PYTHON={sys.executable}'], check=True)
    assert pip() == 0 and (venv/'kept.txt').is_file()
    make = (ROOT/'Makefile').read_text()
    assert make.count('$(MAKE) --no-print-directory venv VENV=') == 2      # `make`'s venv and `make test-lowest`'s


def test_make_refuses_a_python_settings_ini_does_not_admit(tmp_path):
    "The venv is made only from a Python of settings.ini's min_python or later (the Makefile reads it there); else it says so."
    said = subprocess.run(['make', '-s', '-C', ROOT, '--eval', 'said: ; @echo $(MIN_PYTHON)', 'said'], capture_output=True, text=True)
    assert said.stdout.strip() == min_python()
    p = subprocess.run(['make', '-s', '-C', ROOT, 'venv', f'VENV={tmp_path/"v"}', f'PYTHON={sys.executable}', 'MIN_PYTHON=3.99'],
                       capture_output=True, text=True)
    assert p.returncode != 0 and 'needs 3.99 or later (settings.ini min_python)' in p.stderr, p.stderr
    assert 'make demo PYTHON=' in p.stderr and not (tmp_path/'v').exists()


def test_the_lock_installs_on_every_python_settings_ini_admits():
    """Each locked package's Requires-Python admits min_python's first release (x.y.0): `make` on any admitted Python
    installs the lock (soupsieve 3.0.2 and later need 3.11.5, which Debian 12's 3.11.2 is not). Read from the installed
    packages' metadata, where they are the locked versions (CI's venv is the lock; `make test-lowest`'s is not)."""
    from importlib import metadata
    from packaging.specifiers import SpecifierSet
    first, lock = min_python() + '.0', locked()
    checked, refuse = 0, []
    for name, version in lock.items():
        try: meta = metadata.metadata(name)
        except metadata.PackageNotFoundError: continue          # a package of another platform's resolution
        if meta['Version'] != version: continue
        checked += 1
        if (rp := meta.get('Requires-Python')) and not SpecifierSet(rp).contains(first): refuse.append(f'{name}=={version} ({rp})')
    if checked < len(lock) // 2: pytest.skip(f'{checked} of {len(lock)} packages here are the locked versions: not the lock\'s venv')
    assert refuse == [], f'requirements-lock.txt cannot install on Python {first}, which settings.ini admits: {refuse}'


def test_the_warm_up_builds_the_pinned_kernels_cnn_beside_the_default_one(monkeypatch):
    from stitchup_nb.pins import CPU_ENV
    jobs = []
    def run_together(*js):
        jobs.append(js)
        return types.SimpleNamespace(returncode=1, stdout='')
    monkeypatch.setattr(RUN, 'run_together', run_together)
    with pytest.raises(SystemExit, match='pretraining the Digits CNN for the cache failed'): RUN.main([])
    (default, (pinned, env)), = jobs                 # one call, two jobs, the second under the benchmark's kernels
    assert 'pretrain_digits_cnn' in default[-1] and 'pretrain_digits_cnn' in pinned[-1]
    assert env == CPU_ENV


def test_commands_run_side_by_side_report_the_first_failure(capsys):
    ok = [sys.executable, '-c', 'print("one")']
    bad = ([sys.executable, '-c', 'import os, sys; print(os.environ["WHICH"]); sys.exit(3)'], {'WHICH': 'two'})
    out = RUN.run_together(ok, bad)
    assert (out.returncode, out.stdout.strip()) == (3, 'two')
    printed = capsys.readouterr().out
    assert printed.index('one') < printed.index('two') and '$ WHICH=two' in printed
    assert RUN.run(ok).returncode == 0


@pytest.mark.parametrize('installer, uv_works, want', [
    ('uv', True, ['pip install -q -c requirements-lock.txt uv', 'uv pip install -q --compile-bytecode']),
    ('uv', False, ['pip install -q -c requirements-lock.txt uv', 'uv pip install -q --compile-bytecode',
                   'pip install -q -c requirements-lock.txt -e .[dev]']),
    ('pip', True, ['pip install -q -c requirements-lock.txt -e .[dev]']),
])
def test_make_installs_the_lock_with_uv_else_with_pip(tmp_path, installer, uv_works, want):
    """`make`'s install: uv installs the lock where it can; where it fails, pip installs the same lock, saying so;
    INSTALLER=pip goes to pip alone. A stand-in venv python records each call (and fails uv's when asked to)."""
    venv = tmp_path/'v'; (venv/'bin').mkdir(parents=True)
    log = tmp_path/'calls'
    python = venv/'bin'/'python'
    python.write_text(f'#!/bin/sh\necho "$*" >> {log}\n' + ('' if uv_works else 'case "$*" in *"-m uv"*) exit 1;; esac\n') + 'exit 0\n')
    python.chmod(0o755)
    p = subprocess.run(['make', '-s', '-C', ROOT, str(venv/'.stitchup_installed'), f'VENV={venv}', f'INSTALLER={installer}'],
                       capture_output=True, text=True)
    assert p.returncode == 0 and (venv/'.stitchup_installed').is_file(), p.stderr
    installs = [l for l in log.read_text().splitlines() if 'install' in l and '--upgrade pip' not in l]
    assert len(installs) == len(want) and all(w in l for w, l in zip(want, installs)), installs
    assert ('uv could not install' in p.stdout) == (installer == 'uv' and not uv_works), p.stdout
