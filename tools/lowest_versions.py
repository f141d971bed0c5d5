"""The oldest versions settings.ini declares, as pip constraints: `make test-lowest` installs the kit with them and runs
its tests, so that the ranges a user's own environment may have are ranges the kit was tested at both ends of (the
other end is requirements-lock.txt, which `make test` and CI install).

Each requirement of `requirements` and `dev_requirements` becomes `name==lower` (its `>=` or `==` bound); one
without a lower bound is an error, naming it (a range must say where it starts). Only the declared packages are
pinned; pip resolves what they need.

    python tools/lowest_versions.py > lowest.txt && pip install -c lowest.txt -e ".[dev]"
"""
import configparser, re, shlex, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = re.compile(r'^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?(.*)$')


def declared(settings=ROOT/'settings.ini') -> list:
    "(key, name, version specifier) for each requirement of `requirements` and `dev_requirements`, as setup.py reads them."
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(settings, encoding='utf-8')
    return [(key, *SPEC.match(req).groups()) for key in ('requirements', 'dev_requirements')
            for req in shlex.split(cfg['DEFAULT'].get(key, ''))]


def lowest(settings=ROOT/'settings.ini') -> list:
    "`name==version` for each declared requirement, at its lower bound."
    out = []
    for key, name, spec in declared(settings):
        low = re.search(r'(?:>=|==)\s*([^,\s]+)', spec)
        if not low: sys.exit(f'{settings}: {key}: {name + spec!r} declares no lower bound (>= or ==); give it one.')
        out.append(f'{name}=={low.group(1)}')
    return out


if __name__ == '__main__':
    import argparse
    argparse.ArgumentParser(description=__doc__.split('\n\n')[0]).parse_args()     # --help answers; no other flag is taken
    print('\n'.join(lowest()))
