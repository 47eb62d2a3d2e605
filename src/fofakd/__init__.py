"""fofakd: heterogeneous knowledge distillation for vision models (FOFA and baselines)."""
from .errors import FofakdError
from .features import ModelStages, StageInfo, discover_stages, forward_stages
from .methods import Distiller, build_distiller, list_methods, method_options, register_method
from .models import create_model

__version__ = "0.1.0"

__all__ = [
    "Distiller", "FofakdError", "ModelStages", "StageInfo", "build_distiller", "create_model", "discover_stages",
    "forward_stages", "list_methods", "method_options", "register_method", "__version__",
]
