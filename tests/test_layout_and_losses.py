import pytest
import torch
import torch.nn.functional as F

from fofakd.errors import FofakdError
from fofakd.features.layout import infer_grid, map_to_tokens, to_map, tokens_to_map
from fofakd.methods.losses import hcl_loss, kd_loss, kl_divergence, task_loss


def test_map_token_round_trip():
    x = torch.randn(2, 5, 3, 4)
    tokens = map_to_tokens(x)
    assert tokens.shape == (2, 12, 5)
    # token k is the pixel at row k // w, column k % w
    assert torch.equal(tokens[:, 7], x[:, :, 1, 3])
    assert torch.equal(tokens_to_map(tokens, (3, 4)), x)
    assert torch.equal(to_map(x, (3, 4)), x)


def test_infer_grid_follows_aspect_ratio():
    assert infer_grid(16, (32, 32)) == (4, 4)
    assert infer_grid(8, (32, 64)) == (2, 4)
    with pytest.raises(FofakdError):
        infer_grid(7, (32, 32))


def test_hcl_matches_hand_computation():
    # A = 0..15 on a 4x4 map, T = 0. Full MSE = mean(i^2) = 1240/16 = 77.5. k=4 is skipped (k >= H);
    # k=2 pools to block means 2.5, 4.5, 10.5, 12.5 -> MSE 293/4 = 73.25 (weight 1/2); k=1 pools to 7.5 ->
    # 56.25 (weight 1/4). (77.5 + 36.625 + 14.0625) / 1.75 = 73.25.
    a = torch.arange(16.0).reshape(1, 1, 4, 4)
    t = torch.zeros(1, 1, 4, 4)
    assert hcl_loss(a, t, (4, 4)).item() == pytest.approx(73.25)
    # the same features as tokens on the 4x4 grid give the same loss
    assert hcl_loss(map_to_tokens(a), map_to_tokens(t), (4, 4)).item() == pytest.approx(73.25)


def test_hcl_on_a_1x1_map_is_plain_mse():
    a, t = torch.randn(3, 8, 1, 1), torch.randn(3, 8, 1, 1)
    assert hcl_loss(a, t, (1, 1)).item() == pytest.approx(F.mse_loss(a, t).item())


def test_kd_loss_matches_direct_formula():
    zs, zt, temp = torch.randn(4, 7), torch.randn(4, 7), 3.0
    p = torch.softmax(zt / temp, dim=1)
    direct = temp**2 * (p * (p.log() - torch.log_softmax(zs / temp, dim=1))).sum(dim=1).mean()
    assert kd_loss(zs, zt, temp).item() == pytest.approx(direct.item(), rel=1e-5)
    assert kl_divergence(zt, zt).item() == 0.0


def test_kl_is_finite_for_extreme_logits():
    zs = torch.tensor([[80.0, -80.0, 0.0]])
    zt = torch.tensor([[-80.0, 80.0, 0.0]])
    value = kd_loss(zs, zt, 1.0)
    assert torch.isfinite(value) and value.item() == pytest.approx(160.0, rel=1e-4)


def test_task_loss_hard_and_soft_targets_agree():
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 3, 1, 2, 3])
    assert task_loss(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    assert task_loss(logits, F.one_hot(labels, 4).float()).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-6
    )
