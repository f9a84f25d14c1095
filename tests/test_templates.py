from __future__ import annotations

import time
from pathlib import Path

import pytest

from textsynth import PromptTemplate, TemplateError
from textsynth.templates import builtin_templates


def test_renders_user_and_system_messages() -> None:
    tpl = PromptTemplate.from_string("Be terse.\n---user---\nSay {{ label }}")
    assert tpl.render_messages(label="hi") == (
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Say hi"},
    )
    assert tpl.variables() == {"label"}


def test_undefined_variable_is_an_error() -> None:
    tpl = PromptTemplate.from_string("Say {{ labell }}")
    with pytest.raises(TemplateError, match="'labell' is undefined"):
        tpl.render(label="x")


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateError, match="line 2"):
        PromptTemplate.from_string("ok\n{% for x in %}")


def test_same_source_in_two_folders_includes_its_own_files(tmp_path: Path) -> None:
    """Compiled code is shared by source; includes still come from each one's folder, and
    each template is its own sandbox (one's render state does not leak to the other)."""
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "main.jinja").write_text("{% include 'part.jinja' %} {{ label }}")
        (folder / "part.jinja").write_text(f"part of {name}")
    first = PromptTemplate.load("a/main.jinja", tmp_path)
    second = PromptTemplate.load("b/main.jinja", tmp_path)
    assert first.render(label="x") == "part of a x"
    assert second.render(label="y") == "part of b y"
    assert first.sha == second.sha
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    for _ in range(2):  # the second one's code comes from the first's compile
        with pytest.raises(TemplateError, match="unsafe"):
            PromptTemplate.from_string(escape).render()


def test_sandbox_blocks_python_internals() -> None:
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(TemplateError, match="unsafe"):
        PromptTemplate.from_string(escape).render()
    gadget = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    with pytest.raises(TemplateError):
        PromptTemplate.from_string(gadget).render(cycler=object())


def test_builtin_template_names_cannot_escape(tmp_path: Path) -> None:
    assert "utterances" in builtin_templates()
    with pytest.raises(TemplateError, match="leaves the recipe's folder"):
        PromptTemplate.load("../../etc/passwd", tmp_path)
    with pytest.raises(TemplateError, match="no built-in template 'nope'"):
        PromptTemplate.load("nope", tmp_path)
    with pytest.raises(TemplateError, match="not found"):
        PromptTemplate.load("missing.jinja", tmp_path)


def test_user_template_path_relative_to_recipe(tmp_path: Path) -> None:
    (tmp_path / "mine.jinja").write_text("Give {{ n }} for {{ label }}")
    tpl = PromptTemplate.load("mine.jinja", tmp_path)
    assert tpl.render(n=3, label="x") == "Give 3 for x"
    assert len(tpl.sha) == 12


# -- confinement: no door out of the template folders ----------------------------------------

@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("TOP-SECRET {% macro m() %}TOP-SECRET{% endmacro %}")
    (secret / "base.jinja").write_text("TOP-SECRET {% block body %}{% endblock %}")
    return secret


@pytest.mark.parametrize("statement", [
    "{% include 'link/secret.txt' %}",
    "{% import 'link/secret.txt' as s %}{{ s.m() }}",
    "{% from 'link/secret.txt' import m %}{{ m() }}",
    "{% extends 'link/base.jinja' %}{% block body %}x{% endblock %}",
    "{% include 'file-link.txt' %}",
])
def test_templates_cannot_follow_links_out_of_their_folder(
        tmp_path: Path, outside: Path, statement: str) -> None:
    recipe_dir = tmp_path / "recipe"
    recipe_dir.mkdir()
    (recipe_dir / "link").symlink_to(outside)
    (recipe_dir / "file-link.txt").symlink_to(outside / "secret.txt")
    (recipe_dir / "t.jinja").write_text(statement)
    tpl = PromptTemplate.load("t.jinja", recipe_dir)
    with pytest.raises(TemplateError, match="leads outside the template folders") as info:
        tpl.render()
    assert "TOP-SECRET" not in str(info.value)


def test_links_inside_the_folder_and_plain_includes_still_work(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "head.jinja").write_text("Hello {{ label }}")
    (tmp_path / "alias.jinja").symlink_to(tmp_path / "parts" / "head.jinja")
    (tmp_path / "t.jinja").write_text("{% include 'parts/head.jinja' %} / "
                                      "{% include 'alias.jinja' %}")
    assert PromptTemplate.load("t.jinja", tmp_path).render(label="x") == "Hello x / Hello x"


def test_template_cannot_change_the_values_it_is_given() -> None:
    slot_types = {"city": ["Paris"]}
    attributes = {"tone": "dry"}
    for source in ["{{ slot_types.city.append('Rome') }}", "{{ attributes.update(tone='x') }}",
                   "{{ slot_types.pop('city') }}", "{{ attributes.clear() }}"]:
        with pytest.raises(TemplateError, match="unsafe"):
            PromptTemplate.from_string(source).render(slot_types=slot_types,
                                                      attributes=attributes)
    assert slot_types == {"city": ["Paris"]} and attributes == {"tone": "dry"}


# -- every error a template causes is a TemplateError --------------------------------------

class _Raises:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def __str__(self) -> str:
        raise self.exc


@pytest.mark.parametrize(("source", "context", "expected"), [
    ("{{ 1 / 0 }}", {}, "ZeroDivisionError"),
    ("{{ 2.0 ** 2000 }}", {}, "OverflowError|too large"),
    ("{{ 'a' + 1 }}", {}, "TypeError"),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", {}, "recursion"),
    ("{{ x }}", {"x": _Raises(KeyError("k"))}, "KeyError"),
    ("{{ x }}", {"x": _Raises(MemoryError())}, "out of memory"),
    ("{{ x }}", {"x": _Raises(RecursionError())}, "recursion"),
    ("{{ x }}", {"x": _Raises(OverflowError("too big"))}, "OverflowError: too big"),
])
def test_runtime_errors_become_template_errors(source: str, context: dict,
                                               expected: str) -> None:
    with pytest.raises(TemplateError, match=expected) as info:
        PromptTemplate.from_string(source, "t.jinja").render(**context)
    assert str(info.value).startswith("template t.jinja: ")


def test_template_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_bytes("Schreibe f\u00fcr {{ label }}".encode("latin-1"))
    with pytest.raises(TemplateError, match=r"line 1: not UTF-8 text \(byte 0xfc\)"):
        PromptTemplate.load("t.jinja", tmp_path)
    (tmp_path / "outer.jinja").write_text("{% include 't.jinja' %}")
    with pytest.raises(TemplateError, match="not UTF-8"):
        PromptTemplate.load("outer.jinja", tmp_path).render(label="x")


# -- bounded: size and time ---------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{ 'x' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 'x' | center(10**12) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
    "{{ 10 ** (10 ** 10) }}",
    "{{ '%500000000s' % 'x' }}",
    "{{ '%(a)500000000s' % {'a': 'x'} }}",
    "{{ '%.500000000f' % 1.5 }}",
    "{{ '%500000000s' | format('x') }}",
    "{{ '{:>5000000000}'.format('x') }}",
    "{{ '{:>{w}}'.format('x', w=5000000000) }}",
])
def test_huge_values_are_refused_without_building_them(source: str, monkeypatch) -> None:
    import tracemalloc

    from textsynth import templates

    monkeypatch.setattr(templates, "clock", lambda: 0.0)  # refused by size, not by time
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match=r"larger than|longer than|too large"):
            PromptTemplate.from_string(source).render()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # a few times the 4 M-character limit at most


@pytest.mark.parametrize("source", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set r = range(100000) | list %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
])
def test_a_render_that_never_ends_is_stopped(source: str, monkeypatch) -> None:
    from textsynth import templates

    reads = [0]

    def clock() -> float:  # every look at the clock is 10 ms later
        reads[0] += 1
        return reads[0] * 0.01

    monkeypatch.setattr(templates, "MAX_RENDER_SECONDS", 0.5)
    monkeypatch.setattr(templates, "clock", clock)
    with pytest.raises(TemplateError, match=r"longer than 0\.5 s"):
        PromptTemplate.from_string(source).render()
    assert 50 <= reads[0] <= 53  # stopped at the first look past the deadline


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ ('x' * 4000000) | wordwrap(5) }}", "wordwrap: a word of 4,000,000 characters"),
    ("{{ ('ab' * 6000) | wordwrap(width=3) }}", "wordwrap: a word of 12,000 characters"),
    ("{{ ('a.b ' * 1000000) | urlize }}", "urlize: a text of 4,000,000 characters"),
])
def test_one_filter_call_too_slow_to_stop_is_refused_before_it_starts(
        source: str, expected: str) -> None:
    # one call cannot be stopped half-way: these took 12-50 s before, past the 5 s limit
    started = time.monotonic()
    with pytest.raises(TemplateError, match=expected):
        PromptTemplate.from_string(source).render()
    assert time.monotonic() - started < 2


def test_formats_and_filters_with_ordinary_sizes_render_as_before() -> None:
    source = ("{{ '%5s|%-3d|%%|%.2f' % ('a', 7, 1.234) }} {{ '{:>4}|{:.1f}'.format('b', 2.25) }} "
              "{{ '%s-%s' | format(1, 2) }} {{ 7 % 3 }} {{ 'hello world foo' | wordwrap(5) }} "
              "{{ ('x' * 20000) | wordwrap(5, false) | length }} {{ 'see http://a.com' | urlize }}")
    assert PromptTemplate.from_string(source).render() == (
        'a|7  |%|1.23    b|2.2 1-2 1 hello\nworld\nfoo 20000 '
        'see <a href="http://a.com" rel="noopener">http://a.com</a>')


def test_loops_filters_and_concatenation_render_as_before() -> None:
    source = ("{% for k, v in d | dictsort %}{{ loop.index }}/{{ loop.length }} {{ k ~ '=' ~ v }}"
              "{{ ';' if not loop.last }}{% endfor %} {% filter upper %}end{% endfilter %}")
    assert PromptTemplate.from_string(source).render(d={"b": 2, "a": 1}) == "1/2 a=1;2/2 b=2 END"
