from .checkpoint import load_weights, read_state_dict
from .factory import create_model, has_fixed_input_size
