"""Each baseline's loss against a direct computation from its formula."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fofakd.methods.dist import dist_parts
from fofakd.methods.dkd import dkd_parts
from fofakd.methods.losses import kd_loss
from fofakd.methods.ofa import ofa_loss
from fofakd.methods.rkd import rkd_angle, rkd_distance


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_dkd_parts_recompose_kd(temperature):
    # Per sample: KD = TCKD + (1 - p_T[target]) * NCKD (DKD paper, eq. 7), with p_T at temperature T.
    torch.manual_seed(1)
    for _ in range(5):
        zs, zt, label = torch.randn(1, 6) * 3, torch.randn(1, 6) * 3, torch.randint(0, 6, (1,))
        tckd, nckd = dkd_parts(zs, zt, label, temperature)
        pt_target = torch.softmax(zt / temperature, dim=1)[0, label]
        assert (tckd + (1 - pt_target) * nckd).item() == pytest.approx(kd_loss(zs, zt, temperature).item(), rel=1e-5)


def test_dkd_tckd_direct():
    zs, zt, label = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.5, 1.0, 0.0]]), torch.tensor([1])
    ps, pt = torch.softmax(zs, 1)[0], torch.softmax(zt, 1)[0]
    bs, bt = torch.stack([ps[1], 1 - ps[1]]), torch.stack([pt[1], 1 - pt[1]])
    tckd, nckd = dkd_parts(zs, zt, label)
    assert tckd.item() == pytest.approx((bt * (bt / bs).log()).sum().item(), rel=1e-5)
    qs, qt = torch.softmax(zs[0, [0, 2]], 0), torch.softmax(zt[0, [0, 2]], 0)
    assert nckd.item() == pytest.approx((qt * (qt / qs).log()).sum().item(), rel=1e-5)


def test_dist_matches_numpy_correlations():
    torch.manual_seed(2)
    zs, zt = torch.randn(5, 7), torch.randn(5, 7)
    inter, intra = dist_parts(zs, zt)
    ps, pt = torch.softmax(zs, 1).numpy(), torch.softmax(zt, 1).numpy()
    rows = np.mean([1 - np.corrcoef(ps[i], pt[i])[0, 1] for i in range(5)])
    cols = np.mean([1 - np.corrcoef(ps[:, j], pt[:, j])[0, 1] for j in range(7)])
    assert inter.item() == pytest.approx(rows, rel=1e-5)
    assert intra.item() == pytest.approx(cols, rel=1e-5)
    same, same_intra = dist_parts(zs, zs)
    assert same.item() == pytest.approx(0.0, abs=1e-5) and same_intra.item() == pytest.approx(0.0, abs=1e-5)


def test_rkd_is_zero_for_a_scaled_copy_and_positive_otherwise():
    torch.manual_seed(4)
    teacher = torch.randn(6, 16)
    # distances are normalised by their mean and angles are scale-free: a scaled student is perfect
    assert rkd_distance(3 * teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert rkd_angle(3 * teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(6, 8)
    assert rkd_distance(other, teacher).item() > 1e-3 and rkd_angle(other, teacher).item() > 1e-3


def test_rkd_distance_direct():
    s = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])  # pairwise distances 5, 4, 3 -> mean 4
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])  # pairwise distances 1, 2, 1 -> mean 4/3
    ds = torch.tensor([[0, 5, 4], [5, 0, 3], [4, 3, 0]]) / 4.0
    dt = torch.tensor([[0, 1, 2], [1, 0, 1], [2, 1, 0]]) / (4.0 / 3.0)
    assert rkd_distance(s, t).item() == pytest.approx(F.smooth_l1_loss(ds, dt).item(), rel=1e-5)
