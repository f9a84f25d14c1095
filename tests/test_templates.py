from __future__ import annotations

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
