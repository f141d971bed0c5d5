"""`nbdev_test`, keeping what each notebook printed, so the docs need no second execution.

    python tools/nbtest.py [nbdev_test's options]      # e.g. --do_print --timing

This is nbdev's own `nbdev_test` (the same notebooks, skip flags, parallel workers, messages and
exit status). The one addition: after a notebook has run (or failed), the outputs of the cells that
ran are written by cell id to `_docs/outputs/<notebook path>.json` (`$STITCHUP_NB_OUTPUTS` moves
the folder), and `tools/render_docs.py --outputs _docs/outputs` renders the pages from them with
nbconvert. `make test` runs this; CI then renders the docs from the same run. Each notebook computes with one
PyTorch thread: nbdev_test runs a notebook a core side by side, and two threads a notebook would only contend with the
other worker's, each spinning while the other's process holds its core.
"""
import json, os, warnings
from pathlib import Path

from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get('STITCHUP_NB_OUTPUTS', ROOT/'_docs'/'outputs'))
_run_all = CaptureShell.run_all
# fastai's import calls torch.jit.script, which torch deprecates with a FutureWarning: a notice for fastai, not for a
# reader, recorded on whichever notebook imports fastai first in a worker (tools/render_docs.py filters it alike)
warnings.filterwarnings('ignore', category=FutureWarning, module=r'torch\.jit\._script')


def outputs_file(nb_path, out=OUT) -> Path:
    "Where the outputs of the notebook at `nb_path` (under nbs/) are kept."
    return out/Path(nb_path).resolve().relative_to(ROOT/'nbs').with_suffix('.json')


def _keep(nb):
    ran = {c['id']: {'outputs': list(c.get('outputs', [])), 'execution_count': c.get('execution_count')}
           for c in nb.cells if c.get('cell_type') == 'code' and c.get('id') and 'outputs' in c}
    dest = outputs_file(nb.path_)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(ran, default=str), encoding='utf-8')


def run_all(self, nb, *args, **kwargs):
    "execnb's `run_all`, then the outputs written (also after a failure: the partial page shows where it stopped)."
    try: return _run_all(self, nb, *args, **kwargs)
    finally:
        if getattr(nb, 'path_', None): _keep(nb)


CaptureShell.run_all = run_all       # nbdev_test's workers are forked from here and inherit it
os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')    # and this, before any of them starts torch

if __name__ == '__main__':
    from nbdev.test import nbdev_test
    nbdev_test()
