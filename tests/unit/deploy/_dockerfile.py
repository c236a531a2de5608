"""The repository's Dockerfile as stages of instructions (parsed by dockerfile-parse)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

__all__ = ["Stage", "stages"]


@dataclass
class Stage:
    name: str
    base: str
    #: (INSTRUCTION, value) in order, comments left out, continuation lines joined
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]

    def last(self, instruction: str) -> str:
        found = self.values(instruction)
        assert found, f"stage {self.name}: no {instruction}"
        return found[-1]

    def exec_form(self, instruction: str) -> list[str]:
        """ENTRYPOINT/CMD in exec (JSON) form; the shell form fails the test."""
        value: list[str] = json.loads(self.last(instruction))
        assert isinstance(value, list), f"{instruction} is not in exec form"
        return value

    def run_text(self) -> str:
        return "\n".join(self.values("RUN"))


def stages(path: Path) -> dict[str, Stage]:
    """Stages by name (``FROM x AS name``), in file order."""
    parser = DockerfileParser(str(path))
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", value.strip(), flags=re.IGNORECASE)
            assert m, value
            current = Stage(name=m.group(2) or str(len(out)), base=m.group(1))
            out[current.name] = current
        elif current is not None:
            current.instructions.append((instruction, value))
    return out
