"""docs/measurements.md is written by scripts/record_measurements.py from the outputs it reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("record_measurements", ROOT / "scripts" / "record_measurements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entries_come_from_the_outputs_newest_first(tmp_path):
    script = _script()
    log = tmp_path / "suite.log"
    log.write_text("....\n===== 700 passed, 60 xfailed, 180 skipped in 250.50s (0:04:10) =====\n")
    claims = tmp_path / "claims"
    claims.mkdir()
    pd.DataFrame(
        [
            {"claim": "a", "control": "", "outcome": "held", "n_images": 32},
            {"claim": "b", "control": "", "outcome": "vacuous", "n_images": 32},
            {"claim": "c", "control": "oracle", "outcome": "held", "n_images": 32},
        ]
    ).to_csv(claims / "verdicts.csv", index=False)
    out = tmp_path / "measurements.md"
    args = ["--suite-log", str(log), "--claims-verdicts", str(claims / "verdicts.csv"), "--out", str(out)]
    script.main([*args, "--note", "note-one"])
    script.main([*args, "--note", "note-two"])
    text = out.read_text()
    assert text.startswith(script.HEADER) and text.count("## ") == 2
    assert text.index("note-two") < text.index("note-one")  # newest first
    assert "250.5 s in pytest; 700 passed, 60 xfailed, 180 skipped" in text
    assert "1 held" in text and "oracle holds 1 of 1 decidable claims" in text


def test_a_log_without_a_closing_line_is_refused(tmp_path):
    log = tmp_path / "suite.log"
    log.write_text("no summary here\n")
    with pytest.raises(SystemExit, match="no pytest closing line"):
        _script().main(["--suite-log", str(log), "--out", str(tmp_path / "m.md")])
