"""Whazzat's branding of the chat UI: Chainlit's config points at files that exist in ``public/``, they are
Whazzat's (no Chainlit logo, no Google Fonts), and an installed package gets them too. The browser tests
(tests/test_ui_browser.py) check that a real page shows them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent.cli import ui as cli

ROOT = cli.APP_ROOT
PUBLIC = ROOT / "public"


def load_toml(path: Path) -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading TOML needs Python 3.11+")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def ui_config() -> dict:
    return load_toml(ROOT / ".chainlit" / "config.toml")["UI"]


def public_file(url: str) -> Path:
    assert url.startswith("/public/"), url
    return PUBLIC / url.removeprefix("/public/")


def test_the_config_names_whazzat_and_its_files_exist() -> None:
    config = ui_config()
    assert config["name"] == "Whazzat"
    assert not config["logo_file_url"]  # Chainlit's /logo then serves public/logo_<theme>.svg
    for key in ("custom_css", "custom_js", "custom_meta_image_url"):
        assert public_file(config[key]).is_file(), key
    does, never = config["description"].split("\n")  # the landing page's two lines
    assert "product types" in does and "Amazon" in does
    assert "never buys" in never and "no API key" in never


@pytest.mark.parametrize("name", ["logo_light.svg", "logo_dark.svg", "favicon.svg"])
def test_the_logo_and_favicon_are_whazzats_svgs(name: str) -> None:
    text = (PUBLIC / name).read_text(encoding="utf-8")
    root = ET.fromstring(text)
    assert root.tag.endswith("svg") and root.get("aria-label") == "Whazzat"
    assert "chainlit" not in text.casefold()


def test_the_theme_has_both_variants_and_loads_no_web_font() -> None:
    theme = json.loads((PUBLIC / "theme.json").read_text(encoding="utf-8"))
    assert theme["custom_fonts"] == []  # replaces Chainlit's Google Fonts link: the page stays local
    for variant in ("light", "dark"):
        assert theme["variables"][variant]["--primary"]


def test_the_starters_icons_exist() -> None:
    pytest.importorskip("chainlit", reason="the UI needs chainlit: pip install 'chainlit>=2.10.1'")
    from agent.ui import handlers

    starters = handlers.starters()
    assert len(starters) >= 3
    for starter in starters:
        assert starter.icon and public_file(starter.icon).is_file()


def test_the_welcome_page_says_what_whazzat_does_and_never_does() -> None:
    text = (ROOT / "chainlit.md").read_text(encoding="utf-8")
    head = text.split("It shows its work")[0]
    assert "product types" in head and "never buys anything" in head and "no API key" in head


def test_an_install_without_a_checkout_gets_the_public_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "APP_ROOT", tmp_path / "site-packages")  # no checkout: copy the package data
    public = cli.app_root(tmp_path / "home") / "public"
    for path in PUBLIC.rglob("*"):
        if path.is_file():
            assert (public / path.relative_to(PUBLIC)).read_bytes() == path.read_bytes(), path
    # A deployer's own logo stays; the cards element is code and follows the installed version.
    (public / "logo_light.svg").write_text("<svg>my brand</svg>", encoding="utf-8")
    element = public / "elements" / "WhazzatCards.jsx"
    element.write_text("// stale", encoding="utf-8")
    cli.app_root(tmp_path / "home")
    assert (public / "logo_light.svg").read_text(encoding="utf-8") == "<svg>my brand</svg>"
    assert element.read_bytes() == (PUBLIC / "elements" / "WhazzatCards.jsx").read_bytes()


def test_the_package_data_includes_the_public_files() -> None:
    pyproject = load_toml(ROOT / "pyproject.toml")
    patterns = pyproject["tool"]["setuptools"]["package-data"]["agent"]
    assert "ui/app_files/public/**/*" in patterns
    assert (ROOT / "agent" / "ui" / "app_files" / "public").resolve() == PUBLIC.resolve()
