"mAP per group against a hand-written AP, exclusion of classes without positives, the fastai metric, correction quality."
import warnings
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.data.core import DataLoaders
from fastai.learner import Learner

import stitchup_nb.metrics as M
from stitchup_nb.metrics import average_precision, correction_quality, lt_map, lt_metrics, per_class_ap_table

GROUPS3 = {'head': [0, 1], 'medium': [2], 'tail': [3, 4]}


def ap_by_hand(s, y):
    "AP of one class without ties: mean over positives of the precision at their rank."
    order = np.argsort(-s, kind='stable')
    hits = y[order].astype(bool)
    ranks = np.flatnonzero(hits) + 1
    return np.mean(np.arange(1, len(ranks) + 1) / ranks)


@pytest.fixture
def tiny():
    rng = np.random.default_rng(1)
    s = rng.permutation(40 * 5).reshape(40, 5) / 200.          # distinct scores: no ties
    y = (rng.random((40, 5)) < .3).astype(np.uint8)
    y[0] = 1
    return s, y


def test_average_precision_matches_hand_computation(tiny):
    s, y = tiny
    want = [ap_by_hand(s[:, k], y[:, k]) for k in range(5)]
    np.testing.assert_allclose(average_precision(s, y), want, rtol=1e-12)


def test_lt_map_matches_manual_means_in_percent(tiny):
    s, y = tiny
    ap = np.array([ap_by_hand(s[:, k], y[:, k]) for k in range(5)])
    res = lt_map(s, y, GROUPS3)
    assert res == pytest.approx({'total': 100 * ap.mean(), 'head': 100 * ap[:2].mean(),
                                 'medium': 100 * ap[2], 'tail': 100 * ap[3:].mean()})


def test_logits_probabilities_numpy_and_torch_agree(tiny):
    s, y = tiny
    p = torch.tensor(np.clip(s, 1e-3, 1 - 1e-3) * .9 + .05, dtype=torch.float64)
    base = lt_map(p.numpy(), y, GROUPS3)
    for scores in (torch.logit(p), torch.logit(p).float(), p.float()):
        assert lt_map(scores, torch.tensor(y, dtype=torch.float32), GROUPS3) == pytest.approx(base)


def test_classes_without_positives_are_excluded_with_one_warning(tiny):
    s, y = tiny
    y = y.copy(); y[:, 2] = 0; y[:, 4] = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        res = lt_map(s, y, GROUPS3)
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert '2 of 5 classes' in msg and '2 (medium)' in msg and '4 (tail)' in msg
    ap = average_precision(s, y)
    assert np.isnan(ap[[2, 4]]).all() and not np.isnan(ap[[0, 1, 3]]).any()
    assert np.isnan(res['medium'])
    assert res['tail'] == pytest.approx(100 * ap[3])
    assert res['total'] == pytest.approx(100 * np.nanmean(ap))


def test_no_warning_when_every_class_has_positives(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        lt_map(*tiny, GROUPS3)


def test_all_classes_without_positives_gives_nan_everywhere(tiny):
    s, _ = tiny
    with pytest.warns(UserWarning, match='5 of 5 classes'):
        res = lt_map(s, np.zeros_like(s, dtype=np.uint8), GROUPS3)
    assert all(np.isnan(v) for v in res.values())


@pytest.mark.parametrize('scores, targets, groups, msg', [
    (np.zeros((4, 5)), np.zeros((4, 4)), GROUPS3, 'same N×C shape'),
    (np.full((4, 5), np.nan), np.zeros((4, 5)), GROUPS3, 'NaN or infinite'),
    (np.zeros((4, 5)), np.full((4, 5), 2), GROUPS3, '0/1'),
    (np.zeros((4, 5)), np.zeros((4, 5)), {'head': [0, 1], 'medium': [2], 'tail': [3]}, 'in no group'),
    (np.zeros((4, 5)), np.zeros((4, 5)), {'head': [0, 1], 'middle': [2], 'tail': [3, 4]}, 'expected the keys'),
])
def test_bad_inputs_are_clear(scores, targets, groups, msg):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(ValueError, match=msg): lt_map(scores, targets, groups)


def test_per_class_ap_table(tiny):
    s, y = tiny
    y = y.copy(); y[:, 4] = 0
    t = per_class_ap_table(s, y, GROUPS3, classes=list('abcde'))
    assert list(t.columns) == ['class', 'group', 'n_test_pos', 'AP']
    assert t['class'].tolist() == list('abcde') and t['group'].tolist() == ['head', 'head', 'medium', 'tail', 'tail']
    assert t['n_test_pos'].tolist() == y.sum(0).tolist()
    np.testing.assert_allclose(t['AP'], 100 * average_precision(s, y))
    assert per_class_ap_table(s, y, GROUPS3)['class'].tolist() == [0, 1, 2, 3, 4]


def _learner(n=96, c=5, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 6, generator=g), (torch.rand(n, c, generator=g) < .3).float()
    y[n // 2] = 1   # every class has a validation positive
    dls = DataLoaders.from_dsets(TensorDataset(x[:n // 2], y[:n // 2]), TensorDataset(x[n // 2:], y[n // 2:]),
                                 bs=bs, device='cpu')
    return Learner(dls, nn.Linear(6, c), loss_func=nn.BCEWithLogitsLoss(), metrics=lt_metrics(GROUPS3))


def test_fastai_metric_through_validate_equals_lt_map(monkeypatch):
    learn = _learner()
    calls = []
    real = M.average_precision_score
    monkeypatch.setattr(M, 'average_precision_score', lambda *a, **k: calls.append(1) or real(*a, **k))
    rec = learn.validate()
    assert len(calls) == 1, 'AP must be computed once per validation, not once per reported value'
    preds, targs = learn.get_preds()
    want = lt_map(preds, targs, GROUPS3)
    assert list(rec[1:]) == pytest.approx([want[k] for k in ('total', 'head', 'medium', 'tail')], rel=1e-5)
    assert [m.name for m in learn.metrics] == ['mAP', 'head_mAP', 'medium_mAP', 'tail_mAP']


def test_fastai_metric_resets_between_validations_and_after_fit():
    learn = _learner()
    first = learn.validate()
    assert list(learn.validate()) == pytest.approx(list(first))
    learn.fit(1, 1e-2)
    rec = learn.validate()
    preds, targs = learn.get_preds()
    assert rec[1] == pytest.approx(lt_map(preds, targs, GROUPS3)['total'], rel=1e-5)
    assert list(learn.recorder.metric_names) == ['epoch', 'train_loss', 'valid_loss', 'mAP', 'head_mAP',
                                                 'medium_mAP', 'tail_mAP', 'time']


def test_any_subset_of_the_metrics_works():
    learn = _learner()
    full = learn.validate()
    learn.metrics = lt_metrics(GROUPS3)[3:]
    assert learn.validate()[1] == pytest.approx(full[4])


class _FakeLearn:
    "Just what the metric reads: pred, yb and to_detach."
    def __init__(self): self.calls = 0
    def to_detach(self, t):
        self.calls += 1
        return t.detach().cpu()


def test_each_batch_is_moved_to_cpu_once_by_the_shared_accumulator():
    mets, learn = lt_metrics(GROUPS3), _FakeLearn()
    for m in mets: m.reset()
    preds, targs = torch.randn(24, 5), (torch.rand(24, 5) < .5).float()
    targs[0] = 1
    for b in range(3):
        learn.pred, learn.yb = preds[8 * b:8 * (b + 1)].clone(), (targs[8 * b:8 * (b + 1)],)
        for m in mets: m.accumulate(learn)
    assert learn.calls == 3 * 2            # preds and targets, once per batch
    want = lt_map(preds, targs, GROUPS3)
    assert [m.value for m in mets] == pytest.approx([want[k] for k in ('total', 'head', 'medium', 'tail')])


def test_metric_needs_a_logits_tensor():
    learn = _FakeLearn()
    learn.pred, learn.yb = (torch.zeros(2, 5), torch.zeros(2, 5)), (torch.zeros(2, 5),)
    with pytest.raises(TypeError, match='N×C logits tensor, got tuple'): lt_metrics(GROUPS3)[0].accumulate(learn)


def test_float64_and_half_scores_are_read_at_their_precision():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s64 = torch.tensor([[1., 1e-9], [1 + 1e-9, 0.], [1 - 1e-9, 2e-9]], dtype=torch.float64)
    assert np.array_equal(average_precision(s64, y), average_precision(s64.numpy(), y))
    assert np.isfinite(average_precision(s64.to(torch.bfloat16), y)).all()


def test_metric_with_no_batches_is_none():
    mets = lt_metrics(GROUPS3)
    for m in mets: m.reset()
    assert all(m.value is None for m in mets)


def test_lt_metrics_rejects_bad_groups():
    with pytest.raises(ValueError, match='more than one group'):
        lt_metrics({'head': [0, 1], 'medium': [1], 'tail': [2]})


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_fastai_metric_on_gpu():
    learn = _learner()
    learn.dls.to('cuda'); learn.model.cuda()
    rec = learn.validate()
    preds, targs = learn.get_preds()
    assert rec[1] == pytest.approx(lt_map(preds, targs, GROUPS3)['total'], rel=1e-4)


def test_correction_quality_hand_computed():
    clean     = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 0]])
    noisy     = np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]])
    corrected = np.array([[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    cq = correction_quality(clean, noisy, torch.tensor(corrected, dtype=torch.float32),
                            {'head': [0], 'medium': [1], 'tail': [2, 3]})
    assert list(cq.index) == ['head', 'medium', 'tail', 'all']
    cols = ['classes', 'labels', 'noisy_wrong', 'corrected_wrong', 'fixed', 'broke', 'changed', 'on', 'off']
    # class 0: (0,0) fixed on, (3,0) fixed off; class 1: (0,1) spurious kept, (2,1) broke off;
    # class 2: (0,2) broke off; class 3: (1,3) fixed on.
    assert cq.loc['head', cols].tolist() == [1, 4, 2, 0, 2, 0, 2, 1, 1]
    assert cq.loc['medium', cols].tolist() == [1, 4, 1, 2, 0, 1, 1, 0, 1]
    assert cq.loc['tail', cols].tolist() == [2, 8, 1, 1, 1, 1, 2, 1, 1]
    assert cq.loc['all', cols].tolist() == [4, 16, 4, 3, 3, 2, 5, 2, 3]
    # noisy: 6 positives, 4 true of 6 clean; corrected: 5 positives, 4 true
    assert cq.loc['all', ['precision_noisy', 'precision_corrected', 'recall_noisy', 'recall_corrected']].tolist() == \
        pytest.approx([100 * 4 / 6, 100 * 4 / 5, 100 * 4 / 6, 100 * 4 / 6])
    assert cq.loc['medium', ['precision_noisy', 'precision_corrected', 'recall_noisy', 'recall_corrected']].tolist() == \
        pytest.approx([50., 0., 100., 0.])
    assert (cq['changed'] == cq['fixed'] + cq['broke']).all() and (cq['changed'] == cq['on'] + cq['off']).all()
    assert (cq['corrected_wrong'] == cq['noisy_wrong'] - cq['fixed'] + cq['broke']).all()


def test_correction_quality_without_groups_and_empty_denominators():
    z = np.zeros((3, 2), np.uint8)
    cq = correction_quality(z, z, z)
    assert list(cq.index) == ['all'] and cq.loc['all', 'changed'] == 0
    assert np.isnan(cq.loc['all', 'precision_noisy']) and np.isnan(cq.loc['all', 'recall_corrected'])
    assert pd.api.types.is_integer_dtype(cq['fixed'])


def test_correction_quality_bad_inputs():
    a = np.zeros((3, 2))
    with pytest.raises(ValueError, match='same N×C shape'): correction_quality(a, a, np.zeros((3, 3)))
    with pytest.raises(ValueError, match='0/1'): correction_quality(a, a + 2, a)
