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
from fofakd.methods.rsd import RSDProjector, rsd_loss


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


def test_rsd_loss_direct():
    # Standardise each column over the batch with numpy, form C = z_t^T z_s / B, sum (C_ii - 1)^2 on the diagonal
    # and kappa * C_ij^2 off it, element by element.
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(6, 4)) * 3 + 1, rng.normal(size=(6, 4))
    zs = (student - student.mean(0)) / (student.std(0) + 1e-5)
    zt = (teacher - teacher.mean(0)) / (teacher.std(0) + 1e-5)
    c = zt.T @ zs / 6
    expected = sum((c[i, j] - 1) ** 2 if i == j else 0.05 * c[i, j] ** 2 for i in range(4) for j in range(4))
    got = rsd_loss(torch.tensor(student, dtype=torch.float32), torch.tensor(teacher, dtype=torch.float32), 0.05)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_rsd_loss_ignores_scale_and_shift_and_is_zero_for_whitened_copies():
    torch.manual_seed(0)
    student, teacher = torch.randn(32, 8), torch.randn(32, 8)
    base = rsd_loss(student, teacher, 0.01)
    assert rsd_loss(student * 5 - 2, teacher * 0.1 + 3, 0.01).item() == pytest.approx(base.item(), rel=1e-4)
    # Orthonormal columns of a centred matrix, scaled to unit (biased) variance: C = I for a copy, loss 0 but for eps.
    x = torch.randn(32, 8, dtype=torch.float64)
    white = torch.linalg.qr(x - x.mean(0))[0] * 32**0.5
    assert rsd_loss(white, white, 0.01).item() < 1e-3 < base.item()


def test_rsd_projector_layout():
    torch.manual_seed(0)
    projector = RSDProjector(64, 32, gamma=2)
    kinds = [type(m).__name__ for m in projector]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Linear"]
    assert (projector[0].in_features, projector[0].out_features, projector[3].out_features) == (64, 128, 32)
    assert projector[0].bias is None and projector[3].bias is None
    assert projector[0].weight.std().item() == pytest.approx(0.02, rel=0.05)  # the authors' trunc-normal(0.02)
    assert torch.equal(projector[1].weight, torch.ones(128)) and torch.equal(projector[1].bias, torch.zeros(128))
