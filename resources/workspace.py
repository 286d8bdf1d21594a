from pathlib import Path

import dagster as dg
from pydantic import Field


class WorkspaceResource(dg.ConfigurableResource):
    """Where the user's own material lives: session logs, skill docs, the ratings database."""

    projects_dir: str = Field(default="~/.claude/projects", description="Claude Code logs.")
    skills_dir: str = Field(default="~/.claude/skills", description="skills/*/SKILL.md")
    ratings_url: str | None = Field(default=None, description="SQLAlchemy URL of ratings.")
    scrub_skip_rules: list[str] = Field(
        default_factory=list,
        description="Scrubber rule ids to turn off (false positives in your own text); the ids"
        " are listed by `pipeline.scrub.rule_ids()`. The blocking secrets check still runs"
        " detect-secrets on everything.",
    )

    def projects_path(self) -> Path:
        return Path(self.projects_dir).expanduser()

    def skills_path(self) -> Path:
        return Path(self.skills_dir).expanduser()

    def corpus_roots(self) -> list[Path]:
        """Folders whose text trains the tiny model's tokenizer."""
        roots = [self.projects_path(), self.skills_path()]
        if self.ratings_url and self.ratings_url.startswith("sqlite:///"):
            roots.append(Path(self.ratings_url.removeprefix("sqlite:///")).expanduser())
        return [r for r in dict.fromkeys(roots) if r.exists()]
