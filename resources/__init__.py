"""Typed Dagster resources around the core: stores, MLX, llama.cpp, the user's workspace."""

from resources.artifacts import ArtifactStoreResource
from resources.llama_cpp import LlamaCppResource
from resources.mlx import MLXResource
from resources.workspace import WorkspaceResource

__all__ = ["ArtifactStoreResource", "LlamaCppResource", "MLXResource", "WorkspaceResource"]
