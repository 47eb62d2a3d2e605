import pytest
import torch

import fofakd
from pairs import PAIRS, SIZE
from pairs import make_model as _model


def _build(teacher="resnet18", student="mixer_s4_32", **options):
    options.setdefault("dim", 64)
    return fofakd.build_distiller("fofa", teacher=_model(teacher), student=_model(student),
                                  input_size=(3, SIZE, SIZE), **options)


def _batch(n=4):
    return torch.randn(n, 3, SIZE, SIZE), torch.randint(0, 10, (n,))


@pytest.mark.parametrize("teacher,student", PAIRS)
def test_training_steps_keep_the_teacher_frozen(teacher, student):
    distiller = _build(teacher, student).train()
    assert not distiller.teacher.training, "the teacher must stay in eval mode"
    before = {k: v.clone() for k, v in distiller.teacher.state_dict().items()}
    optimizer = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-3)
    prompts = list(distiller.prompts.values())
    x, y = _batch()
    for step, batch in enumerate([4, 4, 3, 4]):  # a smaller last batch, then a full one again
        out = distiller(x[:batch], y[:batch])
        assert set(out) >= {"loss", "logits", "loss_ce", "loss_kd", "loss_fd", "loss_reg"}
        assert torch.isfinite(out["loss"])
        assert out["logits"].shape == (batch, 10)
        optimizer.zero_grad()
        out["loss"].backward()
        beta_grads = torch.stack([p.beta.grad for p in prompts])
        prompt_grads = torch.stack([p.prompt[0].weight.grad.abs().sum() for p in prompts])
        if step == 0:
            assert out["loss_reg"].item() == 0.0, "prompts start as the identity"
            assert bool((beta_grads != 0).all()), "beta must receive a gradient on the first step"
            assert bool((prompt_grads == 0).all()), "with beta = 0 the prompt blocks get no gradient yet"
        if step == 1:
            assert bool((prompt_grads > 0).all()), "the prompt blocks must learn from the second step"
        optimizer.step()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    after = distiller.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "teacher weights changed"
    for position, prompt in distiller.prompts.items():
        stage = distiller.teacher_stages[int(position)]
        assert tuple(prompt.feedback.shape) == (4, *stage.feature_shape)


def test_prompted_teacher_equals_plain_teacher_at_construction():
    distiller = _build("vit_tiny_patch16_224", "resnet18")
    x, _ = _batch()
    plain = distiller.teacher(x)
    with distiller.prompt_hooks.active():
        prompted = distiller.teacher(x)
    assert torch.equal(plain, prompted)


def test_unprompted_teacher_pass_runs_without_autograd():
    distiller = _build().train()
    grad_enabled = []
    distiller.teacher.layer1.register_forward_hook(lambda m, i, o: grad_enabled.append(torch.is_grad_enabled()))
    distiller(*_batch())
    assert grad_enabled == [False, True]


def test_prompts_go_only_where_asked():
    distiller = _build(afp_stages=[0]).train()
    assert list(distiller.prompts) == ["0"]
    none = _build(afp_stages=[]).train()
    out = none(*_batch())
    assert len(none.prompts) == 0 and out["loss_reg"].item() == 0.0


def test_feedback_is_part_of_the_state_dict():
    distiller = _build().train()
    distiller(*_batch())
    state = distiller.state_dict()
    keys = [k for k in state if k.endswith(".feedback")]
    assert len(keys) == 4
    fresh = _build()
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh.state_dict()[k], state[k]) for k in keys)


def test_eval_mode_runs_the_bare_student():
    distiller = _build().eval()
    x, y = _batch()
    out = distiller(x, y)
    assert torch.equal(out["logits"], distiller.student(x))
    assert out["loss"].item() == pytest.approx(torch.nn.functional.cross_entropy(out["logits"], y).item())


def test_loss_weights_combine_the_parts():
    distiller = _build(ce_weight=0.5, kd_weight=2.0, fd_weight=3.0, reg_weight=4.0, temperature=2.0).train()
    out = distiller(*_batch())
    expected = 0.5 * out["loss_ce"] + 2.0 * out["loss_kd"] + 3.0 * out["loss_fd"] + 4.0 * out["loss_reg"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("option", [{"se_mode": "gate"}, {"pos_embed": "reference"}, {"use_raa": False},
                                    {"use_feedback": False}])
def test_variants_train(option):
    distiller = _build(**option).train()
    for _ in range(2):
        out = distiller(*_batch())
        out["loss"].backward()
        assert torch.isfinite(out["loss"])


def test_bad_options_and_methods_are_named():
    with pytest.raises(fofakd.FofakdError, match="no option bogus"):
        _build(bogus=1)
    with pytest.raises(fofakd.FofakdError, match="did you mean fofa"):
        fofakd.build_distiller("fof", teacher=_model("resnet18"), student=_model("resnet18"), input_size=(3, 32, 32))
    assert "fofa" in fofakd.list_methods()
