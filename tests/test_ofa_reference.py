"""OFA against its authors' formula (OFA's `ofa_loss` and total), written out here in float64."""
import pytest
import torch
import torch.nn.functional as F

import fofakd
from fofakd.features.stages import forward_stages
from fofakd.methods.ofa import ofa_loss
from pairs import INPUT_SIZE, SIZE, make_model


def authors_ofa_loss(zs, zt, labels, gamma, temperature):
    """The OFA authors' loss: -sum_c [(p_t + m)^g - m] log p_s, m the one-hot target, batch mean."""
    zs, zt = zs.double(), zt.double()
    mask = F.one_hot(labels, zs.shape[1]).double()
    ps, pt = torch.softmax(zs / temperature, 1), torch.softmax(zt / temperature, 1)
    return (-((pt + mask) ** gamma - mask) * torch.log(ps)).sum(-1).mean()


def _logits(scale):
    g = torch.Generator().manual_seed(int(scale))
    return torch.randn(6, 10, generator=g) * scale, torch.randn(6, 10, generator=g) * scale, \
        torch.randint(0, 10, (6,), generator=g)


@pytest.mark.parametrize("gamma", [1.0, 1.5])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("scale", [1.0, 25.0])  # 25: logits up to about +-75, softmax tails near 1e-30
def test_ofa_loss_equals_the_authors(gamma, temperature, scale):
    zs, zt, labels = _logits(scale)
    expected = authors_ofa_loss(zs, zt, labels, gamma, temperature)
    got = ofa_loss(zs, zt, labels, gamma, temperature)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_ofa_at_gamma_one_is_soft_target_cross_entropy_without_a_second_ground_truth_term():
    zs, zt, labels = _logits(1.0)
    soft = -(torch.softmax(zt, 1) * torch.log_softmax(zs, 1)).sum(1).mean()
    assert ofa_loss(zs, zt, labels, 1.0).item() == pytest.approx(soft.item(), rel=1e-6)
    # the paper's printed form adds exactly one ground-truth cross-entropy at gamma = 1
    paper = ofa_loss(zs, zt, labels, 1.0, form="paper")
    assert paper.item() == pytest.approx(soft.item() + F.cross_entropy(zs, labels).item(), rel=1e-6)


def test_ofa_paper_form_raises_the_target_weight_only():
    zs, zt, labels = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0])
    ps, pt = torch.softmax(zs, 1)[0], torch.softmax(zt, 1)[0]
    expected = -(1 + pt[0]) ** 1.5 * ps[0].log() - pt[1] * ps[1].log() - pt[2] * ps[2].log()
    assert ofa_loss(zs, zt, labels, 1.5, form="paper").item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 1.5])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_ofa_total_equals_the_authors_total(gamma, temperature):
    # Their total: loss_gt (CE of the final logits) + loss_kd (ofa_loss on the final logits) + loss_ofa (the sum of
    # ofa_loss over the exit branches), every weight 1.
    torch.manual_seed(0)
    distiller = fofakd.build_distiller("ofa", teacher=make_model("resnet18"), student=make_model("resnet18"),
                                       input_size=INPUT_SIZE, gamma=gamma, temperature=temperature).train()
    x, y = torch.randn(4, 3, SIZE, SIZE), torch.tensor([0, 3, 3, 9])
    out = distiller(x, y)
    with torch.no_grad():
        logits, feats = forward_stages(distiller.student, x, distiller.student_stages)
        zt = distiller.teacher(x)
        branches = [distiller.branches[str(p)](feats[p]) for p in distiller.positions]
    loss_gt = F.cross_entropy(logits.double(), y)
    loss_kd = authors_ofa_loss(logits, zt, y, gamma, temperature)
    loss_ofa = sum(authors_ofa_loss(b, zt, y, gamma, temperature) for b in branches)
    assert len(branches) == 4
    assert out["loss"].item() == pytest.approx((loss_gt + loss_kd + loss_ofa).item(), rel=1e-6)
