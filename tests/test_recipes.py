"""The paper's recipe configs: shipped files match the tables, the listing's commands, and every config runs."""
import dataclasses
import math
from collections import defaultdict

import pytest
import timm.models._builder
import torch
from timm.utils import ModelEmaV3

from fofakd.cli import main
from fofakd.data.augment import AugmentConfig, augment_uint8, to_model_input
from fofakd.data import DataBundle
from fofakd.data.bundle import mixup_hooks
from fofakd.classification.config import build_config
from fofakd.classification.models import build_run_models
from fofakd.engine.optim import build_optimizer, build_scheduler
from fofakd.methods import build_distiller
from fofakd.recipes import PAIRS, all_recipes, default_dir, render

CONFIGS = default_dir()
RECIPES = all_recipes()
CLASSES = {"cifar100": 100, "imagefolder": 1000}


def test_shipped_configs_are_the_tables():
    shipped = {p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml")}
    assert shipped == {r.path for r in RECIPES}, "run `fofakd recipes --write configs` after changing the tables"
    for recipe in RECIPES:
        assert (CONFIGS / recipe.path).read_text() == render(recipe), recipe.path
    assert len(PAIRS["cifar100"]) == 12 and len(PAIRS["imagenet"]) == 15
    assert len(set(PAIRS["cifar100"])) == 12 and len(set(PAIRS["imagenet"])) == 15


def test_listing_keeps_the_global_batch_and_learning_rate(capsys):
    assert main(["recipes", "imagenet/resnet50-resnet18"]) == 2  # not a paper pair
    capsys.readouterr()
    assert main(["recipes", "imagenet/deit_t-resnet18/fofa"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Written for 4 GPUs x 64 at lr 0.1: one GPU keeps its batch of 64, so the linear rule gives 0.1 / 4.
    assert lines[1].split() == ["1", "GPU:", "fofakd", "distill", "--config",
                                "configs/imagenet/deit_t-resnet18/fofa.yaml", "--lr", "0.025"]
    assert lines[2].strip().startswith("4 GPUs: torchrun --nproc_per_node 4 -m fofakd.cli distill")
    assert main(["recipes", "cifar100/convnext_t-deit_t/kd"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Written for one GPU x 128: four processes of 32 keep the global batch, so the learning rate stays.
    assert lines[2].endswith("--batch-size 32") and "--lr" not in lines[2]


def _groups() -> dict[str, list]:
    """Recipes grouped by the models they build, so each teacher and student is built once per group."""
    groups = defaultdict(list)
    for recipe in RECIPES:
        groups[recipe.path.rsplit("/", 1)[0] if recipe.command == "distill" else recipe.path].append(recipe)
    return groups


GROUPS = _groups()


@pytest.fixture
def offline_pretrained(monkeypatch):
    """`pretrained: true` builds the model with random weights instead of downloading them."""
    monkeypatch.setattr(timm.models._builder, "load_pretrained", lambda *args, **kwargs: None)


def _batch(cfg, num_classes: int, generator: torch.Generator):
    """Two images through the recipe's augmentation (at CIFAR's 32 px), resized to 224, then mixup."""
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, num_classes, (2,), generator=generator)
    augmented = augment_uint8(images, AugmentConfig.from_config(cfg), generator)
    x = to_model_input(augmented, (0.5,) * 3, (0.25,) * 3, cfg.img_size)
    for hook in mixup_hooks(cfg, num_classes):
        x, labels = hook(x, labels)
    return x, labels


# The quick set (-m "not slow") keeps three recipe groups: a ViT teacher with a CNN and with a ResNet student, and a
# teacher's own fine-tuning config; every group runs in CI.
QUICK_GROUPS = {"imagenet/deit_t-mobilenetv2", "imagenet/deit_t-resnet18", "cifar100/teachers/mixer_b16.yaml"}


@pytest.mark.parametrize("group", [pytest.param(g, marks=() if g in QUICK_GROUPS else pytest.mark.slow)
                                   for g in sorted(GROUPS)])
def test_recipe_builds_and_trains_one_step_at_224(group, tmp_path, offline_pretrained):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    recipes = GROUPS[group]
    configs = [build_config({"amp": "none", "batch_size": 2}, CONFIGS / r.path) for r in recipes]
    first = configs[0]
    num_classes = CLASSES[first.data]
    data = DataBundle(train=None, val=None, test=None, num_classes=num_classes, in_chans=3, img_size=first.img_size,
                      mean=(0.5,) * 3, std=(0.25,) * 3, train_size=0, mixup=False)
    assert first.img_size == 224
    # CIFAR recipes name a teacher run directory the user makes first; here the teacher's weights are random.
    models_cfg = dataclasses.replace(first, teacher_checkpoint=None, pretrained=True)
    teacher, student, _ = build_run_models(models_cfg, recipes[0].command, data)
    teacher_before = [p.detach().clone() for p in teacher.parameters()] if teacher is not None else []
    # The methods share the models (building them again would double the test's time): the teacher is frozen and
    # FOFA's prompt hooks act only inside its own forward, so one method's step cannot change another's set-up.
    for recipe, cfg in zip(recipes, configs):
        method = "scratch" if recipe.command == "train" else cfg.method
        distiller = build_distiller(method, teacher=teacher, student=student,
                                    input_size=(3, 224, 224),
                                    **{"label_smoothing": cfg.smoothing, **cfg.method_options}).train()
        optimizer = build_optimizer(cfg, distiller)
        scheduler = build_scheduler(cfg, optimizer, steps_per_epoch=1)
        ema = ModelEmaV3(distiller.student, decay=cfg.ema_decay) if cfg.ema else None
        before = [p.detach().clone() for p in distiller.student.parameters()]
        images, targets = _batch(cfg, num_classes, generator)
        out = distiller(images, targets)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(distiller.trainable_parameters(), cfg.clip_grad)
        optimizer.step()
        if scheduler is not None:
            scheduler.step_update(1)
        if ema is not None:
            ema.update(distiller.student, step=1)
        assert math.isfinite(out["loss"].item()), recipe.path
        assert out["logits"].shape == (2, num_classes)
        changed = sum(not torch.equal(b, p) for b, p in zip(before, distiller.student.parameters()))
        assert changed > 0, f"{recipe.path}: the step did not update the student"
        if distiller.teacher is not None:
            assert all(torch.equal(b, p) for b, p in zip(teacher_before, distiller.teacher.parameters())), recipe.path
