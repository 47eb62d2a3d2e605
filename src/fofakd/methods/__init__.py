from . import fofa  # noqa: F401 -- registers the method
from .base import Distiller
from .registry import build_distiller, get_method, list_methods, method_options, register_method
