"""Method options: renamed ones keep working for a release, and FOFA's ablation switches do what they say."""
import pytest
import torch

import fofakd
from pairs import INPUT_SIZE, SIZE, make_model


def _batch(n=4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *INPUT_SIZE, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("method,old,new", [("dist", "tau", "temperature"), ("ofa", "kd_weight", "final_weight")])
def test_old_option_names_warn_and_act_as_the_new_ones(method, old, new):
    x, y = _batch()
    losses = {}
    for name in (old, new):
        torch.manual_seed(0)
        kwargs = {name: 2.0}
        build = lambda: fofakd.build_distiller(method, teacher=make_model("resnet18"),  # noqa: E731
                                               student=make_model("resnet18"), input_size=INPUT_SIZE, **kwargs)
        if name == old:
            with pytest.warns(DeprecationWarning, match=f"'{old}' is now '{new}'"):
                distiller = build()
        else:
            distiller = build()
        losses[name] = distiller.train()(x, y)["loss"].item()
    assert losses[old] == pytest.approx(losses[new], rel=1e-6)


def _fofa(**options):
    return fofakd.build_distiller("fofa", teacher=make_model("resnet18"), student=make_model("mixer_s4_32"),
                                  input_size=(3, SIZE, SIZE), dim=64, **options).train()


def test_without_raa_no_attention_runs():
    distiller = _fofa(use_raa=False)
    calls = []
    for layer in (distiller.raa.q, distiller.raa.kv, distiller.raa.norm):
        layer.register_forward_hook(lambda *a: calls.append(1))
    out = distiller(*_batch())
    assert calls == [] and out["loss_fd"].item() > 0


def test_without_feedback_there_is_no_fusion_and_no_feedback_state():
    distiller = _fofa(use_feedback=False)
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.1)
    for _ in range(2):
        out = distiller(*_batch())
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    for prompt in distiller.prompts.values():
        assert prompt.fusion is None and prompt.feedback_aligner is None and prompt.feedback.numel() == 0
        assert prompt.prompt[0].weight.grad.abs().sum() > 0  # the prompts still learn


def test_with_feedback_the_fusion_learns_from_the_second_step():
    distiller = _fofa()
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.1)
    grads = []
    for _ in range(3):
        out = distiller(*_batch())
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        fusion = distiller.prompts["0"].fusion[0].weight.grad
        grads.append(0.0 if fusion is None else fusion.abs().sum().item())
    assert grads[0] == 0.0 and grads[2] > 0.0  # no feedback on the first step; then beta != 0 lets it learn


def test_without_prompts_the_teacher_never_runs_with_autograd():
    distiller = _fofa(afp_stages=[])
    grad_enabled = []
    distiller.teacher.layer1.register_forward_hook(lambda m, i, o: grad_enabled.append(torch.is_grad_enabled()))
    distiller(*_batch())
    assert grad_enabled == [False]


def test_the_method_options_file_matches_the_registry():
    from fofakd.method_validation import load_method_options
    from fofakd.methods.write_method_options import live_method_options

    assert load_method_options() == live_method_options(), \
        "regenerate it: python -m fofakd.methods.write_method_options"


def test_fitnet_kd_weight_adds_the_fofa_authors_kd_term():
    torch.manual_seed(0)
    teacher, student = make_model("resnet18"), make_model("deit_tiny_patch16_224")
    x, y = _batch()
    plain = fofakd.build_distiller("fitnet", teacher=teacher, student=student, input_size=INPUT_SIZE).train()
    assert "loss_kd" not in plain(x, y)  # the default is OFA's FitNet: no KD term
    with_kd = fofakd.build_distiller("fitnet", teacher=teacher, student=student, input_size=INPUT_SIZE,
                                     kd_weight=0.5, temperature=2.0).train()
    with_kd.projectors.load_state_dict(plain.projectors.state_dict())
    out = with_kd(x, y)
    with torch.no_grad():
        zt = teacher(x)
    # T^2 KL(softmax(z_T / T) || softmax(z_S / T)), batch mean, from the softmaxes directly
    p_t, p_s = torch.softmax(zt.double() / 2, dim=1), torch.softmax(out["logits"].double() / 2, dim=1)
    expected = 4 * (p_t * (p_t.log() - p_s.log())).sum(dim=1).mean()
    assert out["loss_kd"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((out["loss_ce"] + out["loss_fd"] + 0.5 * out["loss_kd"]).item(),
                                               rel=1e-6)
