"""Prompt templates: sandboxed, strict Jinja that renders chat messages."""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from pathlib import Path
from types import CodeType
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.ext import Extension
from jinja2.loaders import split_template_path
from jinja2.runtime import new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from textsynth.errors import TemplateError

__all__ = ["PromptTemplate", "builtin_template_dir", "builtin_templates"]

SYSTEM_MARKER = "---user---"
SUFFIX = ".jinja"
MAX_TEMPLATE_BYTES = 2**20
MAX_PROMPT_CHARS = 2**22  # a rendered prompt, and any one value a template builds
MAX_RENDER_SECONDS = 5.0
# one filter call cannot be stopped half-way, so the few whose cost grows faster than
# their input are bounded before they start: a word that ``wordwrap`` cuts into pieces
# (each cut copies the rest of the word) and the text ``urlize`` scans (about 3 us a word)
MAX_WRAPPED_WORD = 10_000
MAX_URLIZE_CHARS = 2**20
# a width or precision in a printf-style (``%10s``) or ``str.format`` (``{:>10}``) spec
_PRINTF_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?[a-zA-Z%]")
_FORMAT_WIDTH = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)(?:\.(\d+))?[^{}]*\}")
_NESTED_SPEC = re.compile(r":[^{}]*\{")
_LONG_WORD = re.compile(rf"\S{{{MAX_WRAPPED_WORD + 1},}}")
# Jinja's code by source (64 at most): a run loads its template for the prompts, the prompt-
# echo rule and the card (~15 ms a compile); only the source and fixed settings shape it
_CODE: dict[str, CodeType] = {}
clock: Callable[[], float] = time.monotonic  # what render time is measured with


def builtin_template_dir() -> Path:
    """The folder holding the built-in templates (inside the wheel, or the checkout)."""
    packaged = Path(str(resources.files("textsynth"))) / "prompts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "prompts"


def builtin_templates() -> list[str]:
    return sorted(p.stem for p in builtin_template_dir().glob(f"*{SUFFIX}"))


def _read_template(path: Path, name: str) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise TemplateError(f"cannot read template {name}: {exc.strerror or exc}") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"template {name} is larger than {MAX_TEMPLATE_BYTES:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TemplateError(f"template {name}, line {line}: not UTF-8 text "
                            f"(byte 0x{raw[exc.start]:02x})") from None


class _ConfinedLoader(jinja2.BaseLoader):
    """Finds ``{% include %}``, ``{% import %}`` and ``{% extends %}`` targets in the
    template folders only: a path is followed to its real location (symlinks
    resolved) and refused unless that lies inside one of the (real) folders."""

    def __init__(self, roots: Iterable[Path]):
        self.roots = [Path(r).resolve() for r in roots]

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)  # refuses ".." and absolute paths
        for root in self.roots:
            candidate = root.joinpath(*pieces)
            if not candidate.is_file():
                continue
            real = candidate.resolve()
            if not any(real.is_relative_to(r) for r in self.roots):
                raise TemplateError(f"template '{template}' is a link that leads outside the "
                                    "template folders")
            source = _read_template(real, template)
            return source, str(real), _unchanged(real)
        raise jinja2.TemplateNotFound(template)


def _unchanged(path: Path) -> Callable[[], bool]:
    mtime = path.stat().st_mtime
    return lambda: path.is_file() and path.stat().st_mtime == mtime


class _Guard(Extension):
    """Checks inserted into every compiled template: iteration and the values that
    filters and ``~`` build are bounded in size, and rendering in time."""

    def checked(self, value: Any) -> Any:
        env: _BoundedEnvironment = self.environment  # type: ignore[assignment]
        env.tick()
        env.check_size(value)
        return value

    def iterate(self, iterable: Any) -> Iterator[Any]:
        env: _BoundedEnvironment = self.environment  # type: ignore[assignment]
        for i, item in enumerate(iterable):
            if not i & 255:
                env.tick()
            yield item


class _Bound(NodeTransformer):
    """Wraps loop iterables, filters and ``~`` concatenations in :class:`_Guard` calls."""

    def __init__(self, guard: _Guard):
        self.guard = guard

    def _call(self, method: str, node: nodes.Node) -> nodes.Call:
        return nodes.Call(self.guard.attr(method, lineno=node.lineno), [node],
                          [], None, None,
                          lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._call("iterate", node.iter)
        return node

    def visit_Filter(self, node: nodes.Filter) -> nodes.Node:
        self.generic_visit(node)
        return node if node.node is None else self._call("checked", node)  # {% filter %}

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._call("checked", node)


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """An immutable sandbox (a template cannot change the lists and dicts it is
    given) whose templates are bounded in output size and render time."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(extensions=[_Guard], **options)
        self.max_chars = MAX_PROMPT_CHARS
        self.max_seconds = MAX_RENDER_SECONDS
        self.deadline = math.inf
        self._guard: _Guard = self.extensions[_Guard.identifier]  # type: ignore[assignment]
        for name in ("center", "indent"):  # padding allocates before any size check
            self.filters[name] = self._width_checked(self.filters[name])
        self.filters["format"] = self._format_checked(self.filters["format"])
        self.filters["wordwrap"] = self._wrap_checked(self.filters["wordwrap"])
        self.filters["urlize"] = self._urlize_checked(self.filters["urlize"])

    def check_format(self, spec: Any) -> None:
        """Refuses a printf-style or ``str.format`` spec whose width or precision is
        larger than a prompt: ``'%500000000s' % 'x'`` would build it before any check."""
        if not isinstance(spec, str) or not any(c.isdigit() for c in spec):
            return
        for pattern in (_PRINTF_WIDTH, _FORMAT_WIDTH):
            for match in pattern.finditer(spec):
                self.check_widths(*(int(n) for n in match.groups() if n and len(n) > 6))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        spec = value.__self__  # "{:>500000000}".format(...): checked before the call
        self.check_format(spec)
        if not _NESTED_SPEC.search(spec):
            return wrapped

        def nested(*args: Any, **kwargs: Any) -> str:  # "{:>{w}}": a width from the values
            self.check_widths(*args, *kwargs.values())
            return wrapped(*args, **kwargs)

        return nested

    def _format_checked(self, fmt: Callable[..., Any]) -> Callable[..., Any]:
        def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
            self.check_format(value)
            return fmt(value, *args, **kwargs)

        return checked

    def _wrap_checked(self, wrap: Callable[..., Any]) -> Callable[..., Any]:
        def checked(environment: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            words = (kwargs.get("break_long_words", args[1] if len(args) > 1 else True)
                     and isinstance(value, str) and len(value) > MAX_WRAPPED_WORD
                     and _LONG_WORD.search(value))
            if words:
                raise TemplateError(f"wordwrap: a word of {len(words[0]):,} characters is "
                                    f"longer than {MAX_WRAPPED_WORD:,} (cutting it up would "
                                    "take too long)")
            return wrap(environment, value, *args, **kwargs)

        checked.jinja_pass_arg = wrap.jinja_pass_arg  # type: ignore[attr-defined]
        return checked

    def _urlize_checked(self, urlize: Callable[..., Any]) -> Callable[..., Any]:
        def checked(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(value, str) and len(value) > MAX_URLIZE_CHARS:
                raise TemplateError(f"urlize: a text of {len(value):,} characters is longer "
                                    f"than {MAX_URLIZE_CHARS:,}")
            return urlize(context, value, *args, **kwargs)

        checked.jinja_pass_arg = urlize.jinja_pass_arg  # type: ignore[attr-defined]
        return checked

    def check_widths(self, *values: Any) -> None:
        """Refuses a whole number among ``values`` that, as a width, makes a value larger
        than a prompt (padding allocates before any size check)."""
        for value in values:
            if isinstance(value, int) and value > self.max_chars:
                raise TemplateError(f"a width of {value:,} is larger than the prompt limit "
                                    f"({self.max_chars:,})")

    def _width_checked(self, pad: Callable[..., Any]) -> Callable[..., Any]:
        def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
            self.check_widths(*args, *kwargs.values())
            return pad(value, *args, **kwargs)

        return checked

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        bounded: nodes.Template = _Bound(self._guard).visit(tree)
        return bounded

    def start(self) -> None:
        self.deadline = clock() + self.max_seconds

    def tick(self) -> None:
        if clock() > self.deadline:
            raise TemplateError(f"rendering took longer than {self.max_seconds:g} s "
                                "(a loop that does not end?)")

    def check_size(self, value: Any) -> None:
        if isinstance(value, str | bytes | list | tuple | dict) and len(value) > self.max_chars:
            raise TemplateError(f"a value of {len(value):,} characters or items is larger "
                                f"than the prompt limit ({self.max_chars:,})")

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        self.tick()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * times > self.max_chars:
                    raise TemplateError(f"repeating a value {times:,} times makes it larger "
                                        f"than the prompt limit ({self.max_chars:,})")
        if operator == "%":
            self.check_format(left)
        if operator == "**" and isinstance(left, int | float) and isinstance(right, int | float) \
                and abs(left) > 1 and right * math.log2(abs(left)) > 4096:
            raise TemplateError(f"{left} ** {right} is too large a number")
        result = super().call_binop(context, operator, left, right)
        self.check_size(result)
        return result

    def call(__self, __context: jinja2.runtime.Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        if getattr(__obj, "__self__", None) is __self._guard:
            # a check _Bound inserted: it ticks and bounds the value itself, and a
            # template cannot name it, so the sandbox's checks of a call add nothing;
            # it takes no context either, so what Context.call does comes down to this
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
            return __obj(*args, **kwargs)
        __self.tick()
        result = super().call(__context, __obj, *args, **kwargs)
        __self.check_size(result)
        return result


class PromptTemplate:
    """A Jinja template that renders one prompt as chat messages.

    The text above a line ``---user---`` (if present) is the system message; the
    rest is the user message. Rendering is sandboxed (no access to Python
    internals, no changes to the values it is given), strict (an undefined variable
    is an error), confined (``include``, ``import`` and ``extends`` read only from
    the template folders, never through a link out of them) and bounded: a prompt
    longer than ``MAX_PROMPT_CHARS`` or a render slower than ``MAX_RENDER_SECONDS``
    is a :class:`TemplateError`, as is any error the template causes.

    >>> PromptTemplate.from_string("Say {{ label }}").render_messages(label="hi")
    ({'role': 'user', 'content': 'Say hi'},)
    """

    def __init__(self, source: str, name: str = "<string>", search_path: Iterable[Path] = ()):
        self.name = name
        self.source = source
        self.sha = hashlib.sha256(source.encode()).hexdigest()[:12]
        self._env = _BoundedEnvironment(
            undefined=jinja2.StrictUndefined,
            loader=_ConfinedLoader(search_path) if search_path else None,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
        )
        try:
            if source not in _CODE and len(_CODE) >= 64:
                _CODE.clear()
            code = _CODE.get(source) or _CODE.setdefault(source, self._env.compile(source))
            self._template = self._env.template_class.from_code(
                self._env, code, self._env.make_globals(None))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {name}, line {exc.lineno}: {exc.message}") from None
        except RecursionError:
            raise TemplateError(f"template {name}: nested too deeply") from None
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
            return cls(_read_template(path, ref), ref, [builtin])
        base = (base_dir or Path.cwd()).resolve()
        path = (base / ref).resolve()
        if not (path.is_relative_to(base) or path.is_relative_to(builtin.resolve())):
            raise TemplateError(f"template path '{ref}' leaves the recipe's folder {base}")
        if not path.is_file():
            raise TemplateError(f"template file not found: {path}")
        return cls(_read_template(path, ref), ref, [path.parent, builtin])

    def variables(self) -> set[str]:
        """Names the template reads from its context."""
        return set(meta.find_undeclared_variables(self._env.parse(self.source)))

    def render(self, **context: Any) -> str:
        env, template, size, parts = self._env, self._template, 0, []
        try:
            env.start()  # Context reads the keys of the flattened globals, not a ChainMap's
            ctx = new_context(env, template.name, template.blocks,
                              {**self._globals, **context}, True, self._globals)
            for i, part in enumerate(template.root_render_func(ctx)):
                size += len(part)
                if size > env.max_chars:
                    raise TemplateError(f"the prompt is longer than {env.max_chars:,} "
                                        "characters")
                if not i & 15:  # a part is quick to make: loops, calls and filters tick too
                    env.tick()
                parts.append(part)
            return "".join(parts).strip()
        except TemplateError as exc:
            raise TemplateError(f"template {self.name}: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {self.name}: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"template {self.name}: unsafe operation: {exc}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.name}: {exc}") from None
        except RecursionError:
            raise TemplateError(f"template {self.name}: recursion too deep") from None
        except MemoryError:
            raise TemplateError(f"template {self.name}: out of memory while rendering") \
                from None
        except Exception as exc:  # the template's own mistake: 1/0, a missing key ...
            raise TemplateError(f"template {self.name}: {type(exc).__name__}: {exc}") from None
        finally:
            env.deadline = math.inf

    def render_messages(self, **context: Any) -> tuple[dict[str, str], ...]:
        text = self.render(**context)
        if SYSTEM_MARKER in text:
            system, _, user = text.partition(SYSTEM_MARKER)
            return (
                {"role": "system", "content": system.strip()},
                {"role": "user", "content": user.strip()},
            )
        return ({"role": "user", "content": text},)
