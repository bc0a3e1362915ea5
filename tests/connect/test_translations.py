"""Every sentence the modal shows exists in the seven other languages: the .po files have a
translation for each message (no empty msgstr, nothing fuzzy, the same placeholders), the
committed .mo files say the same, and each language is really served."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from connect.messages import MESSAGES, say

LOCALE = Path(settings.BASE_DIR) / "locale"
LANGUAGES = ["fr", "de", "es", "pt", "it", "ja", "nl"]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_]+\}")


def parse_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgid, msgid_plural, msgstr(s) and flags."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict = {"flags": set(), "msgstr": {}}
        key = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
                continue
            if line.startswith("#") or not line.strip():
                continue
            match = re.match(r"^(msgid_plural|msgid|msgstr(?:\[(\d+)\])?) (\".*\")$", line)
            if match:
                key = match.group(1)
                text = match.group(3)
            else:
                text = line
            value = text[1:-1].encode().decode("unicode_escape").encode("latin-1").decode()
            if key.startswith("msgstr"):
                index = key[7:-1] if "[" in key else "0"
                entry["msgstr"][index] = entry["msgstr"].get(index, "") + value
            else:
                entry[key] = entry.get(key, "") + value
        if entry.get("msgid"):
            entries.append(entry)
    return entries


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_has_a_real_translation(language):
    path = LOCALE / language / "LC_MESSAGES" / "django.po"
    entries = parse_po(path)
    assert len(entries) > 100
    problems = []
    for entry in entries:
        if "fuzzy" in entry["flags"]:
            problems.append(f"fuzzy: {entry['msgid']!r}")
        for index, text in entry["msgstr"].items():
            if not text.strip():
                problems.append(f"empty msgstr[{index}]: {entry['msgid']!r}")
            wanted = set(PLACEHOLDER.findall(entry.get("msgid_plural") or entry["msgid"]))
            if set(PLACEHOLDER.findall(text)) - wanted or (
                set(PLACEHOLDER.findall(entry["msgid"])) - {"%(counter)s", "%d"}
            ) - set(PLACEHOLDER.findall(text)):
                problems.append(f"placeholders differ: {entry['msgid']!r} -> {text!r}")
    assert problems == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_modal_message_is_in_the_catalog_and_the_compiled_file_matches(language):
    po = {
        entry["msgid"]: entry for entry in parse_po(LOCALE / language / "LC_MESSAGES" / "django.po")
    }
    missing = [str(text) for text in MESSAGES.values() if str(text) not in po]
    assert missing == [], "run makemessages and translate"
    with open(LOCALE / language / "LC_MESSAGES" / "django.mo", "rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = [
        msgid
        for msgid, entry in po.items()
        if "msgid_plural" not in entry and compiled.gettext(msgid) != entry["msgstr"]["0"]
    ]
    assert stale == [], "the .mo is older than the .po: run msgfmt (see locale/README.md)"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", "Votre compte HubSpot ada@example.com est connecté."),
        ("de", "Ihr HubSpot-Konto ada@example.com ist verbunden."),
        ("ja", "HubSpot アカウント ada@example.com を接続しました。"),
    ],
)
def test_django_serves_each_language(language, expected):
    with translation.override(language):
        assert say("connected", app="HubSpot", account="ada@example.com") == expected
