import pytest
import torch

import fofakd
from pairs import INPUT_SIZE, PAIRS, SIZE, make_model
from sampling import quick_sample

METHODS = fofakd.list_methods()


def test_every_baseline_is_registered():
    assert set(METHODS) >= {"scratch", "kd", "dkd", "dist", "fitnet", "ofa", "rkd", "crd", "fofa"}


@pytest.mark.parametrize("teacher,student", quick_sample(PAIRS, lambda index, _: index == 0))
@pytest.mark.parametrize("method", [m for m in METHODS if m != "fofa"])  # fofa has its own, stricter test
def test_method_trains_on_every_family_pair(method, teacher, student):
    distiller = fofakd.build_distiller(method, teacher=make_model(teacher), student=make_model(student),
                                       input_size=INPUT_SIZE).train()
    before = {k: v.clone() for k, v in distiller.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in distiller.student.state_dict().items()}
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.01)
    x, y = torch.randn(4, 3, SIZE, SIZE), torch.randint(0, 10, (4,))
    out = distiller(x, y)
    assert torch.isfinite(out["loss"]) and out["logits"].shape == (4, 10)
    parts = [k for k in out if k.startswith("loss_")]
    assert "loss_ce" in parts and (method == "scratch" or len(parts) > 1)
    optimizer.zero_grad()
    out["loss"].backward()
    optimizer.step()
    assert not distiller.teacher.training
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert all(torch.equal(v, distiller.teacher.state_dict()[k]) for k, v in before.items())
    changed = [k for k, v in distiller.student.state_dict().items() if not torch.equal(v, student_before[k])]
    assert changed, "the optimiser step must change the student"


def _extreme_pair():
    """A teacher whose logits are exactly +-80 and a student whose logits are the opposite."""
    teacher, student = make_model("resnet18"), make_model("deit_tiny_patch16_224")
    signs = torch.tensor([1.0, -1.0] * 5)
    with torch.no_grad():
        teacher.fc.weight.zero_()
        teacher.fc.bias.copy_(80 * signs)
        student.head.weight.mul_(0.0)
        student.head.bias.copy_(-80 * signs)
    return teacher, student


@pytest.mark.parametrize("method", METHODS)
def test_no_nan_or_inf_with_extreme_logits(method):
    teacher, student = _extreme_pair()
    distiller = fofakd.build_distiller(method, teacher=teacher, student=student, input_size=INPUT_SIZE).train()
    x, y = torch.randn(4, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 3])
    assert distiller.teacher_logits(x).abs().max().item() == 80.0
    for _ in range(2):
        out = distiller(x, y)
        assert all(torch.isfinite(v).all() for k, v in out.items() if k.startswith("loss")), out
        distiller.zero_grad()
        out["loss"].backward()
        grads = [p.grad for p in distiller.trainable_parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_scratch_needs_no_teacher():
    distiller = fofakd.build_distiller("scratch", teacher=None, student=make_model("resnet18"),
                                       input_size=INPUT_SIZE).train()
    x, y = torch.randn(2, 3, SIZE, SIZE), torch.tensor([1, 2])
    out = distiller(x, y)
    assert out["loss"].item() == pytest.approx(torch.nn.functional.cross_entropy(out["logits"], y).item())


def test_crd_queue_is_bounded_and_first_in_first_out():
    distiller = fofakd.build_distiller("crd", teacher=make_model("resnet18"), student=make_model("resnet18"),
                                       input_size=INPUT_SIZE, num_negatives=6).train()
    for step in range(4):  # 4 batches of 4 through a queue of 6
        distiller(torch.randn(4, 3, SIZE, SIZE), torch.randint(0, 10, (4,)))
        assert distiller.queue_student.shape == (6, 128)
    assert distiller.queue_position.item() == 16 % 6
    assert torch.allclose(distiller.queue_student.norm(dim=1), torch.ones(6), atol=1e-5)


def test_ofa_takes_one_gamma_per_branch():
    teacher, student = make_model("resnet18"), make_model("resnet18")
    distiller = fofakd.build_distiller("ofa", teacher=teacher, student=student, input_size=INPUT_SIZE,
                                       gamma=[1.0, 1.1, 1.2, 1.5])
    assert distiller.gammas == [1.0, 1.1, 1.2, 1.5]
    with pytest.raises(fofakd.FofakdError, match="one value or one each"):
        fofakd.build_distiller("ofa", teacher=teacher, student=student, input_size=INPUT_SIZE, gamma=[1.0, 2.0])
