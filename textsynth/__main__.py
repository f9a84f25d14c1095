from __future__ import annotations

from textsynth.cli import main

main()
