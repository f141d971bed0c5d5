"""A researcher's own long-tailed multi-label set, neither VOC nor COCO: a folder of JPEGs and a `file,labels` CSV per split
(labels joined by `|`), read by a loader of their own (`@register_source`) under a preset made from the kit's
(`nbs/00g_sources.ipynb`, "Your own data set"):

- a loader whose test set names its classes in another order than the training set's (each split's in the order its CSV
  names them) is refused before anything trains, naming the loader's file and the fix: it trained and scored each test
  column against another class without a word;
- an image file the loader names that is not there is said before training: a loader of paths met it when a batch drew
  it, a test image's only once training was over;
- a test set that lists images of the training set (a row copied into both CSVs, a path to the same file) is refused
  before training, naming how many and the first few: it trained on them and scored them as unseen;
- `stitchup_noise --dataset NAME` of a preset that names no appendix folder draws the noise on the loader's training
  labels, and `stitchup_train --noise_file` trains on the file and resumes: it stopped on a KeyError 'appendix'; its
  `--out` in a folder of the current one named like the preset is written there, not refused as an appendix folder's;
- a preset made from voc's for it prints no VOC-MLT paper mAP beside the run's, nor warns that its appendix lacks the
  authors' noisy labels: it did both, the preset's `paper` copied with the rest;
- the console scripts, under `STITCHUP_SETUP`, train and score a run on it;
- a loader registered with `reads=('data_root',)` has `--appendix` refused, naming the flag and the fix: a run took it,
  recorded it in its config.json and the loader ignored it; `reads_files=True` (both file options) takes it as before;
- the console scripts' `--dataset` help lists the presets a setup script registers: it listed the kit's four.
"""
import csv, json, os, subprocess, textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ['cat', 'dog', 'car', 'boat', 'kite']
LOADER = '''
import csv
from pathlib import Path
import numpy as np
from stitchup_nb.data import LabelledSet, class_groups
from stitchup_nb.methods import PRESETS
from stitchup_nb.sources import register_source

def split_labels(path, classes=None):
    "Image paths, N×C labels and the class list of a file,labels CSV ('|' between labels); classes: this file's, as they come."
    rows = list(csv.DictReader(open(path, newline='')))
    names = [r['labels'].split('|') for r in rows]
    classes = classes or list(dict.fromkeys(l for ls in names for l in ls))
    y = np.array([[c in ls for c in classes] for ls in names], np.uint8)
    return [Path(path).parent/'images'/r['file'] for r in rows], y, classes

@register_source(NAME, **READS)
def load_own(preset, data_root=None, appendix=None, size=None, data_seed=0):
    root = Path(data_root or preset['data_root'])
    tr_items, tr_y, classes = split_labels(root/'train.csv')
    te_items, te_y, te_classes = split_labels(root/'test.csv', None if APART else classes)
    groups = class_groups(tr_y.sum(0), head=20, tail=8)
    return (LabelledSet(tr_items, tr_y, classes, groups, ids=[p.stem for p in tr_items], name='own train'),
            LabelledSet(te_items, te_y, te_classes, class_groups(te_y.sum(0)), ids=[p.stem for p in te_items], name='own test'),
            None)

PRESETS[NAME] = dict(PRESETS['digits'], source=NAME, data_root=ROOT, size=32)
'''


def _own_set(root:Path) -> Path:
    "A long-tailed 5-class set: 60 training and 30 test JPEGs (a coloured bar per class), train.csv and test.csv."
    rng = np.random.default_rng(0)
    (root/'images').mkdir(parents=True)
    for split, n in (('train', 60), ('test', 30)):
        rows = []
        for i in range(n):
            y = rng.random(len(CLASSES)) < [.7, .45, .3, .15, .1]
            if split == 'test' and i < len(CLASSES): y[:] = False; y[-1 - i] = True   # every class has a test positive
            if not y.any(): y[0] = True
            im = np.full((24, 30, 3), 20, np.uint8)
            for c in np.flatnonzero(y): im[:, 6 * c:6 * c + 5] = (40 * c + 60, 255 - 40 * c, 120)
            Image.fromarray(im).save(root/'images'/f'{split}_{i}.jpg')
            rows.append((f'{split}_{i}.jpg', '|'.join(np.array(CLASSES)[y])))
        with open(root/f'{split}.csv', 'w', newline='') as fh: csv.writer(fh).writerows([('file', 'labels'), *rows])
    return root


@pytest.fixture
def own(tmp_path):
    "Register the loader and preset `own` (test classes sorted apart from the training set's when asked); removed after."
    from stitchup_nb.methods import PRESETS
    from stitchup_nb.sources import SOURCES
    root = _own_set(tmp_path/'own_set')
    def register(apart=False, reads=dict(reads_files=True)):     # reads_files=True: both file options, as a setup script before reads
        SOURCES.pop('own', None)
        exec(LOADER, dict(NAME='own', ROOT=str(root), APART=apart, READS=reads))
        return root
    yield register
    PRESETS.pop('own', None); SOURCES.pop('own', None)


def test_a_test_set_of_its_own_class_order_is_refused_before_training(own, tmp_path):
    "Each split's classes in the order its CSV names them: refused, not scored column by column against other classes."
    from stitchup_nb.train import run_training, train_config
    own(apart=True)
    cfg = train_config(dataset='own', method='bce', epochs=1, warmup_iters=2, pretrained=False, quiet=True,
                       work_dir=str(tmp_path/'run'))
    with pytest.raises(ValueError) as e: run_training(cfg)
    said = str(e.value)
    assert "data source 'own' of the own preset (load_own" in said and "class 0 is 'cat' in the training set and 'kite' in the test set" in said, said
    assert "build both sets' labels from one class list" in said, said
    assert not (tmp_path/'run'/'epoch_1.pth').exists()                  # nothing trained


def test_a_missing_test_image_is_named_before_training(own, tmp_path):
    "A loader of paths whose test set names a file that is not there: refused before training, not when the test set is scored."
    from stitchup_nb.train import run_training, train_config
    root = own()
    (root/'images'/'test_7.jpg').unlink()
    cfg = train_config(dataset='own', method='bce', epochs=1, warmup_iters=2, pretrained=False, quiet=True,
                       work_dir=str(tmp_path/'run'))
    with pytest.raises(FileNotFoundError) as e: run_training(cfg)
    assert f"1 of the 30 image files of its test set (own test) are not there, e.g. {root/'images'/'test_7.jpg'}" in str(e.value), e.value
    assert not (tmp_path/'run'/'epoch_1.pth').exists()                  # nothing trained



def test_a_test_set_listing_training_images_is_refused_before_training(own, tmp_path):
    "A CSV split done wrong (training rows copied into test.csv, one through a link): refused, not scored as unseen images."
    from stitchup_nb.train import run_training, train_config
    root = own()
    (root/'images'/'seen.jpg').symlink_to(root/'images'/'train_5.jpg')
    rows = list(csv.reader(open(root/'train.csv', newline='')))
    with open(root/'test.csv', 'a', newline='') as fh: csv.writer(fh).writerows([rows[3], ['seen.jpg', rows[6][1]]])
    cfg = train_config(dataset='own', method='bce', epochs=1, warmup_iters=2, pretrained=False, quiet=True,
                       work_dir=str(tmp_path/'run'))
    with pytest.raises(ValueError) as e: run_training(cfg)
    said = str(e.value)
    assert "data source 'own' of the own preset (load_own" in said, said
    assert "2 of the 32 images of the test set (own test) are images of the training set too (own train)" in said, said
    assert (f"test row 30: {root/'images'/'train_2.jpg'} (training row 2); test row 31: {root/'images'/'seen.jpg'} "
            f"(training row 5: {root/'images'/'train_5.jpg'})") in said, said
    assert 'Split the images so that no file is in both' in said, said
    assert not (tmp_path/'run'/'epoch_1.pth').exists()                  # nothing trained

def test_a_file_system_without_inode_numbers_compares_paths(tmp_path, monkeypatch):
    "st_ino 0 (some Windows and network file systems; Python: it names a file only where non-zero): paths, not one file."
    # Before, every file had the key (st_dev, 0): each test image was 'an image of the training set' and a right split refused
    from stitchup_nb import sources
    from stitchup_nb.data import LabelledSet, class_groups
    files = [tmp_path/f'{k}.png' for k in range(4)]
    for k, f in enumerate(files): Image.new('RGB', (8, 8), (60 * k, 0, 0)).save(f)
    (tmp_path/'link.png').symlink_to(files[0])
    stat = os.stat
    monkeypatch.setattr(sources.os, 'stat', lambda p, *a, **kw: os.stat_result((*stat(p, *a, **kw)[:1], 0, *stat(p, *a, **kw)[2:10])))
    assert os.stat(files[0]).st_ino == 0
    y = np.eye(2, dtype=np.uint8)[[0, 1]]
    sets = lambda a, b: [LabelledSet(items, y, ['a', 'b'], class_groups(y.sum(0)), name=n) for items, n in ((a, 'train'), (b, 'test'))]
    sources.check_split(*sets(files[:2], files[2:]))                                       # apart: passes
    assert sources.shared_images(*sets(files[:2], [files[2], tmp_path/'link.png'])) == [(0, 1)]   # a link to a training file
    assert sources.shared_images(*sets(files[:2], [tmp_path/'.'/'1.png', files[3]])) == [(1, 0)]  # a second spelling


def test_stitchup_noise_draws_on_the_loaders_training_labels(own, tmp_path, monkeypatch):
    "A preset with no appendix folder: stitchup_noise takes the loader's training labels, and a run trains on the file."
    from stitchup_nb.labels import load_benchmark
    from stitchup_nb.noise import load_noisy
    from stitchup_nb.noise_cli import stitchup_noise
    from stitchup_nb.cli import stitchup_train
    own()
    stitchup_noise(dataset='own', noise_rate=.4, out=str(tmp_path/'own_noisy.pkl'))
    noisy, clean = load_noisy(tmp_path/'own_noisy.pkl')
    train = load_benchmark('own')[0]
    assert (clean == train.labels).all() and (noisy != clean).any(), (clean.sum(0), noisy.sum(0))
    run = dict(dataset='own', method='bce', noise_file=str(tmp_path/'own_noisy.pkl'), warmup_iters=2, pretrained=False,
               quiet=True, work_dir=str(tmp_path/'run'))
    stitchup_train(**run, epochs=1)
    stitchup_train(**run, epochs=2, resume='auto')                     # goes on from epoch 1
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert cfg['noise_source'] == f"the noisy-label file {tmp_path/'own_noisy.pkl'}", cfg['noise_source']
    assert len(json.loads((tmp_path/'run'/'metrics.json').read_text())['epochs']) == 2
    monkeypatch.chdir(tmp_path); (tmp_path/'own').mkdir()               # a folder named like the preset: no appendix folder
    stitchup_noise(dataset='own', noise_rate=.4, out='own/noisy.pkl')
    assert (load_noisy(tmp_path/'own'/'noisy.pkl')[1] == train.labels).all()


def test_a_preset_made_from_vocs_keeps_no_paper(own, tmp_path, capsys):
    "A preset made from voc's for the set: no VOC-MLT paper mAP printed beside the run's, no warning about official labels."
    import warnings
    from stitchup_nb.methods import PRESETS
    from stitchup_nb.cli import stitchup_train
    own()
    PRESETS['own'] = dict(PRESETS['voc'], source='own', data_root=PRESETS['own']['data_root'], appendix=None,
                          arch='digits_cnn', train_stages=5, size=32)            # the small CNN: a test in seconds
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter('always')
        stitchup_train(dataset='own', method='bce', noise_rate=.5, epochs=1, warmup_iters=2, pretrained=False, work_dir=None)
    out = capsys.readouterr().out
    assert 'mAP (%) on the test set' in out and 'the paper' not in out, out[-1500:]
    assert not [w for w in said if 'official' in str(w.message)], [str(w.message) for w in said]


def test_the_console_scripts_train_and_score_it(tmp_path):
    "STITCHUP_SETUP=own.py: stitchup_train trains the full method on the set, stitchup_test scores it."
    from tests.conftest import BIN
    root = _own_set(tmp_path/'own_set')
    (tmp_path/'own.py').write_text(textwrap.dedent(f'NAME, ROOT, APART, READS = "own", {str(root)!r}, False, dict(reads_files=True)\n') + LOADER)
    env = {**os.environ, 'STITCHUP_CACHE': os.environ.get('STITCHUP_CACHE', str(ROOT/'data'/'cache')), 'OMP_NUM_THREADS': '1',
           'STITCHUP_SETUP': str(tmp_path/'own.py')}
    run = lambda *a: subprocess.run([str(x) for x in a], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    train = [BIN/'stitchup_train', '--dataset', 'own', '--noise_rate', '0.3', '--warmup_iters', '2', '--no-pretrained',
             '--quiet', '--work_dir', 'run']
    r = run(*train, '--epochs', '1')
    assert r.returncode == 0 and (tmp_path/'run'/'epoch_1.pth').is_file(), r.stderr[-3000:]
    r = run(BIN/'stitchup_test', 'run')
    assert r.returncode == 0 and 'on own test, 30 images' in r.stdout, (r.stdout[-2000:], r.stderr[-2000:])
    final = json.loads((tmp_path/'run'/'metrics.json').read_text())['final']
    assert set(final) >= {'ensemble', 'random', 'balanced'}, final


def test_a_file_option_its_loader_does_not_read_is_refused(own, tmp_path):
    "reads=('data_root',): --appendix refused before anything is written, naming the flag and the fix; reads_files=True: both."
    from stitchup_nb.train import train_config
    run = dict(dataset='own', method='bce', epochs=1, quiet=True, work_dir=str(tmp_path/'run'))
    own(reads=dict(reads=('data_root',)))
    with pytest.raises(ValueError) as e: train_config(**run, appendix=str(tmp_path/'app'))
    assert ("`appendix` is not used by the own preset, whose data source 'own' reads `data_root` alone (registered with "
            "reads=('data_root',)): drop it, or have its loader read appendix and register it with reads=('data_root', 'appendix')"
            ) == str(e.value), e.value
    assert not (tmp_path/'run').exists()
    assert train_config(**run, data_root=str(tmp_path))['data_root'] == str(tmp_path)      # the option it reads: taken
    own(reads=dict(reads_files=True))                                                   # a setup script from before `reads`
    assert train_config(**run, appendix=str(tmp_path/'app'))['appendix'] == str(tmp_path/'app')



def test_the_console_scripts_refuse_an_unread_file_option(tmp_path):
    "STITCHUP_SETUP=own.py (reads=('data_root',)): stitchup_train and stitchup_noise refuse --appendix, naming the flag and the fix."
    from tests.conftest import BIN
    root = _own_set(tmp_path/'own_set')
    (tmp_path/'own.py').write_text(f'NAME, ROOT, APART, READS = "own", {str(root)!r}, False, dict(reads=("data_root",))\n' + LOADER)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'STITCHUP_SETUP': str(tmp_path/'own.py')}
    run = lambda *a: subprocess.run([str(x) for x in a], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    for script, more in (('stitchup_train', ['--work_dir', 'run']), ('stitchup_noise', ['--out', 'noisy.pkl'])):
        r = run(BIN/script, '--dataset', 'own', '--appendix', 'app', *more)
        assert r.returncode == 2 and (f"{script}: --appendix is not used by " + ('the own preset' if script == 'stitchup_train' else
                                      '--dataset own') + ", whose data source 'own' reads --data_root alone") in r.stderr, r.stderr[-2000:]
        assert 'register it with reads=' in r.stderr, r.stderr[-2000:]
    assert not (tmp_path/'run').exists() and not (tmp_path/'noisy.pkl').exists()


def test_the_console_scripts_help_lists_its_preset(tmp_path):
    """STITCHUP_SETUP=own.py: every console script's --dataset help lists the presets as they are then, own among them
    marked as a setup script's, each preset once (stitchup_train's said them twice: its declared help listed the kit's), the
    kit's each with its note (`KIT_PRESETS`, 07a_methods): a newcomer learns that digits is embedded and offline, and
    digits-small a smoke test."""
    # Before, no script's help said it (59ea466 dropped stitchup_train's 'digits (embedded), digits-small (smoke test)')
    from tests.conftest import BIN
    (tmp_path/'own.py').write_text(f'NAME, ROOT, APART, READS = "own", {str(tmp_path)!r}, False, dict(reads=("data_root",))\n' + LOADER)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'STITCHUP_SETUP': str(tmp_path/'own.py'), 'COLUMNS': '500'}   # one line a flag
    for script in ('stitchup_train', 'stitchup_noise', 'stitchup_estimate_noise'):
        r = subprocess.run([str(BIN/script), '--help'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        said = next((l for l in r.stdout.splitlines() if l.strip().startswith('--dataset')), '')
        kit = ("the kit's: digits (embedded, offline: trains on a CPU in minutes), digits-small (a smoke test, 304 images), "
               "voc (Pascal VOC 2007+2012, your copy: --data_root), coco (MS-COCO 2017, your copy: --data_root);")
        assert r.returncode == 0 and kit in said and "a setup script's: own)" in said, (script, r.stdout[-3000:])
        assert said.count('digits-small') == 1 and 'The presets (--dataset)' not in r.stdout, (script, r.stdout[-3000:])


def test_the_console_scripts_help_lists_no_preset_a_setup_script_deleted(tmp_path):
    """STITCHUP_SETUP=drop.py, which deletes a kit's preset (`del PRESETS['digits-small']`): no console script's --dataset
    help names it; the kit's others are listed as they are then."""
    # Before, stitchup_train's declared help named the kit's four presets in fixed words, the deleted one among them
    from tests.conftest import BIN
    (tmp_path/'drop.py').write_text("from stitchup_nb.methods import PRESETS\ndel PRESETS['digits-small']\n")
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'STITCHUP_SETUP': str(tmp_path/'drop.py'), 'COLUMNS': '500'}   # one line a flag
    for script in ('stitchup_train', 'stitchup_noise', 'stitchup_estimate_noise'):
        r = subprocess.run([str(BIN/script), '--help'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        said = next((l for l in r.stdout.splitlines() if l.strip().startswith('--dataset')), '')
        assert r.returncode == 0 and "(the kit's: digits (embedded, offline: trains on a CPU in minutes), voc (" in said, \
            (script, r.stdout[-3000:] + r.stderr[-2000:])
        assert 'digits-small' not in said, (script, said)


def test_stitchup_noise_source_is_the_folder_named_like_a_preset(own, tmp_path, monkeypatch):
    """`stitchup_noise --source own` takes the clean labels of the folder `own` (an appendix folder), not those of the preset
    `own` whose loader reads no appendix: --source names a class_freq.pkl or an appendix folder, and a preset's name
    was taken for its loader."""
    from stitchup_nb.fixtures import make_appendix
    from stitchup_nb.noise import load_noisy
    from stitchup_nb.noise_cli import stitchup_noise
    own()
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 7)) < .3).astype(np.uint8); labels[np.arange(40), rng.integers(0, 7, 40)] = 1
    make_appendix(tmp_path/'own', [f'{i:06d}' for i in range(40)], labels)
    monkeypatch.chdir(tmp_path)
    stitchup_noise(source='own', noise_rate=.4, out='noisy.pkl')
    assert (load_noisy(tmp_path/'noisy.pkl')[1] == labels).all()        # the folder's 40 x 7, not the loader's
