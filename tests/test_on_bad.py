"""`stitchup_train --on_bad skip`: a corrupt image of a researcher's own VOC/COCO copy, through the console script.

The default (`error`) stops the run naming the file and the flag that trains without it; `skip` trains without the
unreadable training images, names them (a warning, and the run's skipped_images.json), records the option in config.json and
keys the run's labels digest (`labels_sha`) by them; a resume with another `on_bad` is refused; an unreadable test image
stops the run either way (the test set is scored on every image); a preset that reads no files refuses `skip`. Fixture
datasets in the real formats (`stitchup_nb.fixtures`), ResNet-18 from scratch at 32 px for one epoch: seconds a run.
"""
import json, subprocess, sys, textwrap

import numpy as np

from stitchup_nb.appendix import read_appendix
from stitchup_nb.fixtures import make_appendix, make_coco, make_voc
from stitchup_nb.labels import labels_digest

SMALL = ['--arch', 'resnet18', '--no-pretrained', '--size', '32', '--data_factor', '1', '--bs', '4', '--epochs', '1',
         '--warmup_iters', '2', '--quiet']


# one process runs several stitchup_train commands, one after another, as its console script does (a process start is
# most of a refused command's time): each command's exit status and what it wrote to stderr
DRIVER = textwrap.dedent('''
    import contextlib, io, json, sys
    from stitchup_nb.cli import stitchup_train
    out = []
    for args in json.loads(sys.argv[1]):
        sys.argv, err, code = ['stitchup_train', *args], io.StringIO(), 0
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try: stitchup_train()
            except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
        out.append([code, err.getvalue()])
    print(json.dumps(out))
''')


def train(tmp, *commands) -> list:
    "Each command (the arguments of stitchup_train) run in turn in one process, in folder `tmp`: `[(exit status, stderr), ...]`."
    (tmp/'driver.py').write_text(DRIVER)       # a script's file: fastcore's call_parse reads sys.argv for a module's caller
    p = subprocess.run([sys.executable, tmp/'driver.py', json.dumps([[str(a) for a in c] for c in commands])],
                       capture_output=True, text=True, cwd=tmp, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.splitlines()[-1])


def voc_run(tmp):
    "A 12-image VOC-MLT (its official noisy labels at 0.5) and the options that train on it; the files of its images."
    voc = make_voc(tmp, n2012=12, n2007=8)
    y = voc['VOC2012']
    app = make_appendix(tmp/'appendix', y['ids'], y['labels'], noise_rates=(0.5,))
    jpeg = lambda i: voc['root']/'VOC2012'/'JPEGImages'/f'{i}.jpg'
    test = voc['root']/'VOC2007'/'JPEGImages'/f"{voc['VOC2007']['sets']['test'][0]}.jpg"
    return ['--dataset', 'voc', '--data_root', voc['root'], '--appendix', app, *SMALL], app, [jpeg(i) for i in y['ids']], test


def test_a_corrupt_training_image_is_skipped_named_and_keys_the_run(tmp_path):
    opts, app, files, _ = voc_run(tmp_path)
    bad = files[3]; bad.write_bytes(bad.read_bytes()[:150])          # a download cut short
    work = tmp_path/'run'
    (stop, said), (code, err), (again, refused) = train(
        tmp_path, [*opts, '--work_dir', tmp_path/'stop'], [*opts, '--on_bad', 'skip', '--work_dir', work],
        [*opts, '--work_dir', work, '--resume', 'auto', '--epochs', '2'])       # another on_bad on resume
    assert stop != 0 and f'{bad}: cannot decode image' in said and 'pass --on_bad skip to train without it' in said, said
    assert not (tmp_path/'stop'/'config.json').exists()
    assert code == 0, err[-3000:]
    assert 'skipped 1 of 12 unreadable images (on_bad="skip")' in err and str(bad) in err, err[-2000:]
    assert json.loads((work/'skipped_images.json').read_text()) == {'skipped': [str(bad)]}
    cfg = json.loads((work/'config.json').read_text())
    noisy = np.delete(read_appendix(app).noisy[.5], 3, 0)         # the kept images' own rows
    assert cfg['on_bad'] == 'skip' and cfg['labels_sha'] == labels_digest(noisy, [bad]) != labels_digest(noisy)
    assert again != 0 and "on_bad 'skip' -> 'error'" in refused, refused[-2000:]         # refused, naming it, writing nothing
    assert [f.name for f in work.glob('epoch_*.pth')] == ['epoch_1.pth']


def test_an_unreadable_test_image_stops_a_skip_run(tmp_path):
    opts, _, _, test = voc_run(tmp_path)
    test.write_bytes(b'not an image')
    [(code, err)] = train(tmp_path, [*opts, '--on_bad', 'skip', '--work_dir', tmp_path/'run'])
    assert code != 0 and f'{test}: cannot decode image' in err, err[-2000:]
    assert 'it is a test image' in err and '--on_bad skip drops training images only' in err, err[-2000:]
    assert not (tmp_path/'run'/'config.json').exists()


def test_coco_skips_as_voc_and_a_default_run_writes_no_list(tmp_path):
    "COCO-MLT skips alike; a run replacing a skip run (--overwrite) at the default leaves no list of the old run behind."
    coco = make_coco(tmp_path, n_train=14, n_val=6)
    y = coco['train2017']
    keep = [i for i, l in enumerate(y['labels']) if l.any()][:12]
    app = make_appendix(tmp_path/'appendix', [y['ids'][i] for i in keep], y['labels'][keep], id_file='img_id.pkl',
                        clean_file=False, noise_rates=(0.5,))
    opts = ['--dataset', 'coco', '--data_root', coco['root'], '--appendix', app, *SMALL]
    bad = coco['root']/'train2017'/f'{y["ids"][keep[2]]:012d}.jpg'
    good = bad.read_bytes(); bad.write_bytes(b'\xff\xd8 not a jpeg')
    work = tmp_path/'run'
    [(code, err)] = train(tmp_path, [*opts, '--on_bad', 'skip', '--work_dir', work])
    assert code == 0, err[-3000:]
    assert json.loads((work/'skipped_images.json').read_text()) == {'skipped': [str(bad)]}
    bad.write_bytes(good)
    [(code, err)] = train(tmp_path, [*opts, '--work_dir', work, '--overwrite'])
    assert code == 0, err[-3000:]
    assert not (work/'skipped_images.json').exists() and json.loads((work/'config.json').read_text())['on_bad'] == 'error'


def test_a_preset_that_reads_no_files_refuses_skip(tmp_path):
    (digits, said), (voc, bad) = train(tmp_path, ['--dataset', 'digits-small', '--on_bad', 'skip', '--work_dir', tmp_path/'run'],
                                       ['--dataset', 'voc', '--on_bad', 'maybe', '--work_dir', tmp_path/'run'])   # before any data is read
    assert digits == 2 and 'stitchup_train: --on_bad skip is not used by the digits-small preset, which reads no files; drop it' in said, said
    assert voc == 2 and "--on_bad must be error or skip, got 'maybe'" in bad, bad


def test_a_run_from_before_on_bad_resumes(tmp_path):
    """A VOC run whose config.json and checkpoint predate `on_bad` (they lack it) trained as its default, `error`: a resume
    with the default goes on, where it was refused ("on_bad None -> 'error'"); with `skip` it is another run, refused."""
    import torch
    opts, _, _, _ = voc_run(tmp_path)
    work = tmp_path/'run'
    [(code, err)] = train(tmp_path, [*opts, '--work_dir', work])
    assert code == 0, err[-3000:]
    cfg = json.loads((work/'config.json').read_text()); del cfg['on_bad']
    (work/'config.json').write_text(json.dumps(cfg))
    state = torch.load(work/'epoch_1.pth', weights_only=False); del state['config']['on_bad']
    torch.save(state, work/'epoch_1.pth')
    (skip, refused), (code, err) = train(tmp_path, [*opts, '--work_dir', work, '--resume', 'auto', '--epochs', '2', '--on_bad', 'skip'],
                                         [*opts, '--work_dir', work, '--resume', 'auto', '--epochs', '2'])
    assert skip != 0 and "on_bad None -> 'skip'" in refused, refused[-2000:]
    assert code == 0, err[-3000:]
    assert sorted(f.name for f in work.glob('epoch_*.pth')) == ['epoch_1.pth', 'epoch_2.pth']


def test_a_skip_run_takes_a_noise_files_rows_by_image_id(tmp_path):
    """A noisy-label file of the whole training set (a row per appendix id, as `stitchup_noise` writes one for a preset) on a
    run that skips an unreadable image: each kept image trains on its own row, found by id (it was refused: the file's
    rows are by position and one fewer image shifted them)."""
    from stitchup_nb.noise import add_noise, save_noisy
    opts, app, files, _ = voc_run(tmp_path)
    clean = read_appendix(app).labels
    noisy = add_noise(clean, .5, seed=7)                              # not the official draw: the labels are the file's
    assert (noisy != read_appendix(app).noisy[.5]).any()
    noise_file = save_noisy(tmp_path/'noisy'/'class_freq_0.5noise.pkl', noisy, clean)
    bad = files[3]; bad.write_bytes(b'not a jpeg')
    work = tmp_path/'run'
    [(code, err)] = train(tmp_path, [*opts, '--on_bad', 'skip', '--noise_file', noise_file, '--work_dir', work])
    assert code == 0, err[-3000:]
    cfg = json.loads((work/'config.json').read_text())
    assert cfg['labels_sha'] == labels_digest(np.delete(noisy, 3, 0), [bad]), cfg['labels_sha']   # image 4 on row 4, not row 3
    assert cfg['labels_sha'] != labels_digest(noisy[:11], [bad])
