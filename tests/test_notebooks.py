"""The notebooks as files: each opens in JupyterLab on the python3 kernel without asking (its kernelspec
names it; nbdev_clean keeps it, settings.ini `allowed_metadata_keys`), and running one top to bottom
changes no file of the repository (no trailing `nbdev_export()` cell: export is a development step).
`tests/browser/test_jupyterlab.py` checks the first in a real JupyterLab."""
import json
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parents[1]/'nbs'
# notebooks another change still has to bring in line (a kernelspec added, the nbdev_export() cell removed);
# drop a name here once its notebook is done
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 10


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS)))
def test_notebook_names_its_kernel_and_exports_nothing(path):
    nb = json.loads(path.read_text(encoding='utf-8'))
    spec = nb['metadata'].get('kernelspec', {})
    assert spec.get('name') == 'python3' and spec.get('language') == 'python', f'{path.name}: kernelspec {spec}'
    export = [c.get('id') for c in nb['cells'] if c['cell_type'] == 'code' and 'nbdev_export(' in ''.join(c['source'])]
    assert not export, f'{path.name}: cells {export} call nbdev_export(); running the notebook would rewrite the package'
