"""Prompt templates: sandboxed, strict Jinja that renders chat messages."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from textsynth.errors import TemplateError

__all__ = ["PromptTemplate", "builtin_template_dir", "builtin_templates"]

SYSTEM_MARKER = "---user---"
SUFFIX = ".jinja"


def builtin_template_dir() -> Path:
    """The folder holding the built-in templates (inside the wheel, or the checkout)."""
    packaged = Path(str(resources.files("textsynth"))) / "prompts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "prompts"


def builtin_templates() -> list[str]:
    return sorted(p.stem for p in builtin_template_dir().glob(f"*{SUFFIX}"))


class PromptTemplate:
    """A Jinja template that renders one prompt as chat messages.

    The text above a line ``---user---`` (if present) is the system message; the
    rest is the user message. Rendering is sandboxed (no access to Python
    internals) and strict (an undefined variable is an error).

    >>> PromptTemplate.from_string("Say {{ label }}").render_messages(label="hi")
    ({'role': 'user', 'content': 'Say hi'},)
    """

    def __init__(self, source: str, name: str = "<string>", search_path: Iterable[Path] = ()):
        self.name = name
        self.source = source
        self.sha = hashlib.sha256(source.encode()).hexdigest()[:12]
        loader = jinja2.FileSystemLoader([str(p) for p in search_path]) if search_path else None
        self._env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            loader=loader,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
        )
        try:
            self._template = self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {name}, line {exc.lineno}: {exc.message}") from None
        # flattened once: Template.render would merge its ChainMap of globals every time
        self._globals = dict(self._template.globals)

    @classmethod
    def from_string(cls, source: str, name: str = "<string>") -> PromptTemplate:
        return cls(source, name)

    @classmethod
    def load(cls, ref: str, base_dir: Path | None = None) -> PromptTemplate:
        """Load a built-in template by name (``utterances``) or a user template by path.

        A name never escapes the template folders; a path is taken relative to the
        recipe's folder.
        """
        builtin = builtin_template_dir()
        is_name = not any(c in ref for c in "/\\") and ref not in ("..", ".")
        if is_name and not ref.endswith(SUFFIX):
            path = builtin / f"{ref}{SUFFIX}"
            if not path.is_file():
                known = ", ".join(builtin_templates())
                raise TemplateError(f"no built-in template '{ref}' (built-in: {known})")
            return cls(path.read_text(encoding="utf-8"), ref, [builtin])
        base = (base_dir or Path.cwd()).resolve()
        path = (base / ref).resolve()
        if not (path.is_relative_to(base) or path.is_relative_to(builtin.resolve())):
            raise TemplateError(f"template path '{ref}' leaves the recipe's folder {base}")
        if not path.is_file():
            raise TemplateError(f"template file not found: {path}")
        return cls(path.read_text(encoding="utf-8"), ref, [path.parent, builtin])

    def variables(self) -> set[str]:
        """Names the template reads from its context."""
        return set(meta.find_undeclared_variables(self._env.parse(self.source)))

    def render(self, **context: Any) -> str:
        try:
            ctx = self._template.new_context({**self._globals, **context}, shared=True)
            return "".join(self._template.root_render_func(ctx)).strip()
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {self.name}: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"template {self.name}: unsafe operation: {exc}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.name}: {exc}") from None

    def render_messages(self, **context: Any) -> tuple[dict[str, str], ...]:
        text = self.render(**context)
        if SYSTEM_MARKER in text:
            system, _, user = text.partition(SYSTEM_MARKER)
            return (
                {"role": "system", "content": system.strip()},
                {"role": "user", "content": user.strip()},
            )
        return ({"role": "user", "content": text},)
