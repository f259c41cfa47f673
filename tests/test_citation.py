"""The project is citable: CITATION.cff is valid CFF 1.2.0, and .zenodo.json and README's BibTeX cite the same works."""

import json
import re
from pathlib import Path
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[1]


def _cff():
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_citation_cff_is_valid_cff_1_2():
    schema = json.loads((ROOT / "tests" / "data" / "citation-file-format-1.2.0.schema.json").read_text())
    errors = sorted(Draft7Validator(schema).iter_errors(_cff()), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_zenodo_and_bibtex_cite_what_citation_cff_cites():
    dois = {r["doi"] for r in _cff()["references"] if r.get("doi")}
    z = json.loads((ROOT / ".zenodo.json").read_text())
    assert z["upload_type"] == "software" and z["license"] == _cff()["license"] and z["creators"]
    assert {r["identifier"] for r in z["related_identifiers"]} == dois
    readme = (ROOT / "README.md").read_text()
    bib = re.search(r"```bibtex\n(.*?)```", readme, re.S).group(1)
    assert bib.count("{") == bib.count("}") and bib.count("@") == 1 + len(_cff()["references"])
    assert set(re.findall(r"doi\s*=\s*\{([^}]+)\}", bib)) == dois
