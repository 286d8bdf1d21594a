import dagster as dg
from pydantic import Field

from pipeline.config import TINY_LORA, BaseModelConfig, LoraConfig


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
    # LoRA: the fields users tune most; everything else keeps LoraConfig's defaults.
    fine_tune_type: str = Field(default="lora", description='"lora" or "dora"')
    lora_rank: int = 8
    lora_layers: int = Field(default=-1, description="blocks to adapt from the top; -1 = all")
    learning_rate: float = 1e-3
    # None: LoraConfig's default, or TINY_LORA's for the tiny model (see pipeline/config.py).
    batch_size: int | None = Field(default=None, description="sequences per step")
    epochs: float | None = Field(default=None, description="passes over the train split")
    iters: int | None = Field(default=None, description="fixed steps instead of epochs")
    max_seq_length: int | None = Field(default=None, description="tokens; longer are cut")

    def tiny_config(self) -> BaseModelConfig:
        return BaseModelConfig(
            hidden_size=self.tiny_hidden_size,
            num_hidden_layers=self.tiny_layers,
            vocab_size=self.tiny_vocab_size,
            seed=self.seed,
        )

    def lora_config(self) -> LoraConfig:
        defaults = TINY_LORA if self.base_model == "tiny" else {}
        chosen = {
            k: v if v is not None else defaults.get(k, getattr(LoraConfig, k))
            for k, v in (
                ("batch_size", self.batch_size),
                ("epochs", self.epochs),
                ("max_seq_length", self.max_seq_length),
            )
        }
        return LoraConfig(
            fine_tune_type=self.fine_tune_type,
            rank=self.lora_rank,
            num_layers=self.lora_layers,
            learning_rate=self.learning_rate,
            iters=self.iters,
            seed=self.seed,
            **chosen,
        )
