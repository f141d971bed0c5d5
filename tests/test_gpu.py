"""The GPU paths (the device step, bf16, the device loader), checked on a CUDA device (skipped elsewhere; `tools/gpu_checks.sh` runs them on one).

- A decoded set kept on the GPU gives the very batches the host path gives (images, labels, indices).
- `DeviceSmoothLoss` on the GPU gives fastai's smoothed loss.
- A Digits run with `--precision auto` trains in bf16 with channels-last images, says so in config.json, and scores; its
  switches (TF32, cuDNN autotuning) are the kernel's again after it, and `run_switches` sets them for its learner.
"""
import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


@pytest.fixture(scope='module')
def digits():
    from stitchup_nb.labels import load_benchmark
    train, test, _ = load_benchmark('digits-small', None, None, 64, 0)
    return train, test


def test_device_batches_match_host(digits):
    from stitchup_nb.loaders import stitch_dls
    train, test = digits
    noisy = train.labels.copy()
    host, dev = (stitch_dls(train, noisy, test, bs=8, device=d, seed=3) for d in ('cpu', 'cuda'))
    assert host.train.device_data() is None and dev.train.device_data() is not None
    bundle = host.train.get_idxs()[0]
    (xh, yh, ih), (xd, yd, idd) = host.train.create_batch(bundle), dev.train.create_batch(bundle)
    for a, b in zip(xh + yh + ih, xd + yd + idd):
        assert b.device.type == 'cuda'
        assert torch.equal(a, b.cpu())
    idx = np.arange(5)
    for a, b in zip(host.valid.create_batch(idx), dev.valid.create_batch(idx)): assert torch.equal(a, b.cpu())
    assert dev.valid.bs == 512 and host.valid.bs == 128


def test_device_smooth_loss():
    from types import SimpleNamespace
    from fastai.learner import AvgSmoothLoss
    from stitchup_nb.speed import DeviceSmoothLoss
    a, b = AvgSmoothLoss(), DeviceSmoothLoss()
    a.reset(); b.reset()
    for v in (1., 3., 2., 5.):
        a.accumulate(SimpleNamespace(loss=torch.tensor([v, v])))
        b.accumulate(SimpleNamespace(loss=torch.tensor([v, v], device='cuda')))
    assert b.value.device.type == 'cuda'
    assert abs(float(a.value) - float(b.value)) < 1e-6


def test_auto_precision_run(tmp_path):
    from stitchup_nb.train import run_training, train_config
    cfg = train_config(dataset='digits-small', epochs=2, work_dir=str(tmp_path/'run'), quiet=True)   # 2: HostLossLog meets last epoch's host losses
    assert cfg['precision'] == 'auto'
    from stitchup_nb.speed import run_switches
    was = torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision
    learn, table = run_training(cfg)
    saved = json.loads((tmp_path/'run'/'config.json').read_text())
    assert (saved['precision'], saved['channels_last']) == ('bf16', True)
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision) == was     # the kernel's, put back
    with run_switches(learn):                                                                          # the run's
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert np.isfinite(table.loc['ensemble', 'total'])
    assert all(v.device.type == 'cpu' for v in learn.recorder.losses)      # HostLossLog brought them back once an epoch
