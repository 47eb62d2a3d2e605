from .build import build_data, build_eval_data  # noqa: F401
from .bundle import DataBundle  # noqa: F401
from .datasets import DATASETS, TensorSplit, dataset_stats, load_tensor_split
from .fashion_mnist import load_fashion_mnist
