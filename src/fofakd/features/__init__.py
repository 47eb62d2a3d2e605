from .layout import infer_grid, map_to_tokens, to_map, tokens_to_map
from .stages import (
    ModelStages, StageInfo, default_stage_indices, discover_stages, embedding_dim, forward_embedding, forward_stages,
)
