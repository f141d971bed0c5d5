"""Untrusted files: the official split, label and noise pickles, checkpoints, and paths.

A pickle can name any importable callable, so a downloaded file can run code when it is loaded.
Every reader of the official files goes through `stitchup_nb.files.load_pickle` (only the builtins
and numpy types those files need), and checkpoints through `stitchup_nb.checkpoints.read_checkpoint`
(`torch.load(weights_only=True)`). Each test offers a file crafted to create a marker file when
unpickled: it must be refused with the file named, and the marker must not exist. Last, the
package's source is checked: no shell, no eval/exec, no unrestricted pickle or torch.load.
"""
import ast, os, pickle, subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import stitchup_nb
from stitchup_nb import cli, labels, noise_cli
from stitchup_nb.checkpoints import load_checkpoint, read_checkpoint
from stitchup_nb.data import read_class_split
from stitchup_nb.appendix import read_appendix, read_class_freq
from stitchup_nb.readers import read_ids
from stitchup_nb.noise import load_noisy
from tests.conftest import BIN
from stitchup_nb.fixtures import make_appendix

PKG = Path(stitchup_nb.__file__).parent


class System:
    "Unpickling this runs `touch MARKER` in a shell (os.system)."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return os.system, (f'touch {self.marker}',)

class Eval:
    "Unpickling this evaluates Python that creates MARKER (builtins.eval)."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return eval, (f'open({str(self.marker)!r}, "w")',)

class Popen:
    "Unpickling this starts `touch MARKER` (subprocess.Popen)."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return subprocess.Popen, (['touch', str(self.marker)],)

class InArray:
    "The payload hidden in an object array, as if it were a label matrix."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self):
        a = np.empty(2, dtype=object); a[:] = [System(self.marker), 0]
        return a.__reduce__()

PAYLOADS = [System, Eval, Popen, InArray]
Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], np.uint8)


def dump(obj, path, protocol=2):
    Path(path).write_bytes(pickle.dumps(obj, protocol=protocol)); return path


def appendix_with(tmp, name, evil):
    "A valid appendix folder whose file `name` is replaced by the crafted pickle."
    folder = make_appendix(tmp/'appendix', [f'2008_{i:06d}' for i in range(4)], Y, noise_rates=(0.5,))
    dump(evil, folder/name)
    return folder


READERS = {   # name -> (how the crafted object reaches the reader, the call)
    'read_class_split': lambda t, evil: read_class_split(dump({'head': evil, 'middle': {1}, 'tail': {2}}, t/'class_split.pkl')),
    'read_class_freq': lambda t, evil: read_class_freq(dump({'gt_labels': evil, 'class_freq': Y.sum(0)}, t/'class_freq.pkl')),
    'read_appendix(class_split.pkl)': lambda t, evil: read_appendix(appendix_with(t, 'class_split.pkl', evil)),
    'read_appendix(class_freq.pkl)': lambda t, evil: read_appendix(appendix_with(t, 'class_freq.pkl', {'gt_labels': evil})),
    'read_appendix(noise file)': lambda t, evil: read_appendix(appendix_with(t, 'class_freq_0.5noise.pkl', [evil])),
    'read_ids(pickle)': lambda t, evil: read_ids(dump([evil, '2008_000001'], t/'img_id.pkl')),
    'read_ids(text-like pickle)': lambda t, evil: read_ids(dump([evil], t/'img_id.pkl', protocol=0)),
    'load_noisy': lambda t, evil: load_noisy(dump({'labels': evil, 'clean_labels': Y, 'class_freq': Y.sum(0)}, t/'n.pkl')),
    'labels.training_labels': lambda t, evil: labels.training_labels(None, dump(evil, t/'class_freq_0.5noise.pkl')),
    'noise_cli.stitchup_noise': lambda t, evil: noise_cli.stitchup_noise(source=str(dump(evil, t/'class_freq.pkl')), out=str(t/'o.pkl')),
}


@pytest.mark.parametrize('payload', PAYLOADS, ids=[p.__name__ for p in PAYLOADS])
@pytest.mark.parametrize('reader', READERS)
def test_crafted_pickle_is_refused_without_running(reader, payload, tmp_path):
    marker = tmp_path/'pwned'
    with pytest.raises(pickle.UnpicklingError, match='refused to load') as e:
        READERS[reader](tmp_path, payload(marker))
    assert '.pkl' in str(e.value) and 'crafted to run code' in str(e.value)
    assert not marker.exists()


def crafted_checkpoint(path, payload, marker, legacy=False):
    state = {'model': {'w': torch.ones(2)}, 'epoch': 1, 'classes': ['a'], 'groups': {}, 'opt': payload(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
@pytest.mark.parametrize('payload', [System, Eval, Popen], ids=['System', 'Eval', 'Popen'])
def test_crafted_checkpoint_is_refused_without_running(payload, legacy, tmp_path):
    marker, ck = tmp_path/'pwned', crafted_checkpoint(tmp_path/'epoch_1.pth', payload, tmp_path/'pwned', legacy)
    for load in (read_checkpoint, lambda p: load_checkpoint(None, p),    # refused before the Learner is touched
                 lambda p: cli.stitchup_test(checkpoint=str(p))):        # before any config or data is read
        with pytest.raises(pickle.UnpicklingError) as e: load(ck)
        assert 'epoch_1.pth: refused' in str(e.value) and 'crafted to run code' in str(e.value)
        assert 'weights_only set to False' not in str(e.value)          # never advise the unsafe way
    assert not marker.exists()


def test_stitchup_test_script_refuses_a_crafted_checkpoint(tmp_path):
    marker, ck = tmp_path/'pwned', crafted_checkpoint(tmp_path/'epoch_1.pth', System, tmp_path/'pwned')
    proc = subprocess.run([str(BIN/'stitchup_test'), str(ck)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0 and 'crafted to run code' in proc.stderr
    assert not marker.exists()


# ---- the package's own code ----------------------------------------------------------------------
def _calls(tree):
    "(dotted name, call node) for every call in `tree`."
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f, parts = node.func, []
            while isinstance(f, ast.Attribute): parts.append(f.attr); f = f.value
            if isinstance(f, ast.Name): parts.append(f.id)
            yield '.'.join(reversed(parts)), node


SOURCES = sorted(PKG.glob('*.py'))
UNSAFE = {'os.system', 'os.popen', 'eval', 'exec', 'pickle.load', 'pickle.loads', 'pickle.Unpickler', 'marshal.loads',
          'shelve.open'}
UNSAFE_PREFIXES = ('subprocess.', 'os.exec', 'os.spawn', 'torch.hub.')
SAFE = {'torch.hub.get_dir'}      # a path, read to say where torchvision keeps downloaded weights (backbones.resnet_body offline)


@pytest.mark.parametrize('src', SOURCES, ids=[p.name for p in SOURCES])
def test_package_runs_no_shell_and_loads_only_plain_data(src):
    tree = ast.parse(src.read_text())
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
              {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imports & {'subprocess', 'pty', 'shlex', 'marshal', 'shelve', 'dill', 'joblib'}, imports
    for name, call in _calls(tree):
        where = f'{src.name}:{call.lineno}: {name}(...)'
        assert name in SAFE or (name not in UNSAFE and not name.startswith(UNSAFE_PREFIXES)), where
        assert not any(k.arg == 'allow_pickle' for k in call.keywords), where
        assert not any(k.arg == 'shell' for k in call.keywords), where
        if name == 'torch.load':
            wo = [k for k in call.keywords if k.arg == 'weights_only']
            assert wo and isinstance(wo[0].value, ast.Constant) and wo[0].value.value is True, \
                f'{src.name}:{call.lineno}: torch.load without weights_only=True'
        if name == '__import__':
            assert [type(a) for a in call.args] == [ast.Constant], f'{src.name}:{call.lineno}: dynamic import'


def test_the_audit_sees_every_torch_load():
    "The checks above are not vacuous: the package does call torch.load, and only in the two readers that need it."
    found = sorted(f'{p.name}:{c.lineno}' for p in SOURCES for n, c in _calls(ast.parse(p.read_text())) if n == 'torch.load')
    assert [f.split(':')[0] for f in found] == ['backbones.py', 'checkpoints.py'], found
