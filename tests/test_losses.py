"BCE and DB-Focal: the formulas against a plain loop, reduction to BCE, edge counts, dtypes, devices and bad input."
import copy, io, math, warnings
import numpy as np
import pytest
import torch
from stitchup_nb.losses import DBFocalLoss, bce_loss, db_class_counts


def db_focal_loop(z, y, n, N, a=.1, b=10., mu=.3, lam=5., kappa=.05, gamma=2., bal=2.):
    "The DB-Focal formulas (Wu et al., ECCV 2020, as 05_losses states them), one element at a time in float64."
    out = np.zeros(z.shape)
    for i in range(z.shape[0]):
        s = sum(y[i, j] / n[j] for j in range(z.shape[1]))
        for k in range(z.shape[1]):
            r = math.inf if s == 0 else (1 / n[k]) / s
            w = a + (1. if r == math.inf else 1 / (1 + math.exp(-b * (r - mu))))
            zk = z[i, k] - math.log(N / n[k] - 1) * kappa / lam
            if y[i, k] == 0: zk, w = zk * lam, w / lam
            p = 1 / (1 + math.exp(-zk))
            pt = p if y[i, k] == 1 else 1 - p
            out[i, k] = bal * (1 - pt) ** gamma * w * -math.log(pt)
    return out


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    y = (rng.random((12, 5)) < .35).astype(np.float64)
    y[:, 3] = 0; y[4, 3] = 1          # class 3: a single positive
    y[7] = 0                          # image 7: no positive at all
    y[0, 0] = y[1, 0] = 1             # class 0 has at least two
    z = rng.normal(0, 3, y.shape)
    return z, y, y.sum(0), len(y)


def test_matches_the_formulas_element_by_element(case):
    z, y, n, N = case
    assert n[3] == 1 and y[7].sum() == 0
    loss = DBFocalLoss(n, n_images=N, reduction='none')
    got = loss(torch.tensor(z, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), db_focal_loop(z, y, n, N), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('kw', [dict(gamma=0., balance=1.), dict(lam=1., kappa=0.), dict(alpha=.3, beta=4., mu=.5)])
def test_other_hyper_parameters_match_the_formulas(case, kw):
    z, y, n, N = case
    names = dict(alpha='a', beta='b', mu='mu', lam='lam', kappa='kappa', gamma='gamma', balance='bal')
    loss = DBFocalLoss(n, n_images=N, reduction='sum', **kw)
    want = db_focal_loop(z, y, n, N, **{names[k]: v for k, v in kw.items()}).sum()
    assert loss(torch.tensor(z), torch.tensor(y)).item() == pytest.approx(want, rel=1e-4)


def test_reduces_to_bce_when_every_part_is_switched_off(case):
    z, y, n, N = case
    plain = DBFocalLoss(n, n_images=N, alpha=.5, beta=0., lam=1., kappa=0., gamma=0., balance=1.)
    zt, yt = torch.tensor(z, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    assert torch.allclose(plain(zt, yt, reduction='none'), bce_loss(zt, yt, reduction='none'), atol=1e-6)
    assert torch.allclose(plain(zt, yt), bce_loss(zt, yt), atol=1e-6)


def test_reductions_and_override(case):
    z, y, n, N = case
    zt, yt = torch.tensor(z), torch.tensor(y)
    loss = DBFocalLoss(n, n_images=N)
    full = loss(zt, yt, reduction='none')
    assert full.shape == zt.shape
    assert torch.allclose(loss(zt, yt), full.mean()) and torch.allclose(loss(zt, yt, reduction='sum'), full.sum())
    assert bce_loss(zt, yt, reduction='none').shape == zt.shape


def test_image_without_positive_gets_alpha_plus_one():
    loss = DBFocalLoss([4, 2, 1], n_images=6)
    w = loss.rebalance_weight(torch.zeros(2, 3))
    assert torch.equal(w, torch.full((2, 3), 1.1))


def test_edge_counts_warn_name_the_classes_and_stay_finite():
    with pytest.warns(UserWarning, match=r'1 of 4 classes have no training positive \(classes \[0\]\)'):
        with pytest.warns(UserWarning, match=r'1 of 4 classes are positive in every training image \(classes \[3\]\)'):
            loss = DBFocalLoss([0, 1, 5, 10], n_images=10, gamma=.5)
    assert torch.isfinite(loss.bias).all() and torch.isfinite(loss.inv_freq).all()
    z = torch.tensor([[300., -300., 0., 50.], [-300., 300., 5., -50.], [0., 0., 0., 0.]], requires_grad=True)
    y = torch.tensor([[1., 0., 0., 1.], [0., 1., 0., 0.], [0., 0., 0., 0.]])
    out = loss(z, y, reduction='none')
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(z.grad).all()


def test_no_warning_for_ordinary_counts():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        DBFocalLoss([1, 5, 9], n_images=10)


def test_counts_from_neg_class_freq_and_from_labels_agree():
    labels = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    a = DBFocalLoss(labels.sum(0), neg_class_freq=len(labels) - labels.sum(0))
    b = DBFocalLoss.from_labels(torch.tensor(labels, dtype=torch.float32))
    c = DBFocalLoss.from_labels(labels)
    for other in (b, c):
        assert torch.equal(a.bias, other.bias) and torch.equal(a.inv_freq, other.inv_freq)
    assert a.n_images == 4 and a.n_classes == 3


@pytest.mark.parametrize('kwargs, msg', [
    (dict(class_freq=[3, 2]), 'either as n_images'),
    (dict(class_freq=[3, 2], n_images=5, neg_class_freq=[2, 3]), 'either as n_images'),
    (dict(class_freq=[3, 2], neg_class_freq=[2, 4]), 'same N for every class'),
    (dict(class_freq=[3, 2], neg_class_freq=[2, 3, 1]), 'neg_class_freq'),
    (dict(class_freq=[[3, 2]], n_images=5), '1-D'),
    (dict(class_freq=[3, -1], n_images=5), 'finite and >= 0'),
    (dict(class_freq=[3, 6], n_images=5), 'more positives than'),
    (dict(class_freq=[1, 0], n_images=1), 'N >= 2'),
    (dict(class_freq=[3, 2], n_images=5, reduction='avg'), 'reduction must be'),
])
def test_bad_counts_are_errors(kwargs, msg):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(ValueError, match=msg): DBFocalLoss(**kwargs)


def test_from_labels_rejects_non_binary_labels():
    with pytest.raises(ValueError, match='0/1'): DBFocalLoss.from_labels(np.array([[0, 2], [1, 0]]))


def test_shape_mismatches_are_clear():
    loss = DBFocalLoss([2, 3, 4], n_images=6)
    with pytest.raises(ValueError, match='built for 3 classes'): loss(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='same N×C shape'): loss(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match='built for 3 classes'): loss(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match='reduction must be'): loss(torch.zeros(2, 3), torch.zeros(2, 3), reduction='avg')
    with pytest.raises(ValueError): bce_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_state_dict_round_trip_through_bytes():
    loss = DBFocalLoss([5, 1, 2, 9], n_images=12)
    buf = io.BytesIO(); torch.save(loss.state_dict(), buf); buf.seek(0)
    other = DBFocalLoss([1, 1, 1, 1], n_images=12)
    other.load_state_dict(torch.load(buf))
    z, y = torch.randn(6, 4), (torch.rand(6, 4) < .4).float()
    assert torch.equal(other(z, y, reduction='none'), loss(z, y, reduction='none'))
    assert set(loss.state_dict()) == {'inv_freq', 'bias'}


def test_buffers_follow_the_module_and_output_is_float32():
    loss = DBFocalLoss([5, 1, 2, 9], n_images=12).to(torch.float64)
    assert loss.bias.dtype == torch.float64
    z, y = torch.randn(3, 4, dtype=torch.float16), torch.ones(3, 4)
    assert loss.float()(z, y).dtype == torch.float32


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_under_autocast_it_computes_in_float32(dtype):
    loss = DBFocalLoss([5, 1, 2, 9], n_images=12, reduction='none')
    lin = torch.nn.Linear(4, 4)
    x, y = torch.randn(8, 4) * 20, (torch.rand(8, 4) < .4).float()
    with torch.autocast('cpu', dtype=dtype):
        z = lin(x)
        out = loss(z, y)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out, loss(z.float(), y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_on_gpu_matches_cpu():
    cpu = DBFocalLoss([5, 1, 2, 9], n_images=12, reduction='none')
    gpu = copy.deepcopy(cpu).to('cuda')
    z, y = torch.randn(8, 4), (torch.rand(8, 4) < .4).float()
    with torch.autocast('cuda', dtype=torch.float16):
        got = gpu(z.cuda().half(), y.cuda())
    assert got.device.type == 'cuda' and got.dtype == torch.float32
    assert torch.allclose(got.cpu(), cpu(z.half().float(), y), atol=1e-5)


def test_gradients_are_finite_and_push_the_right_way():
    loss = DBFocalLoss([5, 1, 2, 9], n_images=12)
    z = torch.zeros(2, 4, requires_grad=True)
    y = torch.tensor([[1., 0., 1., 0.], [0., 1., 0., 1.]])
    loss(z, y).backward()
    assert torch.isfinite(z.grad).all()
    assert (z.grad[y == 1] < 0).all() and (z.grad[y == 0] > 0).all()


def test_db_class_counts_clips_to_one_and_n_minus_one():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        n, N = db_class_counts([0, 3, 10], n_images=10)
    assert N == 10 and n.tolist() == [1, 3, 9]


def test_works_as_a_fastai_loss_func():
    from torch.utils.data import TensorDataset
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), (torch.rand(64, 4, generator=g) < .3).float()
    dls = DataLoaders.from_dsets(TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:]), bs=16, device='cpu')
    learn = Learner(dls, torch.nn.Linear(6, 4), loss_func=DBFocalLoss.from_labels(y[:48]))
    learn.fit(2, 1e-2)
    valid_loss = learn.validate()[0]
    assert math.isfinite(valid_loss)
    _, _, losses = learn.get_preds(with_loss=True)       # fastai sets reduction='none', then averages per image
    assert losses.shape == (16,) and learn.loss_func.reduction == 'mean'
    assert losses.mean().item() == pytest.approx(valid_loss, rel=1e-5)
