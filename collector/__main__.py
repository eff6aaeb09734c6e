"""``python -m collector``: the same as ``otel-bedrock collector``."""

from __future__ import annotations

from collector.cli import collector_command

if __name__ == "__main__":
    collector_command(prog_name="python -m collector")
