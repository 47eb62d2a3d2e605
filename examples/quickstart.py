"""FOFA in your own training loop: distil a ResNet-18 teacher into a small ViT on a few Fashion-MNIST batches.

Run: python examples/quickstart.py [--steps N]
The teacher here is untrained (pass a checkpoint to `create_model` for a real one); the point is the API.
"""
from __future__ import annotations

import argparse

import torch

import fofakd
from fofakd.data import dataset_stats, load_fashion_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)

    images, labels = load_fashion_mnist("train")
    count = args.steps * args.batch_size
    mean, std = dataset_stats("fashion-mnist")  # the statistics the command line normalises with
    images = (images[:count].float() / 255 - mean[0]) / std[0]
    labels = labels[:count]
    teacher = fofakd.create_model("resnet18", num_classes=10, in_chans=1)
    student = fofakd.create_model("deit_tiny_patch16_224", num_classes=10, in_chans=1, img_size=28, patch_size=4)
    distiller = fofakd.build_distiller("fofa", teacher=teacher, student=student, input_size=(1, 28, 28))
    print(f"training-only parameters: {distiller.num_extra_parameters() / 1e6:.2f} M")
    for name, stages in (("teacher", distiller.teacher_stages), ("student", distiller.student_stages)):
        print(f"{name} stages:", [f"{s.module} {s.form} {s.feature_shape}" for s in stages.stages])

    optimizer = torch.optim.AdamW(distiller.trainable_parameters(), lr=5e-4, weight_decay=0.05)
    distiller.train()
    for step, (x, y) in enumerate(zip(images.split(args.batch_size), labels.split(args.batch_size))):
        out = distiller(x, y)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        if step % 5 == 0 or step == args.steps - 1:
            parts = "  ".join(f"{k}={v.item():.4f}" for k, v in out.items() if k.startswith("loss"))
            print(f"step {step:3d}  {parts}")
    student = distiller.student.eval()  # the bare student is what you ship
    print("student output:", tuple(student(images[:2]).shape))


if __name__ == "__main__":
    main()
