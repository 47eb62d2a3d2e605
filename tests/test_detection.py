"""Detection: the synthetic COCO set, COCO mAP against hand-computed values, FPN backbones, a detector that learns."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fofakd.detection import CocoDetection, build_detector, coco_evaluate, collate_detection, make_synthetic_coco
from fofakd.detection.coco import _quiet_coco, to_coco_results
from fofakd.detection.models import build_backbone
from fofakd.errors import FofakdError


def test_synthetic_set_is_deterministic_and_boxes_fit_the_shapes(tmp_path):
    first = make_synthetic_coco(tmp_path / "a", num_images=6, size=96, seed=3)
    second = make_synthetic_coco(tmp_path / "b", num_images=6, size=96, seed=3)
    other = make_synthetic_coco(tmp_path / "c", num_images=6, size=96, seed=4)
    assert first.read_text() == second.read_text() != other.read_text()
    assert (tmp_path / "a/images/000001.png").read_bytes() == (tmp_path / "b/images/000001.png").read_bytes()
    data = json.loads(first.read_text())
    squares = [a for a in data["annotations"] if a["category_id"] == 1]
    assert squares, "seed 3 draws at least one square"
    for ann in data["annotations"]:
        x, y, w, h = (int(v) for v in ann["bbox"])
        assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96
    for ann in squares:  # a square fills its box with one colour; the background around it is not that colour
        x, y, w, h = (int(v) for v in ann["bbox"])
        image = np.asarray(Image.open(tmp_path / "a/images" / f"{ann['image_id']:06d}.png"))
        inside = image[y:y + h, x:x + w].reshape(-1, 3)
        assert (inside == inside[0]).all()
        ring = np.concatenate([image[max(y - 1, 0), x:x + w], image[min(y + h, 95), x:x + w]])
        assert not (ring == inside[0]).all()


def test_dataset_gives_xyxy_boxes_and_contiguous_labels(tmp_path):
    annotations = make_synthetic_coco(tmp_path, num_images=3, size=64, seed=1)
    data = CocoDetection(tmp_path / "images", annotations)
    image, target = data[0]
    raw = [a for a in json.loads(annotations.read_text())["annotations"] if a["image_id"] == 1]
    assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 1
    x, y, w, h = raw[0]["bbox"]
    assert target["boxes"][0].tolist() == [x, y, x + w, y + h]
    assert target["labels"].tolist() == [a["category_id"] for a in raw]  # ids 1..3 map to labels 1..3
    assert data.num_classes == 4


def _single_box_case(tmp_path):
    gt = {"images": [{"id": 5, "file_name": "x.png", "width": 64, "height": 64}],
          "annotations": [{"id": 1, "image_id": 5, "category_id": 7, "bbox": [10, 10, 20, 20], "area": 400,
                           "iscrowd": 0}],
          "categories": [{"id": 7, "name": "thing"}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return _quiet_coco(path)


def test_coco_map_matches_a_hand_computed_case(tmp_path):
    coco = _single_box_case(tmp_path)
    # A detection covering the top 12.5 px of the 20 x 20 box: IoU = 250 / 400 = 0.625. It is a true positive at the
    # IoU thresholds 0.50, 0.55 and 0.60 and a miss at the seven above, so AP (mean over the ten) = 3/10, AP50 = 1,
    # AP75 = 0. The object is small (area 400 < 32^2): APs equals AP and the medium/large APs are undefined (-1).
    output = {"boxes": torch.tensor([[10.0, 10.0, 30.0, 22.5]]), "scores": torch.tensor([0.9]),
              "labels": torch.tensor([1])}
    results = to_coco_results([output], [5], category_ids=[7])
    assert results[0]["bbox"] == [10.0, 10.0, 20.0, 12.5] and results[0]["category_id"] == 7
    stats = coco_evaluate(coco, results)
    assert stats["AP"] == pytest.approx(30.0) and stats["AP50"] == pytest.approx(100.0)
    assert stats["AP75"] == 0.0 and stats["APs"] == pytest.approx(30.0) and stats["APm"] == stats["APl"] == -1.0
    # A false positive scored above the true one halves precision at recall 1: AP50 = 50 (101-point interpolation).
    decoy = {"boxes": torch.tensor([[40.0, 40.0, 60.0, 60.0], [10.0, 10.0, 30.0, 30.0]]),
             "scores": torch.tensor([0.95, 0.9]), "labels": torch.tensor([1, 1])}
    assert coco_evaluate(coco, to_coco_results([decoy], [5], [7]))["AP50"] == pytest.approx(50.0)


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    with pytest.raises(FofakdError, match="does not exist"):
        CocoDetection(tmp_path, tmp_path / "nope.json")


@pytest.mark.parametrize("name, kwargs", [("resnet10t", {}), ("tv/resnet18", {}),
                                          ("swin_tiny_patch4_window7_224", {"img_size": 128, "window_size": 4})])
def test_fpn_backbones_give_five_nchw_levels(name, kwargs):
    backbone = build_backbone(name, **kwargs).eval()
    with torch.no_grad():
        levels = backbone(torch.randn(1, 3, 128, 128))
    assert list(levels) == ["0", "1", "2", "3", "pool"]
    assert [tuple(f.shape) for f in levels.values()] == [(1, 256, 128 // s, 128 // s) for s in (4, 8, 16, 32, 64)]


def test_a_tiny_detector_learns_the_synthetic_shapes(tmp_path):
    annotations = make_synthetic_coco(tmp_path, num_images=4, size=96, seed=0)
    data = CocoDetection(tmp_path / "images", annotations)
    images, targets = collate_detection([data[i] for i in range(4)])
    torch.manual_seed(0)
    model = build_detector("resnet10t", data.num_classes, min_size=96, max_size=96, fpn_channels=64,
                           representation_size=128, rpn_post_nms_top_n_train=200, box_batch_size_per_image=64).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02, momentum=0.9)
    losses = []
    for _ in range(8):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def _tiny(backbone, num_classes=4, fpn=32):
    return build_detector(backbone, num_classes, min_size=64, max_size=64, fixed_size=(64, 64), fpn_channels=fpn,
                          representation_size=64, rpn_post_nms_top_n_train=100, box_batch_size_per_image=32)


def _batch(tmp_path, count=2):
    annotations = make_synthetic_coco(tmp_path, num_images=count, size=64, seed=2)
    data = CocoDetection(tmp_path / "images", annotations)
    return collate_detection([data[i] for i in range(count)])


def test_detection_fofa_prompts_learn_inside_a_frozen_teacher(tmp_path):
    from fofakd.detection.source import build_detection_distiller

    torch.manual_seed(0)
    images, targets = _batch(tmp_path)
    teacher = _tiny("convnext_atto", fpn=48)
    distiller = build_detection_distiller("fofa", teacher, _tiny("resnet10t"), dim=32, heads=4).train()
    assert not teacher.training and len(distiller.prompts) == 4
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    out = distiller(images, targets)
    assert {"loss_kd", "loss_fd", "loss_reg", "loss_classifier", "loss_rpn_objectness"} <= set(out)
    # beta starts at 0, so the prompted teacher is the plain one: the regulariser is exactly 0 on the first step.
    assert out["loss_reg"].item() == 0.0
    parts = sum(v for k, v in out.items() if k.startswith("loss_"))
    assert torch.allclose(out["loss"], parts)
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.beta.grad is not None and p.beta.grad.abs() > 0 for p in distiller.prompts.values())
    # Feedback is each FPN level's difference, kept in the teacher's FPN shape for the next step.
    feedback = [tuple(p.feedback.shape) for p in distiller.prompts.values()]
    assert feedback == [(2, 48, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.1)
    optimizer.step()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())
    second = distiller(images, targets)
    assert second["loss_reg"].item() > 0, "once beta moved, the prompts change the teacher's ROI logits"


@pytest.mark.parametrize("method", ["kd", "dkd", "dist", "fitnet"])
def test_detection_baselines_add_their_loss(tmp_path, method):
    from fofakd.detection.source import build_detection_distiller
    from fofakd.methods import get_method

    images, targets = _batch(tmp_path)
    distiller = build_detection_distiller(method, _tiny("resnet10t", fpn=48), _tiny("resnet10t")).train()
    out = distiller(images, targets)
    extra = {"kd": {"loss_kd"}, "dkd": {"loss_tckd", "loss_nckd"}, "dist": {"loss_inter", "loss_intra"},
             "fitnet": {"loss_fd"}}[method]
    assert extra <= set(out) and all(out[k].item() > 0 for k in extra)
    assert type(distiller) is get_method(method)  # the very class that distils classifiers
    if method == "fitnet":  # one projector per FPN level, student FPN width 32 -> teacher's 48
        assert [(p.proj.in_channels, p.proj.out_channels) for p in distiller.projectors.values()] == [(32, 48)] * 5
    out["loss"].backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())


def test_detection_fofa_prompts_a_channels_last_swin_teacher(tmp_path):
    from fofakd.detection.source import build_detection_distiller

    torch.manual_seed(0)
    images, targets = _batch(tmp_path)
    # The paper's teacher family: Swin's stages take (B, H, W, C) inputs; 64 px gives 16/8/4/2 grids, window 2.
    teacher = build_detector("swin_nano_patch4_window7_224", 4, min_size=64, max_size=64, fixed_size=(64, 64),
                             fpn_channels=32, representation_size=64, rpn_post_nms_top_n_train=100,
                             box_batch_size_per_image=32, backbone_kwargs={"img_size": 64, "window_size": 2})
    distiller = build_detection_distiller("fofa", teacher, _tiny("resnet10t"), dim=32, heads=4).train()
    assert [s.input_layout for s in distiller.prompt_stages] == ["NHWC"] * 4
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.1)
    for _ in range(2):
        out = distiller(images, targets)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    assert all(p.grad is None for p in teacher.parameters())
    feedback = [tuple(p.feedback.shape) for p in distiller.prompts.values()]
    assert feedback == [(2, 32, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    assert out["loss_reg"].item() > 0, "the prompts inside the Swin stages changed its ROI logits"


def test_detection_fofa_takes_batches_of_changing_image_size(tmp_path):
    from fofakd.detection.source import build_detection_distiller

    torch.manual_seed(0)
    images, targets = _batch(tmp_path)

    def variable(backbone, fpn):  # torchvision's aspect-keeping resize: shorter side 64, longer at most 96
        return build_detector(backbone, 4, min_size=64, max_size=96, fpn_channels=fpn, representation_size=64,
                              rpn_post_nms_top_n_train=100, box_batch_size_per_image=32)

    distiller = build_detection_distiller("fofa", variable("convnext_atto", 48), variable("resnet10t", 32),
                                          dim=32, heads=4).train()
    # Built for a 64 x 64 reference image: 16 x 16 at the first FPN level.
    assert distiller.raa.patchify[0].grid == (16, 16) and distiller.aligners[0].out_grid == (16, 16)
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.1)
    for width in (64, 80, 64):  # a 64 x 80 image is padded to a 64 x 96 batch (multiples of 32)
        batch = [torch.nn.functional.interpolate(i[None], size=(64, width), mode="bilinear")[0] for i in images]
        boxes = [{**t, "boxes": t["boxes"] * torch.tensor([width / 64, 1, width / 64, 1])} for t in targets]
        out = distiller(batch, boxes)
        assert torch.isfinite(out["loss"])
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        # The feedback has the shape of this batch's teacher FPN level: 96 / 4 = 24 wide for the wider batch.
        assert tuple(distiller.prompts["0"].feedback.shape) == (2, 48, 16, 24 if width == 80 else 16)
    assert out["loss_reg"].item() > 0


def test_detection_logit_methods_are_the_classification_losses_on_roi_logits(tmp_path):
    """dkd on a detector computes exactly the registered DKD's parts on the teacher's ROI logits for the student's
    sampled proposals, with the sampled labels as targets."""
    from fofakd.detection.source import build_detection_distiller, roi_class_logits
    from fofakd.methods.dkd import dkd_parts

    torch.manual_seed(0)
    images, targets = _batch(tmp_path)
    distiller = build_detection_distiller("dkd", _tiny("resnet10t", fpn=48), _tiny("resnet10t"),
                                          temperature=2.0, beta=8.0).train()
    captured = {}
    original = distiller.source.student_forward

    def spy(*args, **kwargs):
        logits, feats = original(*args, **kwargs)
        step = distiller.source._step
        captured.update(batch=step["batch"], proposals=step["proposals"], logits=logits, labels=step["labels"])
        return logits, feats

    distiller.source.student_forward = spy
    out = distiller(images, targets)
    with torch.no_grad():
        teacher = distiller.teacher
        plain = teacher.backbone(captured["batch"].tensors)
        teacher_logits = roi_class_logits(teacher, plain, captured["proposals"], captured["batch"].image_sizes)
    tckd, nckd = dkd_parts(captured["logits"], teacher_logits, captured["labels"], 2.0)
    assert out["loss_tckd"].item() == pytest.approx(tckd.item(), rel=1e-6)
    assert out["loss_nckd"].item() == pytest.approx(nckd.item(), rel=1e-6)
    own = out["loss_rpn_objectness"] + out["loss_rpn_box_reg"] + out["loss_classifier"] + out["loss_box_reg"]
    assert out["loss"].item() == pytest.approx((own + tckd + 8.0 * nckd).item(), rel=1e-5)  # alpha 1, beta 8


def test_detection_fofa_explains_what_it_needs():
    from fofakd.detection.source import build_detection_distiller

    with pytest.raises(FofakdError, match="timm backbone"):
        build_detection_distiller("fofa", build_detector("tv/resnet18", 4, min_size=64, max_size=64,
                                                         fixed_size=(64, 64)), _tiny("resnet10t"))
    with pytest.raises(FofakdError, match="resize and normalise images alike"):
        build_detection_distiller("fofa", build_detector("resnet10t", 4, min_size=64, max_size=96),
                                  build_detector("resnet10t", 4, min_size=64, max_size=64))
    with pytest.raises(FofakdError, match="not known"):
        build_detection_distiller("dkdd", _tiny("resnet10t"), _tiny("resnet10t"))
    for method in ("ofa", "crd", "rkd", "rsd"):  # exit branches, pooled embeddings: no detection counterpart
        with pytest.raises(FofakdError, match=f"method '{method}' needs what only classification models give.*"
                                              "use one of dist, dkd, fitnet, fofa, kd, scratch"):
            build_detection_distiller(method, _tiny("resnet10t"), _tiny("resnet10t"))
    with pytest.raises(FofakdError, match="label_smoothing does not apply"):
        build_detection_distiller("kd", _tiny("resnet10t"), _tiny("resnet10t"), label_smoothing=0.1)
    with pytest.raises(FofakdError, match="teacher_stages does not apply"):
        build_detection_distiller("fitnet", _tiny("resnet10t"), _tiny("resnet10t"), teacher_stages=[1, 2, 3, 4])
    with pytest.raises(FofakdError, match="dimm"):
        build_detection_distiller("fofa", _tiny("resnet10t"), _tiny("resnet10t"), dimm=32)
