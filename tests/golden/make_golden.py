"""Golden loss values for every method: fixed models, inputs and two SGD steps.

Run `python tests/golden/make_golden.py` to rewrite `method_losses.json` after a change that is *meant* to alter
a method's maths; `tests/test_golden.py` fails on any other change. Models are re-initialised here from one seeded
generator, so the values do not depend on timm's or fofakd's initialisers, only on the methods' arithmetic.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
FIXTURE = HERE / "method_losses.json"
sys.path.insert(0, str(HERE.parent))

from pairs import INPUT_SIZE, make_model  # noqa: E402

import fofakd  # noqa: E402

TEACHER, STUDENT = "resnet18", "deit_tiny_patch16_224"
BATCH, STEPS, LR = 4, 2, 0.05


def seeded_init(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Matrices ~ N(0, 1/fan_in), vectors named weight = 1, other vectors = 0; FOFA's beta is left at 0."""
    with torch.no_grad():
        for name, param in sorted(module.named_parameters(), key=lambda item: item[0]):
            if param.ndim > 1:
                fan_in = math.prod(param.shape[1:])
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
            elif name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.zero_()


def compute_losses() -> dict[str, list[dict[str, float]]]:
    """Each method's loss parts at each of `STEPS` training steps."""
    results = {}
    for method in fofakd.list_methods():
        torch.manual_seed(0)
        distiller = fofakd.build_distiller(method, teacher=make_model(TEACHER), student=make_model(STUDENT),
                                           input_size=INPUT_SIZE)
        seeded_init(distiller, torch.Generator().manual_seed(1))
        distiller.train()
        optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=LR)
        data = torch.Generator().manual_seed(2)
        steps = []
        for _ in range(STEPS):
            x = torch.randn(BATCH, *INPUT_SIZE, generator=data)
            y = torch.randint(0, 10, (BATCH,), generator=data)
            out = distiller(x, y)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
            steps.append({k: float(v.detach()) for k, v in sorted(out.items()) if k.startswith("loss")})
        results[method] = steps
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)
    FIXTURE.write_text(json.dumps(compute_losses(), indent=1) + "\n")
    print(f"wrote {FIXTURE}")
