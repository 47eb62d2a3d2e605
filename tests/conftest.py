import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set when pytest-xdist runs the tests in several processes
if WORKER:
    # Each worker takes one core; its own cache folder, so that workers never write the same data at once.
    torch.set_num_threads(1)
    os.environ.setdefault("FOFAKD_DATA", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fofakd-test-data-{WORKER}"))
else:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


LONGEST = "test_demo.py"  # about 8 minutes on one core: CI's critical path, so it starts first


def pytest_collection_modifyitems(items):
    """The demo first, then the slow tests (in their order): with several workers, the longest start at once
    instead of running alone at the end."""
    items.sort(key=lambda item: (LONGEST not in item.nodeid, item.get_closest_marker("slow") is None))
