# Importing each method registers it.
from . import crd, dist, dkd, fitnet, fofa, kd, ofa, rkd, scratch  # noqa: F401
from .base import Distiller
from .registry import build_distiller, get_method, list_methods, method_options, register_method
