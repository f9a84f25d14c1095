"""Exporters: the Hugging Face dataset, its card, Rasa NLU, and the Hub."""

from __future__ import annotations
