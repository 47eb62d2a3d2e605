"""`fofakd compare`: several methods on one teacher, student and data set, over paired seeds, with a report."""
from .plan import Comparison, comparison_from_args  # noqa: F401
from .stats import paired  # noqa: F401
