"""The widgets as a person drives them: set the controls, check the views and chip states that follow.

A hand-made set pins the rules (a known missing label restored by a known partner); Digits-MLT checks
speed (< 0.3 s a view on the CPU); a file-backed set checks that a view decodes only its own images.
"""
import base64, json, time

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

import stitchup_nb.data as data
from stitchup_nb.data import LabelledSet
from stitchup_nb.digits import HINTING, digits_mlt
from stitchup_nb.noise import add_noise
from stitchup_nb.metrics import correction_quality
from stitchup_nb.train import build_learner, train_config
from stitchup_nb.colearn import THRESHOLDS
from stitchup_nb.browser import chips_html, label_chips, union_chips, wrapped
from stitchup_nb.widgets import StitchBrowser, union_tally
from stitchup_nb.corrections import CorrectionBrowser

GROUPS3 = {'head': [0], 'medium': [1], 'tail': [2]}
MAX_VIEW_S = 0.3


@pytest.fixture
def tiny():
    "Image 0 lost `dog` to noise; image 1 holds it; image 2 carries a spurious `owl`; image 3 is all owl."
    imgs = np.stack([np.full((8, 8, 3), 60 * k, np.uint8) for k in range(4)])
    clean = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]])
    noisy = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]])
    return LabelledSet(imgs, clean, ['cat', 'dog', 'owl'], GROUPS3, name='tiny'), noisy


@pytest.fixture(scope='module')
def digits():
    train, _ = digits_mlt()
    return train, add_noise(train.labels, 0.5, seed=0)


def states(html):
    "The `(class, state)` pairs of the chips in an HTML fragment, in order."
    import re
    return [(int(c), s) for s, c in re.findall(r'data-state="(\w+)" data-class="(\d+)"', html)]


# --- StitchBrowser -------------------------------------------------------------------------------

def test_partner_restores_the_missing_label(tiny):
    ds, noisy = tiny
    sb = StitchBrowser(ds, noisy)
    sb.widget
    sb.partner_box.value = 1                                     # pick the partner that holds `dog`
    assert (sb.anchor, sb.partner) == (0, 1)
    assert sb.last_view['chips']['anchor']['noisy'] == {0: 'correct', 1: 'missing'}
    assert sb.last_view['chips']['stitched']['union'] == {0: 'correct', 1: 'restored'}
    assert states(sb.panels['stitched'][2].value) == [(0, 'clean'), (1, 'clean'), (0, 'correct'), (1, 'restored')]
    sb.partner_box.value = 2                                     # this partner brings a spurious `owl` instead
    assert sb.last_view['chips']['stitched']['union'] == {0: 'correct', 1: 'missing', 2: 'brought'}
    assert 'partner #2' in sb.panels['partner'][0].value


def test_slider_and_filters_move_the_anchor(tiny):
    ds, noisy = tiny
    sb = StitchBrowser(ds, noisy)
    sb.widget
    sb.slider.value = 3
    assert sb.anchor == 3 and 'anchor #3' in sb.panels['anchor'][0].value
    assert sb.last_view['chips']['anchor']['noisy'] == {2: 'correct'}
    sb.group_dd.value = 'medium'                                 # images holding dog (clean or noisy): 0, 1
    assert sb.cands.tolist() == [0, 1] and sb.slider.options == (('0', 0), ('1', 1)) and sb.anchor == 0
    sb.slider.value = 1
    assert sb.anchor == 1
    sb.group_dd.value = 'any'; sb.cls_dd.value = 2               # owl: 2 (noisy only) and 3
    assert sb.cands.tolist() == [2, 3] and sb.anchor == 2
    assert sb.last_view['chips']['anchor']['noisy'] == {0: 'correct', 2: 'spurious'}
    sb.group_dd.value = 'head'                                   # owl and cat: image 2 only
    assert sb.cands.tolist() == [2] and sb.status.value == '1 image matches'


def test_partner_controls_follow_the_sampler_rule(tiny):
    ds, noisy = tiny
    sb = StitchBrowser(ds, noisy, seed=3)
    sb.widget
    assert sb.partner == sb.draw_partner(0, 0) and sb.partner in (0, 1, 2)      # images whose noisy labels hold cat
    seen = set()
    for k in range(1, 25):
        sb.redraw.click()
        assert sb.draw == k and sb.partner == sb.draw_partner(0, k)
        seen.add(sb.partner)
    assert seen == {0, 1, 2}
    sb.slider.value = 2                                          # anchor 2: noisy cat and owl
    assert [v for _, v in sb.partner_dd.options] == ['any', 0, 2] and sb.draw == 0
    sb.partner_dd.value = 2                                      # partner must share owl: 2 or 3
    assert sb.partner in (2, 3) and sb.partner_box.value == sb.partner


def test_running_tally_counts_viewed_pairs(tiny):
    ds, noisy = tiny
    sb = StitchBrowser(ds, noisy)
    sb.widget
    sb.partner_box.value = 1
    assert sb.seen == {0: 1}
    assert 'the 1 pair viewed' in sb.tally_html.value
    t = union_tally(noisy, [0], [1], GROUPS3, ds.labels)
    assert t.loc['all', 'restored'] == 1 and t.loc['all', 'anchor recall %'] == 50 and t.loc['all', 'union recall %'] == 100
    sb.slider.value = 3
    assert len(sb.seen) == 2 and 'the 2 pairs viewed' in sb.tally_html.value
    for column in ('group', 'anchor recall %', 'union spurious %', 'restored', 'brought'):     # every column explained
        assert f'<b>{column}</b>: ' in sb.tally_html.value
    assert 'overflow-x:auto' in sb.tally_html.value                  # a wide tally scrolls instead of running off the page


def test_noisy_only_set_has_no_truth(tiny):
    ds, noisy = tiny
    real = LabelledSet(ds.items, noisy, ds.classes, ds.groups)
    sb = StitchBrowser(real)
    v = sb.view(0, 2)
    assert v['chips']['anchor'] == {'noisy': {0: 'label'}}
    assert v['chips']['stitched'] == {'union': {0: 'label', 2: 'added'}}
    assert list(sb.tally().columns) == ['pairs', 'labels per anchor', 'labels per union', 'added by partner %']
    sb.widget
    legend = sb.widget.children[3].value
    assert 'data-state="label"' in legend and 'data-state="correct"' not in legend     # the legend: label / added only


def test_show_draws_the_same_view(tiny):
    ds, noisy = tiny
    fig = StitchBrowser(ds, noisy).show(0, partner=1)
    axs = fig.axes
    assert [a.get_title() for a in axs] == ['anchor #0', 'partner #1 (shares cat)', 'stitched (input level)']
    assert np.array_equal(axs[2].images[0].get_array()[:, :4], np.zeros((8, 4, 3), np.uint8))
    texts = [t.get_text() for t in axs[2].texts]
    assert texts == ['clean:', 'cat', 'dog', 'union:', 'cat', 'dog']
    plt.close(fig)


def test_chip_helpers():
    assert label_chips([0, 1, 1], [1, 1, 0]) == {0: 'missing', 1: 'correct', 2: 'spurious'}
    assert union_chips([1, 0, 0], [1, 0, 1], [1, 0, 0], [1, 0, 1]) == {0: 'correct', 2: 'correct'}
    assert states(chips_html({'noisy': {2: 'spurious'}}, ['a', 'b', 'c'])) == [(2, 'spurious')]


def test_file_backed_set_decodes_only_the_viewed_images(tmp_path, monkeypatch, tiny):
    ds, noisy = tiny
    paths = []
    for k, (h, w) in enumerate([(30, 40), (50, 20), (16, 16), (24, 60)]):
        paths.append(tmp_path/f'{k}.png')
        Image.fromarray(np.full((h, w, 3), 60 * k, np.uint8)).save(paths[-1])
    files = LabelledSet(paths, ds.labels, ds.classes, ds.groups, name='files')
    decoded = []
    real = data.load_image
    monkeypatch.setattr(data, 'load_image', lambda p, size=None: decoded.append(p.name) or real(p, size))
    sb = StitchBrowser(files, noisy, size=32)
    sb.widget
    assert decoded == ['0.png', f'{sb.partner}.png']                      # the first view: anchor 0 and its partner
    decoded.clear()
    j = 1 if sb.partner != 1 else 2
    sb.partner_box.value = j
    assert decoded == ['0.png', f'{j}.png']
    assert all(v.shape == (32, 32, 3) for v in sb.last_view['images'].values())
    v = StitchBrowser(files, noisy, size=None).view(0, 1)                   # original sizes: partner fitted to the anchor
    assert v['images']['partner'].shape == v['images']['stitched'].shape == (30, 40, 3)


def test_stitch_view_is_fast_on_digits(digits):
    train, noisy = digits
    sb = StitchBrowser(train, noisy)
    sb.widget
    times = []
    for k in range(1, 21):
        t0 = time.perf_counter(); sb.slider.value = 37 * k; times.append(time.perf_counter() - t0)
    sb.redraw.click()
    assert sb.anchor == sb.cands[37 * 20] and len(sb.view_times) == 22
    print(f'StitchBrowser view on Digits: median {np.median(times)*1e3:.0f} ms, max {max(times)*1e3:.0f} ms')
    assert np.median(times) < MAX_VIEW_S and max(times) < MAX_VIEW_S


# --- CorrectionBrowser ---------------------------------------------------------------------------

def fake_snapshot(clean, noisy, seed=0, alpha=.6, beta=.1):
    "A snapshot as `correction_snapshot` returns it, from random probabilities leaning towards the clean labels."
    rng = np.random.default_rng(seed)
    probs, fixed = {}, {}
    for b in ('random', 'balanced'):
        p = (.35 * clean + .65 * rng.random(clean.shape)).astype(np.float32)
        probs[b] = p
        fixed[b] = np.where(p > alpha, 1, np.where(p < beta, 0, noisy)).astype(np.uint8)
    return dict(noisy=noisy, clean=clean, probs=probs, corrected_by=fixed)


def test_correction_filters_and_views(digits):
    train, noisy = digits
    snap = fake_snapshot(train.labels, noisy)
    cb = CorrectionBrowser(train, snap)
    assert cb.known_clean
    ch = cb.changes
    assert len(ch) == sum(int((snap['corrected_by'][b] != noisy).sum()) for b in ('random', 'balanced'))
    cb.widget
    assert len(cb.cands) == ch.image.nunique() and cb.image == cb.cands[0]
    cb.outcome_dd.value = 'broke'
    assert set(cb.cands) == set(ch[ch.outcome == 'broke'].image)
    group = ch[(ch.outcome == 'broke') & (ch.branch == 'balanced')].group.iloc[-1]
    cb.branch_dd.value = 'balanced'; cb.group_dd.value = group
    want = ch[(ch.outcome == 'broke') & (ch.branch == 'balanced') & (ch.group == group)].image.unique()
    assert list(cb.cands) == list(want)
    cb.slider.value = cb.cands[-1]
    i = cb.image
    assert i == want[-1] and 'broke' in cb.table_html.value
    assert cb.slider.label == str(i) and f'training image #{i}</b> ({len(want)} of {len(want)} ' in cb.title.value
    t = cb.last_view['table']
    row = t[t['outcome (balanced)'] == 'broke'].iloc[0]
    assert row['noisy'] == row['clean'] != row['corrected (balanced)']
    held = set(np.flatnonzero(noisy[i] | train.labels[i]))           # the title's chips: the image's other labels
    assert set(cb.last_view['other']) == held - set(ch[ch.image == i]['class']) and 'other labels' in cb.title.value
    cb.cls_dd.value = int(train.groups['head'][0])
    assert set(cb.cands) <= set(ch[ch['class'] == train.groups['head'][0]].image)


def test_correction_summary_matches_correction_quality(digits):
    train, noisy = digits
    snap = fake_snapshot(train.labels, noisy)
    s = CorrectionBrowser(train, snap).summary()
    for b in ('random', 'balanced'):
        q = correction_quality(train.labels, noisy, snap['corrected_by'][b], train.groups)
        assert (s.loc[b][['changed', 'switched on', 'switched off', 'fixed', 'broke']].values
                == q[['changed', 'on', 'off', 'fixed', 'broke']].values).all()
    fig = CorrectionBrowser(train, snap).plot_summary()
    assert [a.get_title() for a in fig.axes] == ['corrections by the random branch', 'corrections by the balanced branch']
    plt.close(fig)


def test_without_clean_labels_outcomes_are_unknown(digits):
    train, noisy = digits
    real = LabelledSet(train.items, noisy, train.classes, train.groups)
    snap = fake_snapshot(noisy, noisy)
    cb = CorrectionBrowser(real, snap)
    assert not cb.known_clean and set(cb.changes.outcome) == {'unknown'}
    assert list(cb.summary().columns) == ['changed', 'switched on', 'switched off']
    cb.widget
    assert cb.outcome_dd.options == ('any', 'unknown')
    assert 'clean' not in cb.last_view['table']


def test_history_marks_the_epochs_that_changed_a_label(digits):
    train, noisy = digits
    hist = {e: fake_snapshot(train.labels, noisy, seed=e) for e in range(3)}
    cb = CorrectionBrowser(train, hist[2], history=hist)
    i = cb.images()[0]
    h = cb.history(i)
    assert list(h.index) == [1, 2, 3]                  # numbered as the checkpoints (epoch_N.pth), from fastai's 0..2
    c = cb.changes[cb.changes.image == i].iloc[0]
    cell = h.loc[3, (train.classes[c['class']], c['branch'])]
    assert cell.endswith('*') and float(cell[:-1]) == pytest.approx(hist[2]['probs'][c['branch']][i, c['class']], abs=.005)
    cb.widget
    assert 'per epoch' in cb.history_html.value
    fig = cb.show(i)
    assert fig.axes[0].get_title() == f'training image #{i}'
    plt.close(fig)


def test_correction_view_is_fast_on_digits(digits):
    train, noisy = digits
    cb = CorrectionBrowser(train, fake_snapshot(train.labels, noisy), history={e: fake_snapshot(train.labels, noisy, e) for e in range(8)})
    cb.widget
    times = []
    for k in range(1, 21):
        t0 = time.perf_counter(); cb.slider.value = cb.cands[k]; times.append(time.perf_counter() - t0)
    print(f'CorrectionBrowser view on Digits: median {np.median(times)*1e3:.0f} ms, max {max(times)*1e3:.0f} ms')
    assert np.median(times) < MAX_VIEW_S and max(times) < MAX_VIEW_S


def test_nothing_corrected_is_said_in_words(digits):
    train, noisy = digits
    snap = fake_snapshot(train.labels, noisy)
    unchanged = {**snap, 'corrected_by': {b: noisy.copy() for b in snap['probs']}}
    th = {**THRESHOLDS, 'random_head_alpha': .7, 'balance_tail_beta': .1}
    cb = CorrectionBrowser(train, unchanged, thresholds=th, source='W/config.json')
    assert len(cb.images()) == 0 and 'no branch was sure enough' in cb.note
    assert '(W/config.json)' in cb.note and 'random_head_alpha 0.7, balance_tail_beta 0.1' in cb.note
    off = CorrectionBrowser(train, unchanged, thresholds=dict(THRESHOLDS), source='W/config.json')
    assert 'correction is off' in off.note and 'alpha 1' in off.note
    off.widget                                                       # no IndexError: the widget says why
    assert off.title.value == f'<b>{off.note}</b>' and off.status.value == '0 images match' and off.slider.disabled
    assert off._repr_mimebundle_()['text/plain'].endswith(off.note)
    assert repr(off) == f"CorrectionBrowser({off.ds.name!r}, {len(off.ds)} images): `.show(i)` draws a view as a figure\n{off.note}"   # a plain session
    fig = off.show()
    fig.canvas.draw()
    body = [t for t in fig.texts if t.get_text() == wrapped(off.note, 120)]
    assert len(body) == 1 and not fig.axes[0].images
    assert body[0].get_window_extent().x1 <= fig.bbox.x1            # its longest line is inside the figure, not cut at the edge
    plt.close(fig)
    cb = CorrectionBrowser(train, snap)                              # filters that match nothing: said so, no error
    cb.widget
    cb.cls_dd.value = int(train.groups['tail'][0]); cb.group_dd.value = 'head'     # a tail class in the head: none
    assert len(cb.cands) == 0 and cb.image is None and cb.table_html.value == ''
    tail = train.classes[train.groups['tail'][0]]                    # a sentence naming the filters, no broken picture
    assert cb.title.value == f"<b>No image matches class '{tail}' (tail) and group head: choose another filter, or any.</b>"
    assert cb.img.layout.display == 'none' and cb.at_box.disabled and cb.prev_btn.disabled and cb.next_btn.disabled
    cb.group_dd.value = 'tail'
    assert len(cb.cands) and cb.image == cb.cands[0] and not cb.slider.disabled and cb.img.layout.display is None


def test_display_carries_a_picture(tiny):
    ds, noisy = tiny
    bundle = StitchBrowser(ds, noisy)._repr_mimebundle_()
    assert 'application/vnd.jupyter.widget-view+json' in bundle
    assert base64.b64decode(bundle['image/png'])[:8] == b'\x89PNG\r\n\x1a\n'     # what a page without a kernel shows


def small_config(**overrides) -> dict:
    "A quick Digits-small run's configuration (no pretraining, quiet) with `overrides`."
    return train_config(dataset='digits-small', pretrained=False, quiet=True, **overrides)


def save_checkpoint(learn, path, epoch, **extra):
    "What `stitchup_train` saves (the Checkpoint callback of runs), without training; `extra`: e.g. the config it carries."
    torch.save({'model': learn.model.state_dict(), 'opt': {}, 'epoch': epoch, 'classes': list(learn.dls.train.ds.classes),
                'groups': {g: list(map(int, v)) for g, v in learn.dls.train.ds.groups.items()}, **extra}, path)


def test_from_learner_and_from_checkpoint(tmp_path):
    "The checkpoint path alone rebuilds the run (config.json beside it): the same changes as the learner in memory."
    th = {'random_head_alpha': .5, 'balance_head_alpha': .5, 'random_tail_beta': .45, 'balance_tail_beta': .45}
    learn, train, _ = build_learner(small_config(**th))
    cb = CorrectionBrowser.from_learner(learn)
    assert len(cb.changes) > 0 and cb.note is None and cb.source == 'the learner'
    for e in (1, 2): save_checkpoint(learn, tmp_path/f'epoch_{e}.pth', e)
    (tmp_path/'config.json').write_text(json.dumps(learn.run_record.config))
    ck = CorrectionBrowser.from_checkpoint(tmp_path, history=True)           # a work dir: its latest checkpoint
    cols = ['image', 'class', 'branch', 'outcome']
    assert ck.changes[cols].values.tolist() == cb.changes[cols].values.tolist()
    assert sorted(ck.logged) == [0, 1] and ck.source == str(tmp_path/'config.json')
    off = CorrectionBrowser.from_checkpoint(tmp_path/'epoch_1.pth', thresholds=dict(THRESHOLDS))
    assert len(off.changes) == 0 and off.summary()['changed'].sum() == 0
    assert 'correction is off' in off.note and str(tmp_path/'config.json') in off.note
    sb = StitchBrowser.from_run(tmp_path/'epoch_1.pth')
    assert np.array_equal(sb.noisy, learn.dls.train.labels) and np.array_equal(sb.clean, train.labels)
    assert sb.seed == learn.run_record.config['seed'] and 'feature level' in sb.note
    for e in (1, 2): (tmp_path/f'epoch_{e}.pth').rename(tmp_path/f'kept_{e}.pth')   # a run that has not finished an epoch
    with pytest.raises(FileNotFoundError, match='no epoch_N.pth checkpoint yet'): CorrectionBrowser.from_checkpoint(tmp_path)
    (tmp_path/'kept_1.pth').rename(tmp_path/'epoch_1.pth'); (tmp_path/'config.json').unlink()
    with pytest.raises(FileNotFoundError, match='config.json not found .epoch_1.pth carries no configuration'):
        CorrectionBrowser.from_checkpoint(tmp_path/'epoch_1.pth')
    # config.json gone, as a checkpoint copied out of its run: the configuration the checkpoint carries (as load_run reads it)
    save_checkpoint(learn, tmp_path/'epoch_2.pth', 2, config=dict(learn.run_record.config))
    alone = CorrectionBrowser.from_checkpoint(tmp_path)
    assert alone.changes[cols].values.tolist() == cb.changes[cols].values.tolist() and alone.source == str(tmp_path/'epoch_2.pth')
    assert StitchBrowser.from_run(tmp_path/'epoch_2.pth').seed == learn.run_record.config['seed']
    (tmp_path/'config.json').write_text(json.dumps({**learn.run_record.config, 'random_head_alpha': .3}))   # edited beside it
    again = CorrectionBrowser.from_checkpoint(tmp_path)           # the checkpoint's own configuration, as load_run reads it
    assert again.source == str(tmp_path/'epoch_2.pth') and again.thresholds['random_head_alpha'] == .5, again.thresholds


# --- the browsers rebuild a run through the pipeline's own label path ----------------------------------

def test_from_run_on_an_asym_run(tmp_path):
    "A real digits-small run with asym noise (it needs noise_neg_rate): from_run shows the labels it trained on."
    from stitchup_nb.train import run_training
    learn, _ = run_training(train_config(dataset='digits-small', noise_kind='asym', noise_rate=.3, noise_neg_rate=.05,
                                         epochs=1, warmup_iters=5, pretrained=False, quiet=True, work_dir=str(tmp_path)))
    sb = StitchBrowser.from_run(tmp_path)
    assert np.array_equal(sb.noisy, learn.dls.train.labels) and (sb.noisy > sb.clean).any()    # negatives turned positive
    ck = CorrectionBrowser.from_checkpoint(tmp_path)                       # found by runs.checkpoints: epoch_1.pth
    assert ck.source == str(tmp_path/'epoch_1.pth') and len(ck.ds) == len(sb.ds)      # the configuration the checkpoint carries


def test_from_run_takes_a_peers_labels(tmp_path, monkeypatch):
    "A peer's `labels` hook (confident learning cleans the labels) runs in from_run, as in training; so do the held-out images."
    from stitchup_nb.peers import PEERS, Peer
    class Cleaner(Peer):
        def labels(self, train, noisy): return np.zeros_like(noisy)
    monkeypatch.setitem(PEERS, 'confident_learning', Cleaner)
    for d, cfg in {'cl': dict(method='confident_learning'), 'held': dict(method='full', holdout=.25)}.items():
        (tmp_path/d).mkdir()
        (tmp_path/d/'config.json').write_text(json.dumps(train_config(dataset='digits-small', quiet=True, work_dir=str(tmp_path/d), **cfg)))
    assert not StitchBrowser.from_run(tmp_path/'cl').noisy.any()                  # the peer's labels, not the noisy ones
    from stitchup_nb.methods import PRESETS
    n = len(digits_mlt(**PRESETS['digits-small']['digits'])[0])
    assert len(StitchBrowser.from_run(tmp_path/'held').ds) == n - round(.25 * n)    # the images the run trained on


# --- a newcomer's first hour (paths from anywhere, controls that say what they hold) ----------------

def test_runs_are_found_from_the_repository_root(tmp_path, monkeypatch):
    "JupyterLab's kernel starts in nbs/: a run path relative to the checkout still opens; a wrong one names where it looked."
    import stitchup_nb.runs as runs
    from pathlib import Path
    assert runs.repo_root() == Path(__file__).resolve().parents[1]             # this checkout: settings.ini beside stitchup_nb/
    root, work = tmp_path/'root', tmp_path/'root'/'work_dirs'/'run'
    work.mkdir(parents=True); (root/'nbs').mkdir()
    monkeypatch.setattr(runs, 'repo_root', lambda: root)
    monkeypatch.chdir(root/'nbs')
    learn, train, _ = build_learner(small_config())
    for e in (1, 2): save_checkpoint(learn, work/f'epoch_{e}.pth', e)
    save_checkpoint(learn, work/'epoch_best.pth', 9)                          # not one of the run's: runs.checkpoints skips it
    (work/'config.json').write_text(json.dumps(learn.run_record.config))
    cb = CorrectionBrowser.from_checkpoint('work_dirs/run', history=True)      # the latest: epoch_2, history of epochs 1 and 2
    assert sorted(cb.logged) == [0, 1] and cb.source == str(work.resolve()/'config.json')
    sb = StitchBrowser.from_run('work_dirs/run/epoch_1.pth')
    assert np.array_equal(sb.noisy, learn.dls.train.labels)
    with pytest.raises(FileNotFoundError) as e: CorrectionBrowser.from_checkpoint('work_dirs/gone/epoch_8.pth')
    msg = str(e.value)
    assert str(root/'nbs'/'work_dirs'/'gone') in msg and str(root/'work_dirs'/'gone') in msg and 'from_learner' in msg
    from stitchup_nb.finished import load_run                                  # the README's "In Python", from nbs/ too
    assert load_run('work_dirs/run')[0].run_record.checkpoint == (work/'epoch_2.pth', 2)
    (work/'config.json').unlink()
    with pytest.raises(FileNotFoundError, match='config.json') as e: StitchBrowser.from_run('work_dirs/run')
    assert f'Looked in {work.resolve()}' in str(e.value) and 'pass the work dir' in str(e.value)


def test_step_buttons_and_position_box(digits):
    "~1,000 images behind one slider: the box and the buttons move one image at a time, and follow the slider."
    train, noisy = digits
    sb = StitchBrowser(train, noisy)
    sb.widget
    n = len(sb.cands)
    assert (sb.at_box.value, sb.at_box.max, sb.prev_btn.disabled, sb.next_btn.disabled) == (1, n, True, False)
    sb.next_btn.click()
    assert sb.anchor == sb.cands[1] and sb.at_box.value == 2 and not sb.prev_btn.disabled
    sb.at_box.value = 500
    assert sb.anchor == sb.cands[499] and sb.slider.value == sb.cands[499]
    sb.step(-1); assert sb.anchor == sb.cands[498]
    sb.slider.value = int(sb.cands[-1])
    assert sb.at_box.value == n and sb.next_btn.disabled
    sb.step(5); assert sb.anchor == sb.cands[-1]                               # stops at the end


def test_dropdowns_name_classes_and_tally_has_one_header_row(tiny, digits):
    ds, noisy = tiny
    sb = StitchBrowser(ds, noisy)
    sb.widget
    assert sb.cls_dd.options == (('any', 'any'), ('cat (head): 3 images', 0), ('dog (medium): 2 images', 1), ('owl (tail): 2 images', 2))
    thead = sb.tally_html.value.split('<thead>')[1].split('</thead>')[0]
    assert thead.count('<tr') == 1 and '<th>group</th>' in thead               # no header row of its own for `group`
    train, dnoisy = digits
    dsb = StitchBrowser(train, dnoisy)
    dsb.widget
    assert dict(dsb.cls_dd.options)[f"'1' (tail): {dsb.candidates(1).size} images"] == 1     # a name, not an index
    snap = fake_snapshot(train.labels, dnoisy)
    cb = CorrectionBrowser(train, snap)
    cb.widget
    changed = sorted(set(cb.changes['class']))
    assert [v for _, v in cb.cls_dd.options[1:]] == changed                     # only classes with a change
    k = changed[0]
    label = f"'{train.classes[k]}' ({train.group_of()[k]}): {cb.changes[cb.changes['class'] == k].image.nunique()} images"
    assert cb.cls_dd.options[1] == (label, k)


def test_stitch_browser_says_when_nothing_matches(tiny):
    ds, noisy = tiny
    sb = StitchBrowser(ds, noisy)
    sb.widget
    sb.cls_dd.value = 2; sb.group_dd.value = 'medium'                           # owl images holding no medium class: none
    assert len(sb.cands) == 0 and sb.status.value == '0 images match'
    assert sb.panels['anchor'][0].value == '<b>No image matches class owl (tail) and group medium: choose another filter, or any.</b>'
    assert all(img.layout.display == 'none' for _, img, _ in sb.panels.values()) and sb.partner_box.disabled
    sb.group_dd.value = 'any'
    assert sb.anchor == 2 and sb.panels['anchor'][1].layout.display is None and not sb.partner_box.disabled


def test_correction_figure_fills_its_area_and_its_caption_reads(digits):
    """`CorrectionBrowser.show()` at its default size: the image and the table fill most of the figure and the caption is
    of a readable size, inside the figure (it drew a 12 x 4 inch figure two thirds empty, its caption in 7.5 pt)."""
    train, noisy = digits
    cb = CorrectionBrowser(train, fake_snapshot(train.labels, noisy))
    n_rows = cb.changes.groupby('image')['class'].nunique()
    for i in (cb.images()[0], n_rows.idxmax()):                      # a view of two changed labels, and the longest table
        fig = cb.show(i)
        fig.canvas.draw()
        r, whole = fig.canvas.get_renderer(), fig.bbox
        area = lambda b: b.width * b.height
        drawn = area(fig.axes[0].images[0].get_window_extent(r)) + area(fig.axes[1].tables[0].get_window_extent(r))
        assert drawn / area(whole) > .35, f'image #{i}: the image and the table fill {drawn / area(whole):.0%} of the figure'
        caption = next(t for t in fig.texts if t.get_text().startswith('class: '))
        assert caption.get_fontsize() >= 9
        for b in (caption.get_window_extent(r), fig.axes[1].tables[0].get_window_extent(r)):
            assert whole.x0 <= b.x0 and b.x1 <= whole.x1 and whole.y0 <= b.y0 and b.y1 <= whole.y1, (i, b, whole)
        plt.close(fig)


# --- real class names: VOC's 20, COCO's 80 ---------------------------------------------------------------------------

def long_named(names:list, n:int=4) -> LabelledSet:
    "`n` noise images of 32 × 32 pixels, each holding the 8 longest of `names` (VOC's or COCO's): 8 chips a row."
    labels = np.zeros((n, len(names)), np.uint8)
    labels[:, sorted(range(len(names)), key=lambda c: -len(names[c]))[:8]] = 1
    imgs = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    third = len(names) // 3
    return LabelledSet(imgs, labels, list(names), {'head': list(range(third)), 'medium': list(range(third, 2 * third)),
                                                   'tail': list(range(2 * third, len(names)))}, name='long names')

def real_names() -> dict:
    from stitchup_nb.readers import VOC_CLASSES
    from stitchup_nb.fixtures import COCO_CATS
    return {'VOC': list(VOC_CLASSES), 'COCO': list(COCO_CATS.values())}

def chip_faults(fig) -> list:
    "Chips (and their rows' labels) that leave their panel's width or the figure, lie on the legend, or overlap one another."
    fig.canvas.draw()
    r, whole, faults, boxes = fig.canvas.get_renderer(), fig.bbox, [], []
    legends = [l.get_window_extent(r) for l in fig.legends]
    for ax in fig.axes:
        if not ax.images: continue
        a = ax.get_window_extent(r)
        for t in ax.texts:
            b = (t.get_bbox_patch() or t).get_window_extent(r)
            boxes.append((t.get_text(), b))
            if b.x0 < a.x0 - 1 or b.x1 > a.x1 + 1: faults.append(f'{t.get_text()!r} leaves its panel ({b.x0:.0f}-{b.x1:.0f} of {a.x0:.0f}-{a.x1:.0f} px)')
            if b.y0 < whole.y0: faults.append(f'{t.get_text()!r} falls off the figure')
            if any(b.overlaps(l) for l in legends): faults.append(f'{t.get_text()!r} lies on the legend')
    faults += [f'{s!r} overlaps {u!r}' for k, (s, b) in enumerate(boxes) for u, c in boxes[k + 1:] if b.overlaps(c)]
    return faults

@pytest.mark.parametrize('source', ['VOC', 'COCO'])
def test_stitch_chips_wrap_inside_their_panels_on_real_names(source):
    """8 chips a row of VOC's and COCO's longest names: each row on one line ran 6 to 8 inches past its 2.5-inch panel,
    over the next panel's chips and off the figure."""
    names = real_names()[source]
    ds = long_named(names)
    noisy = ds.labels.copy(); noisy[0, np.flatnonzero(ds.labels[0])[:2]] = 0; noisy[0, 0] = 1     # missing, spurious, restored
    sb = StitchBrowser(ds, noisy)
    fig, rows = sb.show(0, partner=1), sb.view(0, 1)['chips']
    try:
        assert not (faults := chip_faults(fig)), faults[:5]
        for ax, k in zip(fig.axes, rows):                                                              # every chip drawn
            assert [t.get_text() for t in ax.texts] == [s for r, ch in rows[k].items() for s in (f'{r}:', *(names[c] for c in ch))]
        assert all(t.get_fontsize() >= 9.5 for ax in fig.axes for t in ax.texts)
        title = fig.axes[1].get_title().split('\n')                                                       # names shared whole
        shared = [names[c] for c in np.flatnonzero(noisy[0] & noisy[1])]
        assert len(title) > 2 and all(any(n in l for l in title) for n in shared), title
    finally: plt.close(fig)

@pytest.mark.parametrize('source', ['VOC', 'COCO'])
def test_correction_chips_wrap_under_their_image_on_real_names(source):
    "The 'other labels' row of 5 VOC or COCO names under the 2.4-inch image: on one line it ran over the caption."
    ds = long_named(real_names()[source])
    fig = CorrectionBrowser(ds, fake_snapshot(ds.labels, ds.labels)).show(0)
    try:
        assert len(fig.axes[0].texts) > 3 and not (faults := chip_faults(fig)), faults[:5]
        r = fig.canvas.get_renderer()
        caption = next(t for t in fig.texts if t.get_text().startswith('class: ')).get_window_extent(r)
        assert all(not t.get_window_extent(r).overlaps(caption) for t in fig.axes[0].texts)
    finally: plt.close(fig)

def test_correction_caption_breaks_a_line_only_where_the_next_word_would_not_fit():
    """The caption under the table was broken at 124 characters, not by drawn width: its first line ('class: ... all:') ended
    0.7 inch short of the table's 9 inches with room for 'every class', and its lines' ends went in and out by an inch."""
    ds = long_named(real_names()['VOC'])
    fig = CorrectionBrowser(ds, fake_snapshot(ds.labels, ds.labels)).show(0)
    try:
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        caption = next(t for t in fig.texts if t.get_text().startswith('class: '))
        width = fig.axes[1].get_window_extent(r).width                   # the table's
        def drawn(s):
            t = fig.text(0, 0, s, fontsize=caption.get_fontsize())
            try: return t.get_window_extent(r).width
            finally: t.remove()
        lines = caption.get_text().split('\n')
        assert len(lines) > 2
        for line, after in zip(lines, lines[1:]):
            assert drawn(line) <= width, (line, drawn(line), width)         # the measure wrapped by is within 3% of the renderer's
            budget = width / HINTING                                         # lines are laid out 8% short: low-DPI hinting
            assert drawn(f'{line} {after.split()[0]}') > .97 * budget, f'{line!r} breaks early: {after.split()[0]!r} fits after it'
    finally: plt.close(fig)

def test_a_chip_wider_than_its_panel_is_cut_to_it():
    """A class name wider than its panel (one of 60 characters, from a user's own data set) was given a line of its own
    but drawn whole: 1.5 to 2.5 inches past its 2.5-inch panel, over the next panel's chips and off the figure."""
    long = 'an extraordinarily long class name from a data set of my own'
    ds = long_named(['cat', long, 'dog'])                                        # each image holds all three
    noisy = ds.labels.copy(); noisy[:, 0] = 0
    figs = [StitchBrowser(ds, ds.labels).show(0, partner=1), CorrectionBrowser(ds, fake_snapshot(ds.labels, noisy)).show(0)]
    try:
        for fig in figs:
            assert fig.axes[0].images and not (faults := chip_faults(fig)), faults[:5]
            drawn = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text().endswith('…')]
            assert drawn and all(long.startswith(d[:-1]) and len(d) > 10 for d in drawn), drawn       # cut, and still reads
    finally:
        for fig in figs: plt.close(fig)

@pytest.mark.parametrize('dpi', [72, 80])
def test_chips_and_caption_keep_their_places_at_a_low_dpi(dpi):
    """Drawn at 72 or 80 dpi (an rcParams `figure.dpi`, a `savefig(dpi=80)`), Agg's hinting draws text up to 7% wider than
    `text_inches` measures it: chips placed by that measure overlapped one another and their row's label, and the correction
    caption ran past its table and off the figure (at 100 dpi all held)."""
    for names in real_names().values():
        ds = long_named(names)
        noisy = ds.labels.copy(); noisy[0, np.flatnonzero(ds.labels[0])[:2]] = 0; noisy[0, 0] = 1
        figs = [StitchBrowser(ds, noisy).show(0, partner=1), CorrectionBrowser(ds, fake_snapshot(ds.labels, ds.labels)).show(0)]
        try:
            for fig in figs:
                fig.set_dpi(dpi)
                assert sum(len(ax.texts) for ax in fig.axes) > 5 and not (faults := chip_faults(fig)), faults[:5]
            r, whole = figs[1].canvas.get_renderer(), figs[1].bbox
            caption = next(t for t in figs[1].texts if t.get_text().startswith('class: ')).get_window_extent(r)
            assert caption.x1 <= min(whole.x1, figs[1].axes[1].get_window_extent(r).x1), (caption, whole)
        finally:
            for fig in figs: plt.close(fig)

def test_an_empty_chip_row_reads_a_dash_as_its_html():
    """An image whose every label was changed has no other labels: its figure drew 'other labels:' and nothing after it,
    where the HTML row reads 'other labels: –'."""
    ds = LabelledSet(np.zeros((2, 8, 8, 3), np.uint8), np.array([[1, 0], [0, 1]]), ['cat', 'dog'], {'head': [0], 'medium': [], 'tail': [1]})
    noisy = np.array([[0, 1], [0, 1]])
    snap = dict(noisy=noisy, clean=ds.labels, probs={b: np.array([[.9, .05], [.2, .9]]) for b in ('random', 'balanced')},
                corrected_by={b: np.array([[1, 0], [0, 1]]) for b in ('random', 'balanced')})
    cb = CorrectionBrowser(ds, snap)
    assert cb.view(0)['other'] == {}
    fig = cb.show(0)
    try:
        assert [t.get_text() for t in fig.axes[0].texts] == ['other labels:', '–']
        assert not chip_faults(fig)
    finally: plt.close(fig)
    assert 'other labels:</b> –' in chips_html({'other labels': {}}, ds.classes)
