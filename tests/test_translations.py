"""Spanish is complete: every catalogue entry translated, compiled, and no template text unmarked.

The catalogue is locale/es/LC_MESSAGES/django.po, made by ``makemessages``;
a string added to the code without a translation appears there with an
empty msgstr (or "fuzzy"), and these tests fail until it is translated and
``compilemessages`` run. The template check reads every template's text
outside Django tags and HTML markup: anything left is a sentence a reader
would see untranslated.
"""

import re
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "locale" / "es" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOGUE.with_suffix(".mo")
TEMPLATES = ROOT / "templates"

_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%[sd]")
_DJANGO_MARKUP = re.compile(r"{%.*?%}|{{.*?}}|{#.*?#}", re.S)
_BLOCK_TRANSLATE = re.compile(
    r"{%\s*blocktrans(?:late)?\b.*?{%\s*endblocktrans(?:late)?\s*%}", re.S
)
_COMMENT = re.compile(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", re.S)
_TEXT_ATTRIBUTES = re.compile(r'\b(?:aria-label|alt|title|placeholder)="([^"]*)"')
_WORD = re.compile(r"[^\W\d_]{2,}")


def _entries():
    return [entry for entry in polib.pofile(str(CATALOGUE)) if not entry.obsolete]


def _translations(entry) -> list[str]:
    if entry.msgid_plural:
        return [entry.msgstr_plural[key] for key in sorted(entry.msgstr_plural)]
    return [entry.msgstr]


def test_every_catalogue_entry_has_a_spanish_translation():
    missing = [
        entry.msgid
        for entry in _entries()
        if "fuzzy" in entry.flags or not all(_translations(entry))
    ]
    assert missing == [], f"{len(missing)} untranslated: {missing[:10]}"


def test_every_plural_entry_has_each_form_the_catalogue_declares():
    # Spanish declares three forms (Django's rule for millions); one missing makes
    # gettext fall back to English for the counts that need it.
    header = polib.pofile(str(CATALOGUE)).metadata["Plural-Forms"]
    forms = int(re.search(r"nplurals=(\d+)", header).group(1))
    short = [
        entry.msgid
        for entry in _entries()
        if entry.msgid_plural and sorted(entry.msgstr_plural) != list(range(forms))
    ]
    assert short == []


def test_translations_keep_the_placeholders_of_their_msgid():
    wrong = []
    for entry in _entries():
        expected = set(_PLACEHOLDER.findall(entry.msgid)) | set(
            _PLACEHOLDER.findall(entry.msgid_plural or "")
        )
        for text in _translations(entry):
            found = set(_PLACEHOLDER.findall(text))
            if not found <= expected or (not entry.msgid_plural and found != expected):
                wrong.append(entry.msgid)
    assert wrong == []


def test_the_compiled_catalogue_matches_the_source():
    source = {(entry.msgctxt, entry.msgid): _translations(entry) for entry in _entries()}
    compiled = {
        (entry.msgctxt, entry.msgid): _translations(entry)
        for entry in polib.mofile(str(COMPILED))
        if entry.msgid
    }
    stale = sorted(key[1] for key, value in source.items() if compiled.get(key) != value)
    assert stale == [], f"run compilemessages: {stale[:10]}"


def _unmarked_text(path: Path) -> list[str]:
    text = _COMMENT.sub(" ", path.read_text(encoding="utf-8"))
    text = _BLOCK_TRANSLATE.sub(" ", text)
    attributes = [value for value in _TEXT_ATTRIBUTES.findall(text)]
    text = _DJANGO_MARKUP.sub(" ", text)
    if path.suffix == ".html":
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r"&[#\w]+;", " ", text)
    # Identifiers such as client_id are names of the protocol, not prose.
    text = re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", " ", text)
    found = _WORD.findall(text)
    for value in attributes:
        found += _WORD.findall(_DJANGO_MARKUP.sub(" ", value))
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in TEMPLATES.rglob("*") if p.suffix in {".html", ".txt"}),
    ids=lambda p: str(p.relative_to(TEMPLATES)),
)
def test_template_text_is_marked_for_translation(path):
    assert _unmarked_text(path) == []


def test_the_template_check_finds_unmarked_text(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        '{% load i18n %}<h1>{% translate "Fine" %}</h1><p>Not marked</p>'
        '<img alt="A picture" src="x.png"><p>client_id: 12</p>'
    )
    assert _unmarked_text(page) == ["Not", "marked", "picture"]
