"""The co-learner is a plain fastai Learner: lr_find, fit_one_cycle, show_results, validate/get_preds
(the ensemble), mixed precision and channels_last all work on it (digits-small, CPU, untrained backbone)."""
import matplotlib
matplotlib.use('Agg')
import pytest
import torch
from fastai.callback.progress import ProgressCallback

from stitchup_nb.colearn import colearner
from stitchup_nb.digits import digits_mlt
from stitchup_nb.metrics import lt_map, lt_metrics
from stitchup_nb.loaders import stitch_dls


@pytest.fixture(scope='module')
def data(): return digits_mlt(n_max=200, n_min=2, n_test=300)


def learner(data, **kw):
    train, test = data
    learn = colearner(stitch_dls(train, train.labels, test, bs=16, seed=0, device='cpu'), pretrained=False,
                      metrics=lt_metrics(train.groups), thresholds={'random_head_alpha': .7}, **kw)
    learn.remove_cb(ProgressCallback)
    return learn


def test_lr_find_and_fit_one_cycle(data):
    learn = learner(data)
    lr = learn.lr_find(num_it=8, show_plot=False).valley
    assert 0 < lr < 10
    learn = learner(data)
    learn.fit_one_cycle(1, 1e-2)
    assert len(learn.recorder.values) == 1 and torch.isfinite(torch.tensor(learn.recorder.values[0][:2])).all()


def test_validate_and_get_preds_are_the_ensemble(data):
    learn = learner(data)
    p, y = learn.get_preds()
    test = data[1]
    assert p.shape == y.shape == (len(test), len(test.classes)) and torch.equal(y, torch.as_tensor(test.labels).float())
    x = learn.dls.valid.one_batch()[0]
    with torch.no_grad():
        learn.model.eval()
        zr, zb = (learn.model.branches[n](x) for n in ('random', 'balanced'))
        want = torch.sigmoid(0.1 * zr + 0.9 * zb)
    assert torch.allclose(p[:len(x)], want, atol=1e-5)
    z, _ = learn.get_preds(act=lambda o: o)        # logits: ranks without sigmoid's saturated ties, as the metric sees them
    assert learn.validate()[1] == pytest.approx(lt_map(z, y, data[0].groups)['total'], abs=1e-6)


def test_show_results_draws_labels_and_predictions(data):
    learn = learner(data)
    import matplotlib.pyplot as plt
    learn.show_results(max_n=4)
    fig = plt.gcf()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and all('truth:' in t and 'pred:' in t for t in titles)


@pytest.mark.parametrize('setup', ['to_bf16', 'to_fp16', 'to_channelslast'])
def test_precision_and_memory_format_options_train(data, setup):
    learn = learner(data)
    getattr(learn, setup)(**({'use_amp': False} if setup == 'to_channelslast' else {}))
    learn.fit(1, 1e-3)
    assert torch.isfinite(torch.tensor(learn.recorder.values[-1][:2])).all()
