# Importing each method registers it.
from . import crd, dist, dkd, fitnet, fofa, kd, ofa, rkd, scratch  # noqa: F401
from .base import Distiller, LogitDistiller
from .registry import (build_distiller, get_method, list_methods, logit_method, method_options,  # noqa: F401
                       register_method)
