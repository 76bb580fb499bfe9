"""The first install prints no setuptools deprecation: the licence is an SPDX expression (the
table form and licence classifiers each made setuptools >= 77 warn, three times per install)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_is_an_spdx_string_and_no_classifier_repeats_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str) and project["license"] == "MIT"
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    assert (ROOT / "LICENSE").exists() or "license-files" not in project
