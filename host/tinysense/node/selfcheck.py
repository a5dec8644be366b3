"""Run the node's self-check (firmware/tsnode/selfcheck.py) and parse what it prints."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SelfCheck:
    text: str  # exactly what the node printed
    facts: dict[str, str]  # "micropython", "board", "heap free", "heap used"
    modules: dict[str, str]  # "tsnode.engine" -> "ok" | "missing" | "error: ..."

    @property
    def heap_free(self) -> int:
        return int(self.facts["heap free"])


def parse_selfcheck(text: str) -> SelfCheck:
    facts, modules = {}, {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key.startswith("module "):
            modules[key[len("module "):]] = value
        else:
            facts[key] = value
    return SelfCheck(text, facts, modules)


def run_selfcheck(node, timeout: float = 30) -> SelfCheck:
    """Run tsnode.selfcheck on a node that has the firmware deployed."""
    return parse_selfcheck(node.exec("import tsnode.selfcheck\ntsnode.selfcheck.run()",
                                     timeout=timeout))
