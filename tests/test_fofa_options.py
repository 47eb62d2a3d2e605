"""FOFA's per-step diagnostics and its opt-in options: the authors' initialisation, feature-loss warm-up, target norm."""
import math

import pytest
import torch

import fofakd
from fofakd.reports.diagnostics import diagnostic_series
from pairs import SIZE
from pairs import make_model as _model


def _build(**options):
    return fofakd.build_distiller("fofa", teacher=_model("resnet18"), student=_model("mixer_s4_32"),
                                  input_size=(3, SIZE, SIZE), dim=64, **options)


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, SIZE, SIZE, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_diagnostics_describe_the_step():
    distiller = _build().train()
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.1)
    first = distiller(*_batch())
    # the first step: beta = 0, so the prompt adds nothing; feedback is stored after the loss
    assert all(first[f"diag/beta_s{i}"].item() == 0.0 for i in range(4))
    assert all(first[f"diag/prompt_relative_size_s{i}"].item() == 0.0 for i in range(4))
    assert sum(first[f"diag/fd_s{i}"] for i in range(4)).item() == pytest.approx(first["loss_fd"].item(), rel=1e-6)
    assert 0.0 < first["diag/raa_entropy"].item() <= math.log(64) + 1e-5
    optimizer.zero_grad()
    first["loss"].backward()
    optimizer.step()
    second = distiller(*_batch(seed=1))
    for position, prompt in distiller.prompts.items():
        assert second[f"diag/beta_s{position}"].item() == prompt.beta.item() != 0.0
        assert second[f"diag/prompt_relative_size_s{position}"].item() > 0.0
        # the feedback RMS is that of the difference this step stored
        assert second[f"diag/feedback_rms_s{position}"].item() == pytest.approx(
            prompt.feedback.pow(2).mean().sqrt().item(), rel=1e-6)
    assert all(not v.requires_grad for k, v in second.items() if k.startswith("diag/"))


def test_attention_entropy_is_that_of_the_returned_attention():
    distiller = _build().train()
    x, _ = _batch()
    maps = [torch.randn(4, s.channels, *s.grid) for s in distiller.student_stages]
    _, attention = distiller.raa(maps, return_attention=True)
    expected = -(attention * attention.log()).sum(-1).mean()  # a batch of 4: all within the 8 samples it reads
    assert distiller.raa.last_entropy.item() == pytest.approx(expected.item(), rel=1e-5)


def test_no_raa_and_no_prompts_give_no_such_diagnostics():
    out = _build(use_raa=False, afp_stages=[]).train()(*_batch())
    assert not any(k.startswith(("diag/beta", "diag/prompt", "diag/raa")) for k in out)
    assert {f"diag/fd_s{i}" for i in range(4)} <= set(out)


def test_diagnostic_series_groups_families_by_stage():
    rows = [{"epoch": 1, "diag/beta_s0": 0.1, "diag/beta_s2": 0.2, "diag/raa_entropy": 3.0, "loss": 1.0},
            {"epoch": 2, "diag/beta_s0": 0.3, "diag/raa_entropy": 2.5}]
    series = diagnostic_series(rows)
    assert series["beta"] == {"stage 0": [(1, 0.1), (2, 0.3)], "stage 2": [(1, 0.2)]}
    assert series["raa_entropy"] == {"": [(1, 3.0), (2, 2.5)]}


def _biases(module):
    return torch.cat([m.bias.detach().flatten() for m in module.modules()
                      if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None])


def test_reference_init_keeps_torch_defaults_where_the_authors_do():
    ours, theirs = _build(), _build(init="reference")
    for distiller, zero in ((ours, True), (theirs, False)):
        raa, prompt = distiller.raa, distiller.prompts["0"]
        for part in (raa, prompt.prompt, prompt.fusion):
            assert bool((_biases(part) == 0).all()) is zero
    # PyTorch's default for Linear/Conv draws weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    q = theirs.raa.q
    bound = 1 / math.sqrt(q.in_features)
    assert q.weight.abs().max().item() <= bound and q.bias.abs().max().item() <= bound
    assert q.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    # the aligners are initialised alike in both (the authors apply their init_weights there)
    for a, b in zip(ours.aligners, theirs.aligners):
        assert a.proj.weight.std().item() == pytest.approx(b.proj.weight.std().item(), rel=0.1)
    assert all(p.beta.item() == 0.0 for p in theirs.prompts.values())
    with pytest.raises(fofakd.FofakdError, match="option 'init' must be one of fofakd, reference, got 'bogus'"):
        _build(init="bogus")


def test_feature_loss_warmup_ramps_its_weight_and_resumes():
    distiller = _build(fd_warmup_steps=4, fd_weight=2.0).train()
    totals = []
    for step in range(6):
        out = distiller(*_batch(seed=step))
        rest = out["loss_ce"] + out["loss_kd"] + out["loss_reg"]
        totals.append(((out["loss"] - rest) / out["loss_fd"]).item())
    assert totals == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0], abs=1e-5)
    fresh = _build(fd_warmup_steps=4, fd_weight=2.0)
    fresh.load_state_dict(distiller.state_dict())
    assert fresh.current_fd_weight() == 2.0 and int(fresh.steps_done) == 7
    assert "steps_done" not in dict(_build().named_buffers())  # no new state unless asked


def test_layer_target_norm_standardises_the_teacher_features():
    from fofakd.methods.fofa import standardise_channels

    x = torch.randn(2, 5, 3, 3) * 7 + 4
    y = standardise_channels(x)
    assert y.mean(dim=1).abs().max().item() < 1e-5
    assert y.var(dim=1, unbiased=False).sub(1).abs().max().item() < 1e-3
    tokens = torch.randn(2, 9, 5) * 3
    assert torch.allclose(standardise_channels(tokens).permute(0, 2, 1).reshape(2, 5, 3, 3),
                          standardise_channels(tokens.permute(0, 2, 1).reshape(2, 5, 3, 3)), atol=1e-6)
    plain, normed = _build(), _build(target_norm="layer")
    normed.load_state_dict(plain.state_dict())
    x, y = _batch()
    assert normed.train()(x, y)["loss_fd"].item() != pytest.approx(plain.train()(x, y)["loss_fd"].item(), rel=1e-3)


def test_reference_preset_sets_every_authors_behaviour_and_options_override_it():
    from fofakd.methods.fofa_options import PRESETS, FaithfulnessOptions

    def resolved(**given):
        options = FaithfulnessOptions(**given).resolved()
        return {k: getattr(options, k) for k in PRESETS["fofakd"]}

    assert resolved(preset="reference") == PRESETS["reference"]
    assert resolved(preset="reference", pos_embed="fixed")["pos_embed"] == "fixed"
    assert resolved(preset="fofakd", init=None) == PRESETS["fofakd"]
    theirs = fofakd.build_distiller("fofa", teacher=_model("vit_tiny_patch16_224"), student=_model("resnet18"),
                                    input_size=(3, SIZE, SIZE), dim=64, preset="reference")
    assert theirs.raa.pos_embed == "reference" and theirs.faithfulness.token_drop == "last"
    assert theirs.prompt_hooks.prompt_reshape == "reference"
    assert all(getattr(p.feedback_aligner, "order", "resize_first") == "resize_first" for p in theirs.prompts.values())
    assert bool((_biases(theirs.raa) != 0).all())  # PyTorch's default init
    theirs.train()
    optimizer = torch.optim.SGD(theirs.trainable_parameters(), lr=0.05)
    for step in range(2):  # a token teacher through the authors' prompt reshape, with feedback on step 2
        out = theirs(*_batch(seed=step))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        assert torch.isfinite(out["loss"]) and all(p.grad is None for p in theirs.teacher.parameters())
    with pytest.raises(fofakd.FofakdError, match="option 'preset' must be one of fofakd, reference, got 'paper'"):
        _build(preset="paper")
    with pytest.raises(fofakd.FofakdError, match="option 'token_drop' must be one of prefix, last, got 'first'"):
        _build(token_drop="first")


def test_last_token_features_keep_the_class_token_first():
    from fofakd.features.stages import discover_stages, forward_stages

    vit = _model("vit_tiny_patch16_224").eval()
    stages = discover_stages(vit, (3, SIZE, SIZE))
    x, _ = _batch(2)
    _, ours = forward_stages(vit, x, stages)
    _, theirs = forward_stages(vit, x, stages, token_drop="last")
    _, raw = vit.forward_intermediates(x, indices=stages.indices, output_fmt="NCHW", return_prefix_tokens=True)
    for mine, authors, (_, prefix) in zip(ours, theirs, raw):
        assert authors.shape == mine.shape  # 64 tokens either way on 8x8 patches
        assert torch.equal(authors[:, 0], prefix[:, 0])  # cell 0 is the class token
        assert torch.equal(authors[:, 1:], mine[:, :-1])  # then the patches, the last one dropped
