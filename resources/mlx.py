import dagster as dg
from pydantic import Field

from pipeline.config import BaseModelConfig


class MLXResource(dg.ConfigurableResource):
    """The base model and the MLX side of training.

    `base_model` is "tiny" (built locally, the embedded default), a Hugging Face model id,
    or a local HF-format directory.
    """

    base_model: str = Field(default="tiny", description='"tiny", an HF model id or a path.')
    tiny_hidden_size: int = 64
    tiny_layers: int = 2
    tiny_vocab_size: int = 1024
    seed: int = 0

    def tiny_config(self) -> BaseModelConfig:
        return BaseModelConfig(
            hidden_size=self.tiny_hidden_size,
            num_hidden_layers=self.tiny_layers,
            vocab_size=self.tiny_vocab_size,
            seed=self.seed,
        )
