"""Every figure the package draws follows the house style (../shared/STYLE.md: "Plots have titles, axis labels and a
one-line caption"): each public function that draws a matplotlib figure, called on small data, gives a figure with a title
(the figure's, or one on every panel), x and y labels on the panels that carry quantities (image panels and panels turned
off carry none), a legend where several labelled series share the figure, x tick labels that do not overlap, and panel
titles that stay on their panels (none wider than its panel, none lying on another panel).

`FIGURES` names each such function with a small call of it; `test_every_plotting_function_is_listed` finds every public
function of stitchup_nb/*.py that makes a figure (`plt.subplots`, `plt.figure`, `plt.subplot_mosaic`), so a new one
that is not listed (and so not checked) fails here. The captions live in the notebooks, beside each example.
"""
import ast, json
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from stitchup_nb.data import GROUPS, LabelledSet
from stitchup_nb.readers import VOC_CLASSES

PACKAGE = Path(__file__).parents[1]/'stitchup_nb'
MAKERS = {'subplots', 'figure', 'subplot_mosaic'}


# --- what a figure must have ------------------------------------------------------------------------------------------

def _has_content(ax) -> bool:
    return bool(ax.images or ax.lines or ax.patches or ax.collections or ax.tables or ax.containers)

def _carries_quantities(ax) -> bool:
    "A panel whose axes measure something: drawn, its axes on, and no image shown in it."
    return ax.axison and not ax.images and _has_content(ax)

def _overlapping_ticks(ax) -> list:
    boxes = [(t.get_text(), t.get_window_extent()) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    return [(a, b) for (a, ba), (b, bb) in zip(boxes, boxes[1:]) if ba.overlaps(bb)]

def _titles_off_panel(fig) -> list:
    "Panel titles wider than their panel, or lying on another panel (its plot or image)."
    panels = [ax for ax in fig.axes if _has_content(ax) and ax.get_title()]
    boxes = {ax: (ax.title.get_window_extent(), ax.get_window_extent()) for ax in panels}
    wide = [ax.get_title() for ax, (t, a) in boxes.items() if t.width > a.width + 1]
    onto = [(ax.get_title(), o.get_title()) for ax, (t, _) in boxes.items() for o in fig.axes
            if o is not ax and _has_content(o) and t.overlaps(o.get_window_extent())]
    return [f'title {t!r} wider than its panel' for t in wide[:3]] + [f'title {t!r} lies on panel {o!r}' for t, o in onto[:3]]

def style_faults(fig) -> list:
    "What `fig` lacks of the house style, in words (empty: nothing)."
    fig.canvas.draw()
    faults, panels = [], [ax for ax in fig.axes if _has_content(ax)]
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ''
    if not suptitle and not (panels and all(ax.get_title() for ax in panels)):
        faults.append('no title: neither fig.suptitle nor a title on every panel')
    for k, ax in enumerate(fig.axes):
        if not _carries_quantities(ax): continue
        if not ax.get_xlabel(): faults.append(f'panel {k} ({ax.get_title()!r}): no x label')
        if not ax.get_ylabel() and not any(o.get_ylabel() for o in ax.get_shared_y_axes().get_siblings(ax)):
            faults.append(f'panel {k} ({ax.get_title()!r}): no y label (nor on a panel sharing its y axis)')
        if over := _overlapping_ticks(ax): faults.append(f'panel {k} ({ax.get_title()!r}): x tick labels overlap: {over[:3]}')
    faults += _titles_off_panel(fig)
    labels = {l for ax in fig.axes for l in ax.get_legend_handles_labels()[1]}
    if len(labels) > 1 and not (fig.legends or any(ax.get_legend() for ax in fig.axes)):
        faults.append(f'{len(labels)} labelled series ({sorted(labels)[:4]}) and no legend')
    return faults


# --- small data ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def digits():
    from stitchup_nb.digits import digits_mlt
    return digits_mlt()

def voc_like() -> LabelledSet:
    "Twenty long class names (VOC's) on made-up counts: tick labels that overlap unless drawn upright."
    labels = (np.random.default_rng(0).random((200, 20)) < np.linspace(.6, .02, 20)).astype(np.uint8)
    return LabelledSet(np.zeros((200, 4, 4, 3), np.uint8), labels, list(VOC_CLASSES),
                       {'head': list(range(6)), 'medium': list(range(6, 14)), 'tail': list(range(14, 20))}, name='VOC-like')

def bench_rows() -> pd.DataFrame:
    "Made-up benchmark rows: two methods at three noise cells and a clean reference, three seeds each."
    cells = [('BCE', 'flip', .3), ('BCE', 'flip', .5), ('BCE', 'cooc', .5), ('BCE (clean)', 'flip', 0.)]
    cells += [('Stitch-Up+Co-Learning', k, r) for _, k, r in cells[:3]]
    return pd.DataFrame([dict(method=m, kind=k, rate=r, seed=s, total=60 - 30 * r + s, head=70 - 20 * r, medium=60 - 30 * r,
                              tail=50 - 40 * r) for m, k, r in cells for s in range(3)])

def sweep_rows() -> pd.DataFrame:
    from stitchup_nb.grids import SWEEPS
    return pd.DataFrame([dict(method=n, seed=0, extra=json.dumps({k: v}), total=40 + v, head=45, medium=40, tail=30 + v)
                         for n, k in SWEEPS.items() for v in (.1, .5, .9)])

def correction_log() -> pd.DataFrame:
    return pd.DataFrame([dict(corrector=c, group=g, epoch=e, on=3, off=1, fixed=2, broke=1)
                         for c in ('random', 'balanced') for e in range(2) for g in GROUPS])

def metrics_file(tmp_path) -> Path:
    run = tmp_path/'run'; run.mkdir()
    epochs = [dict(epoch=e, train_loss=1 / (e + 1), mAP=50 + e, head_mAP=60, medium_mAP=50, tail_mAP=40 + e,
                   **({'resumed': True} if e == 2 else {})) for e in range(3)]
    (run/'metrics.json').write_text(json.dumps({'epochs': epochs, 'world_size': 1}))
    return run

def noise_check_rows() -> pd.DataFrame:
    return pd.DataFrame([dict(kind=k, rate=r, data_seed=s, true_missing_rate=r, est_missing_rate=r * .9 + .01 * s,
                              cl_missing_rate=r * 1.1) for k in ('flip', 'cooc') for r in (.3, .5, .7) for s in range(2)])

def snapshot_browser():
    from stitchup_nb.corrections import CorrectionBrowser
    snap = dict(noisy=np.array([[1, 0], [0, 1]]), clean=np.array([[1, 1], [0, 0]]),
                probs={'random': np.array([[.9, .8], [.1, .3]]), 'balanced': np.array([[.9, .6], [.2, .95]])},
                corrected_by={'random': np.array([[1, 1], [0, 1]]), 'balanced': np.array([[1, 0], [0, 1]])})
    ds = LabelledSet(np.zeros((2, 4, 4, 3), np.uint8), snap['clean'], ['a', 'b'], {'head': [0], 'medium': [], 'tail': [1]}, name='two')
    return CorrectionBrowser(ds, snap)

def show_results(digits):
    from stitchup_nb.augment import BatchAug
    from stitchup_nb.loaders import stitch_dls
    train, test = digits
    dls = stitch_dls(train, train.labels, test, bs=8, aug=BatchAug(flip=0), device='cpu')
    x, y = dls.valid.one_batch()[:2]
    return dls.valid.show_results((x, y), y.bool(), max_n=3)

def stitch_view(digits):
    from stitchup_nb.noise import add_noise
    from stitchup_nb.widgets import StitchBrowser
    train, _ = digits
    return StitchBrowser(train, add_noise(train.labels, .5, seed=0)).show(0)

import stitchup_nb.browser as browser, stitchup_nb.colearn as colearn, stitchup_nb.digits as digits_nb
import stitchup_nb.finished as finished, stitchup_nb.noise_check as noise_check, stitchup_nb.report as report

def _fig(r): return r if isinstance(r, matplotlib.figure.Figure) else r.figure     # a function that draws into an axes returns it

# module.qualified name -> a small call of it (`digits`: the Digits-MLT (train, test), `tmp`: a folder)
FIGURES = {
    'digits.show_samples':              lambda digits, tmp: digits_nb.show_samples(digits[0]),
    'digits.plot_class_counts':         lambda digits, tmp: digits_nb.plot_class_counts(digits[0]),
    'colearn.plot_corrections':         lambda digits, tmp: colearn.plot_corrections(correction_log()),
    'finished.plot_metrics':            lambda digits, tmp: finished.plot_metrics(metrics_file(tmp)),
    'noise_check.plot_check':           lambda digits, tmp: noise_check.plot_check(noise_check_rows()),
    'report.group_bars':                lambda digits, tmp: report.group_bars(bench_rows(), 'flip', .5),
    'report.rate_curves':               lambda digits, tmp: report.rate_curves(bench_rows()),
    'report.sweep_plot':                lambda digits, tmp: report.sweep_plot(sweep_rows()),
    'loaders.EvalDL.show_results':      lambda digits, tmp: show_results(digits),
    'browser.message_figure':           lambda digits, tmp: browser.message_figure('a title', 'a message'),
    'corrections.CorrectionBrowser.plot_summary': lambda digits, tmp: snapshot_browser().plot_summary(),
    'corrections.CorrectionBrowser.show': lambda digits, tmp: snapshot_browser().show(0),
    'widgets.StitchBrowser.show':       lambda digits, tmp: stitch_view(digits),
}


# --- the checks ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', FIGURES)
def test_figure_has_title_labels_and_legend(name, digits, tmp_path):
    fig = _fig(FIGURES[name](digits, tmp_path))
    try: assert not (faults := style_faults(fig)), f'{name}: ' + '; '.join(faults)
    finally: plt.close(fig)

@pytest.mark.parametrize('rc, points', [({}, 10), ({'font.size': 14}, 14), ({'xtick.labelsize': 'x-large'}, 14.4)])
def test_class_names_stay_readable_on_a_voc_sized_set(rc, points):
    "plot_class_counts on twenty long names: flat, 17 of 19 neighbours overlapped; in rcParams' tick label size (it was fixed at 10 pt)."
    from stitchup_nb.digits import plot_class_counts
    with plt.rc_context(rc): fig = plot_class_counts(voc_like()).figure
    try:
        assert {round(t.get_fontsize(), 3) for t in fig.axes[0].get_xticklabels()} == {points}
        assert not style_faults(fig), style_faults(fig)
    finally: plt.close(fig)

def test_sample_titles_stay_on_their_panels_on_a_voc_sized_set():
    "show_samples on twenty long names, six an image: on one line 11 of 12 titles ran past their panel onto the next."
    from stitchup_nb.digits import show_samples
    ds = voc_like()
    fig = show_samples(ds)
    try:
        assert not style_faults(fig), style_faults(fig)
        idx = np.random.default_rng(0).choice(len(ds), 12, replace=False)      # show_samples' draw at seed 0
        assert [ax.get_title().split() for ax in fig.axes] == [[ds.classes[c] for c in np.flatnonzero(ds.labels[i])] for i in idx]
    finally: plt.close(fig)

def coco_like() -> LabelledSet:
    "COCO's 80 names (two-word ones among them: 'tennis racket', 'hair drier') on made-up counts, 2.9 labels an image as COCO's."
    from stitchup_nb.fixtures import COCO_CATS
    p = np.geomspace(.5, .005, 80); p *= 2.9 / p.sum()
    labels = (np.random.default_rng(0).random((300, 80)) < p).astype(np.uint8)
    return LabelledSet(np.zeros((300, 4, 4, 3), np.uint8), labels, list(COCO_CATS.values()),
                       {'head': list(range(26)), 'medium': list(range(26, 53)), 'tail': list(range(53, 80))}, name='COCO-like')

@pytest.mark.parametrize('rc, points', [({}, 8), ({'font.size': 14}, 11.2), ({'xtick.labelsize': 16}, 12.8)])
def test_class_counts_of_coco_sized_set_stay_readable_and_inside_the_figure(rc, points):
    """plot_class_counts on COCO's 80 names: upright in a 7 x 3 inch figure 79 of 79 neighbours overlapped, and names and x
    label fell off its foot. At a user's larger font (rcParams) the names were then drawn at 8 pt all the same: they follow
    it again, at 0.8 of its tick label size past 40 names, and still stay apart and inside the figure."""
    from stitchup_nb.digits import plot_class_counts
    with plt.rc_context(rc): fig = plot_class_counts(coco_like()).figure
    try:
        assert {round(t.get_fontsize(), 3) for t in fig.axes[0].get_xticklabels()} == {points}
        assert not style_faults(fig), style_faults(fig)
        r, whole, ax = fig.canvas.get_renderer(), fig.bbox, fig.axes[0]
        for t in [*ax.get_xticklabels(), ax.xaxis.label]:
            b = t.get_window_extent(r)
            assert whole.y0 <= b.y0 and whole.x0 <= b.x0 and b.x1 <= whole.x1, f'{t.get_text()!r} falls off the figure'
    finally: plt.close(fig)

@pytest.mark.parametrize('kw', [dict(), dict(figsize=(7, 4)), dict(n=8, ncols=4)])
def test_sample_titles_keep_each_coco_name_on_one_line(kw):
    """show_samples on COCO's names: a name of two words was broken where a line ended ('fire' / 'hydrant', 'wine' / 'glass'
    in two of these three figures), and read as two classes."""
    from stitchup_nb.digits import show_samples
    ds = coco_like()
    fig = show_samples(ds, **kw)
    try:
        assert not style_faults(fig), style_faults(fig)
        idx = np.random.default_rng(0).choice(len(ds), kw.get('n', 12), replace=False)      # show_samples' draw at seed 0
        two_words = 0
        for ax, i in zip(fig.axes, idx):
            lines = ax.get_title().split('\n')
            for c in np.flatnonzero(ds.labels[i]):
                name = ds.classes[c]
                two_words += ' ' in name
                assert any(name in l for l in lines), f'{name!r} broken across the lines of {lines}'
        assert two_words > 2                                                    # the check met names of two words
    finally: plt.close(fig)

def test_text_inches_measures_in_the_font_rcparams_name_now():
    """text_inches cached its widths by text and size alone: after a user set another font (rcParams: family, the
    family's list, weight) it returned the first font's widths, and titles and chips were wrapped to the wrong measure."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath
    from stitchup_nb.digits import text_inches
    text = 'iiii mmmm WWWW'
    fresh = lambda: TextToPath().get_text_width_height_descent(text, FontProperties(size=10), ismath=False)[0] / 72
    sans = text_inches(text, 10)
    for rc in ({'font.family': 'monospace'}, {'font.sans-serif': ['DejaVu Sans Mono']}, {'font.weight': 'bold'}):
        with plt.rc_context(rc):
            assert fresh() != pytest.approx(sans, rel=.01), rc           # this font draws the text at another width
            assert text_inches(text, 10) == pytest.approx(fresh()), rc
    assert text_inches(text, 10) == pytest.approx(sans)

def test_show_results_says_what_its_panels_hold(digits):
    "A figure title over the grid: its panels' titles alone ('truth: 3 / pred: 3') left the colours unexplained."
    fig = show_results(digits)
    try: assert 'green' in fig.get_suptitle() and 'red' in fig.get_suptitle(), fig.get_suptitle()
    finally: plt.close(fig)

def test_result_titles_stay_on_their_panels_on_a_voc_sized_set():
    "EvalDL.show_results on twenty long names: one line each of truth and prediction ran past the panels onto the next."
    from stitchup_nb.loaders import stitch_dls
    ds = voc_like()
    valid = stitch_dls(ds, ds.labels, ds, bs=8, device='cpu').valid
    x, y = valid.one_batch()[:2]
    fig = valid.show_results((x, y), y.bool(), max_n=6)
    try:
        assert not style_faults(fig), style_faults(fig)
        named = [[ds.classes[c] for c in np.flatnonzero(ds.labels[i])] for i in range(6)]
        assert [ax.get_title().split() for ax in fig.axes] == [['truth:', *n, 'pred:', *n] for n in named]
    finally: plt.close(fig)


@pytest.mark.parametrize('kw', [dict(max_n=8, ncols=4, figsize=(6, 8)), dict(max_n=8, ncols=8, figsize=(10, 4))])
def test_result_titles_follow_a_figsize_and_ncols_of_ones_own(kw):
    "show_results with panels 1.5 and 1.25 inches wide: titles wrapped for the default 2.6-inch panels ran onto the next."
    from stitchup_nb.loaders import stitch_dls
    ds = voc_like()
    valid = stitch_dls(ds, ds.labels, ds, bs=8, device='cpu').valid
    x, y = valid.one_batch()[:2]
    fig = valid.show_results((x, y), y.bool(), **kw)
    try:
        assert not style_faults(fig), style_faults(fig)
        named = [[ds.classes[c] for c in np.flatnonzero(ds.labels[i])] for i in range(kw['max_n'])]
        assert [ax.get_title().split() for ax in fig.axes] == [['truth:', *n, 'pred:', *n] for n in named]
        assert tuple(fig.get_size_inches()) == kw['figsize']
    finally: plt.close(fig)

@pytest.mark.parametrize('kw', [dict(ncols=6, figsize=(7, 4)), dict(n=8, ncols=4, figsize=(5, 5))])
def test_sample_titles_follow_a_figsize_of_ones_own(kw):
    "show_samples at a figsize of one's own (it had none: its panels were 1.8 inches wide, the width its titles were wrapped to)."
    from stitchup_nb.digits import show_samples
    ds = voc_like()
    fig = show_samples(ds, **kw)
    try:
        assert not style_faults(fig), style_faults(fig)
        assert tuple(fig.get_size_inches()) == kw['figsize'] and len(fig.axes) == kw.get('n', 12)
    finally: plt.close(fig)

@pytest.mark.parametrize('made, drawn', [(72, 72), (80, 80), (100, 72), (100, 100)])
def test_sample_titles_of_a_short_figure_stay_on_their_panels(made, drawn):
    """show_samples of VOC's names in a 5 x 3 inch figure of six columns: each narrower title grew taller and took its height
    from the image, which narrowed again, until names were cut to 'a…' and still ran past their panels (a documented
    limit). A title now takes at most half its row's height: its first names, then the count of the others ('+2')."""
    from stitchup_nb.digits import show_samples
    ds = voc_like()
    with plt.rc_context({'figure.dpi': made}): fig = show_samples(ds, figsize=(5, 3))
    try:
        fig.set_dpi(drawn)
        assert not (faults := style_faults(fig)), faults
        idx = np.random.default_rng(0).choice(len(ds), 12, replace=False)      # show_samples' draw at seed 0
        counted = 0
        for ax, i in zip(fig.axes, idx):
            names, said = [ds.classes[c] for c in np.flatnonzero(ds.labels[i])], ax.get_title().split()
            more = int(said.pop()[1:]) if said[-1].startswith('+') else 0
            assert len(said) + more == len(names), (said, more, names)        # every name shown or counted
            assert all(n.startswith(s.split('…')[0]) and len(s.split('…')[0]) > 1 for s, n in zip(said, names)), (said, names)
            counted += more
        assert counted > 0                                                      # the check met titles that were capped
    finally: plt.close(fig)

def test_the_check_finds_what_a_figure_lacks():
    fig, axs = plt.subplots(1, 2)
    axs[0].plot([0, 1], label='a'); axs[0].plot([1, 0], label='b')
    axs[1].bar(range(3), [1, 2, 3]); axs[1].set_xticks(range(3), ['a long class name'] * 3)
    faults = style_faults(fig)
    plt.close(fig)
    assert faults[0].startswith('no title') and 'panel 0 (\'\'): no x label' in faults and 'and no legend' in faults[-1], faults
    assert any('x tick labels overlap' in f for f in faults), faults

def test_the_check_finds_titles_off_their_panels():
    fig, axs = plt.subplots(2, 2, figsize=(4, 4))
    for ax in axs.flat: ax.imshow(np.zeros((4, 4))); ax.axis('off')
    axs[0, 0].set_title('a title far too long for a panel two inches wide'); axs[1, 1].set_title('three\nlines\nhigh', fontsize=30)
    faults = style_faults(fig)
    plt.close(fig)
    assert any('wider than its panel' in f for f in faults) and any("lies on panel" in f for f in faults), faults

def plotting_functions(source:str, module:str) -> set:
    "The public functions of a module's `source` that make a figure, as `module.name` (`module.Class.name` for a method, @patch'd ones too)."
    def makes_figure(fn):
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MAKERS
                   and isinstance(n.func.value, ast.Name) and n.func.value.id == 'plt' for n in ast.walk(fn))
    def owner(fn):      # fastcore's @patch: the class is the annotation of `self`
        if fn.args.args and any(getattr(d, 'id', None) == 'patch' for d in fn.decorator_list):
            return ast.unparse(fn.args.args[0].annotation) + '.'
        return ''
    found, tree = set(), ast.parse(source)
    for node in tree.body:
        fns = [(node, owner(node) if isinstance(node, ast.FunctionDef) else '')] if isinstance(node, ast.FunctionDef) else \
              [(f, node.name + '.') for f in node.body if isinstance(f, ast.FunctionDef)] if isinstance(node, ast.ClassDef) else []
        found |= {f'{module}.{cls}{f.name}' for f, cls in fns if not f.name.startswith('_') and makes_figure(f)}
    return found

def test_the_finder_sees_functions_methods_and_patches():
    src = ('@patch\ndef show(self:Browser, i): fig, ax = plt.subplots(); return fig\n'
           'class A:\n    def draw(self): return plt.figure()\n'
           'def plot_x(): return plt.subplots()[0]\ndef _helper(): return plt.subplots()\ndef table(): return 1\n')
    assert plotting_functions(src, 'm') == {'m.Browser.show', 'm.A.draw', 'm.plot_x'}

def test_every_plotting_function_is_listed():
    found = set().union(*(plotting_functions(p.read_text(), p.stem) for p in PACKAGE.glob('*.py')))
    assert found == set(FIGURES), (f'draw a figure but are not in tests/test_figures.py FIGURES (add each with a small call): '
                                   f'{sorted(found - set(FIGURES))}; listed but draw none (remove or rename): {sorted(set(FIGURES) - found)}')

@pytest.mark.parametrize('made, drawn', [(72, 72), (80, 80), (100, 72)])
def test_titles_stay_on_their_panels_at_a_low_dpi(made, drawn):
    """Made or drawn at 72 or 80 dpi (an rcParams `figure.dpi`, a `savefig(dpi=72)`), Agg's hinting draws text up to 7% wider
    than `text_inches` measures it: titles wrapped to 95% of their panel by that measure ran up to 6% past it (VOC's names
    in a 7 x 4 inch show_samples, made at 80 dpi and drawn at 72; show_results' at 80 dpi). They are wrapped 8% short, as chips."""
    from stitchup_nb.digits import show_samples
    from stitchup_nb.loaders import stitch_dls
    voc, coco = voc_like(), coco_like()
    valid = stitch_dls(voc, voc.labels, voc, bs=8, device='cpu').valid
    x, y = valid.one_batch()[:2]
    makers = [lambda ds=ds, kw=kw: show_samples(ds, **kw) for ds in (voc, coco) for kw in (dict(), dict(figsize=(7, 4)), dict(n=8, ncols=4))]
    makers += [lambda: valid.show_results((x, y), y.bool(), max_n=8), lambda: valid.show_results((x, y), y.bool(), max_n=8, ncols=8, figsize=(10, 4))]
    for make in makers:
        with plt.rc_context({'figure.dpi': made}): fig = make()
        try:
            fig.set_dpi(drawn)
            fig.canvas.draw()
            assert not (faults := _titles_off_panel(fig)), faults
        finally: plt.close(fig)
