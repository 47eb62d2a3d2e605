"""RSD equals the authors' code: one training step of their distiller (tests/fixtures/rsd) against fofakd's."""
import json
import sys
from pathlib import Path

import pytest
import torch
from timm.layers import config as timm_config

import fofakd
from fofakd.methods import rsd as rsd_module

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "rsd"))
from parity import CASES, CLASSES, OPTIONS, SIZE, batch, checksums, draw  # noqa: E402

EXPECTED = json.loads((Path(__file__).parent / "fixtures" / "rsd" / "rsd.json").read_text())["cases"]


def run_case(name: str, **options) -> dict:
    """fofakd's RSD on the fixture's case: the same drawn weights, batch and step as the authors' run."""
    teacher_name, student_name = CASES[name]
    fused = timm_config._USE_FUSED_ATTN
    timm_config._USE_FUSED_ATTN = 0  # timm 0.6.5 computes attention step by step: so must these, to agree to 1e-6
    try:
        teacher = fofakd.create_model(teacher_name, num_classes=CLASSES)
        student = fofakd.create_model(student_name, num_classes=CLASSES)
    finally:
        timm_config._USE_FUSED_ATTN = fused
    draw(teacher)
    draw(student)
    distiller = fofakd.build_distiller("rsd", teacher=teacher, student=student, input_size=(3, SIZE, SIZE),
                                       **{**OPTIONS, **options})
    draw(distiller.projector, "projector.")
    distiller.train()
    images, labels = batch()
    out = distiller(images, labels)
    out["loss"].backward()
    weighted = out["loss_rsd"] * distiller.rsd_weight  # in float32, as the authors weight it
    return {"loss_ce": out["loss_ce"].item(), "loss_rsd_weighted": weighted.item(),
            "logits_sum": out["logits"].sum().item(),
            "projector_grads": checksums(distiller.projector, "projector."),
            "student_grads": checksums(distiller.student, "")}


def mismatches(got: dict, expected: dict) -> list[str]:
    """The values that differ: losses, logits and the projector's gradients by more than 1e-6, the student's
    gradients by more than 1e-5 (relative to each parameter's largest checksum). Gradients summed in another order
    through a whole ResNet-18 differ by up to 3e-6 on its first layer; nothing else differs at all."""
    bad = [k for k in ("loss_ce", "loss_rsd_weighted", "logits_sum") if got[k] != pytest.approx(expected[k], rel=1e-6)]
    for kind, rel in (("projector_grads", 1e-6), ("student_grads", 1e-5)):
        assert set(got[kind]) == set(expected[kind]), kind
        for param, values in expected[kind].items():
            scale = max(abs(v) for v in values)
            if any(abs(a - b) > rel * scale for a, b in zip(got[kind][param], values)):
                bad.append(f"{kind}:{param}")
    return bad


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture was made
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(CASES))
def test_rsd_step_matches_the_authors(name):
    got = run_case(name)
    assert mismatches(got, EXPECTED[name]) == []


@pytest.mark.parametrize("change", ["kappa", "gamma", "standardisation"])
def test_the_parity_check_fails_when_the_method_changes(change, monkeypatch):
    """The comparison above can fail: each of these departures from the authors' RSD is caught."""
    options = {"kappa": {"kappa": 0.02}, "gamma": {"gamma": 3}}.get(change, {})
    if change == "standardisation":
        monkeypatch.setattr(rsd_module, "standardise",
                            lambda x, eps=1e-5: (x - x.mean(dim=0)) / (x.std(dim=0, unbiased=True) + eps))
    got = run_case("resnet18->deit_tiny", **options)
    if change == "gamma":  # the hidden layer has another shape, so the comparison of its gradients is moot
        assert got["loss_rsd_weighted"] != pytest.approx(EXPECTED["resnet18->deit_tiny"]["loss_rsd_weighted"],
                                                         rel=1e-6)
        return
    assert "loss_rsd_weighted" in mismatches(got, EXPECTED["resnet18->deit_tiny"])
