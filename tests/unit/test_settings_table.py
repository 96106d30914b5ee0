"""The settings table: one row per `Settings` field, and what is read, refused and documented
follows from it."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from starlette.datastructures import Secret

from broker.errors import SettingsError
from broker.settings import SETTINGS_TABLE, Setting, Settings, load_settings

ROOT = Path(__file__).parents[2]
# The one setting `.env.example` leaves blank for the guide to fill in: its default is the
# development key, which `broker serve` refuses.
FILLED_IN_BY_THE_GUIDE = {"BROKER_SECRET_KEYS": "k" * 40}
BOUNDED = [row for row in SETTINGS_TABLE if row.bounds() is not None]
INCLUSIVELY_BOUNDED = [row for row in BOUNDED if row.above is None]
# Setting-shaped names; a glob such as `BROKER_JWT_*` names a family, not a setting.
SETTING_NAME = re.compile(r"\b((?:BROKER|GLADIA|REDIS)_[A-Z0-9_]+|LOG_LEVEL)\b(?!\*)")


def comparable(value: object) -> object:
    """A secret as its text (`Secret` has no equality), inside tuples too."""
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, tuple):
        return tuple(comparable(item) for item in value)
    return value


def as_dict(settings: Settings) -> dict[str, object]:
    return {item.name: comparable(getattr(settings, item.name)) for item in fields(settings)}


def outside(row: Setting) -> float:
    """A value just outside the row's bounds."""
    if row.minimum is not None:
        return row.minimum - 1
    if row.maximum is not None:
        return row.maximum + 1
    assert row.above is not None
    return row.above


def test_every_field_of_settings_is_one_row_of_the_table() -> None:
    assert [row.attribute for row in SETTINGS_TABLE] == [item.name for item in fields(Settings)]
    names = [row.env_name for row in SETTINGS_TABLE]
    assert len(names) == len(set(names)), "two fields read the same variable"


def test_every_row_has_a_one_line_doc() -> None:
    for row in SETTINGS_TABLE:
        assert row.doc.strip() and "\n" not in row.doc, row.env_name


def test_nothing_configured_gives_every_rows_default() -> None:
    defaults = {row.attribute: comparable(row.default) for row in SETTINGS_TABLE}
    assert as_dict(load_settings(environ={}, env_file=None)) == defaults
    assert as_dict(Settings()) == defaults


def test_the_example_file_gives_every_setting_its_default() -> None:
    from_example = load_settings(environ=FILLED_IN_BY_THE_GUIDE, env_file=ROOT / ".env.example")
    expected = {**as_dict(Settings()), "secret_keys": ("k" * 40,)}
    assert as_dict(from_example) == expected


@pytest.mark.parametrize("row", BOUNDED, ids=[row.env_name for row in BOUNDED])
def test_a_value_outside_its_bounds_is_refused_by_name(row: Setting) -> None:
    value = outside(row)
    text = str(int(value)) if isinstance(row.default, int) else str(value)
    with pytest.raises(SettingsError, match=re.escape(f"{row.env_name} must be {row.bounds()}")):
        load_settings(environ={row.env_name: text}, env_file=None)


@pytest.mark.parametrize(
    "row", INCLUSIVELY_BOUNDED, ids=[row.env_name for row in INCLUSIVELY_BOUNDED]
)
def test_a_value_on_its_inclusive_bounds_is_accepted(row: Setting) -> None:
    for bound in (row.minimum, row.maximum):
        if bound is not None:
            settings = load_settings(environ={row.env_name: str(bound)}, env_file=None)
            assert getattr(settings, row.attribute) == bound


def test_the_readme_and_docs_name_only_settings_the_broker_has() -> None:
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    mentioned = set(SETTING_NAME.findall("\n".join(path.read_text() for path in docs)))
    assert mentioned, "the README and docs name no setting at all"
    # Former names appear in the table of renames (docs/operations.md), and there only.
    former = {row.former.env_name for row in SETTINGS_TABLE if row.former is not None}
    assert mentioned - {row.env_name for row in SETTINGS_TABLE} - former == set()
    operations = ROOT / "docs" / "operations.md"
    for name in former:
        assert f"| `{name}`" in operations.read_text(), f"{name}'s rename is not documented"
    for path in [*docs, ROOT / ".env.example"]:
        if path != operations:
            named = set(SETTING_NAME.findall(path.read_text()))
            assert named & former == set(), f"{path.name} still names a former setting"
