from pathlib import Path

import dagster as dg
from pydantic import Field

from pipeline.toolchain import Toolchain, locate_toolchain


class LlamaCppResource(dg.ConfigurableResource):
    """The llama.cpp tools: this directory if set, else LLAMA_CPP_DIR, the build cache, PATH."""

    llama_cpp_dir: str | None = Field(default=None, description="A llama.cpp build to use.")

    def toolchain(self) -> Toolchain:
        explicit = Path(self.llama_cpp_dir).expanduser() if self.llama_cpp_dir else None
        return locate_toolchain(explicit)
