# Importing each method registers it.
from . import crd, dist, dkd, fitnet, fofa, kd, ofa, rkd, rsd, scratch  # noqa: F401
from .base import Distiller, LogitDistiller
from .registry import (build_distiller, get_method, list_methods, method_options, methods_for,  # noqa: F401
                       register_method)
from .source import ClassifierSource, FeatureSource
