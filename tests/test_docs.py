"""Every code block of README.md and docs/*.md: Python blocks run as pasted, shell blocks are checked.

A Python block must carry its own setup (models, images, denoiser), so it runs in a fresh namespace.
A shell block's commands cannot all run here (they create a venv and install from a registry), so
each command is checked against what it names: `fvit-bench` arguments parse, pip extras exist in
pyproject.toml, pytest paths and markers exist. A block in a language this test does not know fails
the test, so a new kind of block gets a check before it lands.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
NOT_CODE = {"", "text"}  # plain fences: layouts and listings, not commands


def blocks(kind: str) -> list[tuple[str, str]]:
    """(id, source) of every fenced block of `kind` ('python' or 'shell') in the documents."""
    found = []
    for doc in DOCUMENTS:
        for match in FENCE.finditer(doc.read_text()):
            lang = match.group(1)
            lang = "shell" if lang in ("bash", "sh", "shell", "console") else lang
            if lang == kind:
                line = doc.read_text()[: match.start()].count("\n") + 1
                found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def test_every_block_is_of_a_checked_kind():
    for doc in DOCUMENTS:
        for match in FENCE.finditer(doc.read_text()):
            lang = match.group(1)
            assert lang in {"python", "bash", "sh", "shell", "console"} | NOT_CODE, (
                f"{doc.name}: a ```{lang} block has no check in tests/test_docs.py"
            )
    assert blocks("python") and blocks("shell")


@pytest.mark.parametrize(("where", "source"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_block_runs_as_pasted(where, source, monkeypatch, capsys):
    from harness.explainers import registry

    registry.names()  # load the built-ins, then let the block register into a copy
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    namespace: dict = {"__name__": "__docs__"}
    exec(compile(source, where, "exec"), namespace)  # the documentation's own code: any error fails the test


def _check_command(words: list[str], where: str) -> None:
    from harness.cli import build_parser

    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # leading VAR=value settings
        words = words[1:]
    program, args = Path(words[0]).name, words[1:]
    if program == "fvit-bench" or words[:3] == ["python", "-m", "harness.cli"]:
        args = args if program == "fvit-bench" else words[3:]
        try:
            build_parser().parse_args(args)
        except SystemExit as exc:
            raise AssertionError(f"{where}: `fvit-bench {' '.join(args)}` does not parse") from exc
    elif program == "pip":
        assert args[0] == "install", f"{where}: unexpected pip command {words}"
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for target in (a for a in args[1:] if not a.startswith("-")):
            assert target.startswith("."), f"{where}: pip installs {target!r}, not the project"
            for extra in re.findall(r"\[([\w,]+)\]", target)[:1]:
                missing = set(extra.split(",")) - set(extras)
                assert not missing, f"{where}: extras {missing} are not in pyproject.toml"
    elif program == "pytest":
        markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
        names = {m.split(":")[0] for m in markers}
        it = iter(args)
        for arg in it:
            if arg == "-m":
                expr = next(it)
                used = set(re.findall(r"\w+", expr)) - {"not", "and", "or"}
                assert used <= names, f"{where}: markers {used - names} are not registered"
            elif not arg.startswith("-"):
                assert (ROOT / arg.split("::")[0]).exists(), f"{where}: pytest path {arg} does not exist"
    elif program == "ruff":
        assert args[:1] in (["check"], ["format"]), f"{where}: unexpected ruff command {words}"
    elif program.startswith("python3") and args[:2] == ["-m", "venv"]:
        assert len(args) == 3, f"{where}: `python -m venv` takes one folder"
    elif program == "gpu_smoke.sh":
        from harness.cost.gpu_smoke import build_parser as smoke_parser

        try:
            smoke_parser().parse_args(args)
        except SystemExit as exc:
            raise AssertionError(f"{where}: `scripts/gpu_smoke.sh {' '.join(args)}` does not parse") from exc
    elif program == "torchrun":
        _check_command(["fvit-bench", *args[args.index("harness.cli") + 1 :]], where)
    else:
        raise AssertionError(f"{where}: no check for the command {program!r}; add one to tests/test_docs.py")


@pytest.mark.parametrize(("where", "source"), blocks("shell"), ids=[w for w, _ in blocks("shell")])
def test_shell_block_names_what_exists(where, source):
    for line in source.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for command in line.split("&&"):
            _check_command(shlex.split(command), where)


def test_the_checks_catch_a_wrong_command():
    with pytest.raises(AssertionError, match="does not parse"):
        _check_command(["fvit-bench", "run", "--no-such-option"], "x")
    with pytest.raises(AssertionError, match="extras"):
        _check_command([".venv/bin/pip", "install", "-e", ".[nope]"], "x")
    with pytest.raises(AssertionError, match="markers"):
        _check_command(["pytest", "-m", "fast"], "x")
    with pytest.raises(AssertionError, match="does not parse"):
        _check_command(["scripts/gpu_smoke.sh", "--no-such-option"], "x")


def test_every_protocol_citation_names_a_section_of_docs_protocol():
    """No file cites a PROTOCOL.md a user does not have; every cited section exists in docs/PROTOCOL.md."""
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "PROTOCOL.md").read_text(), re.M))
    assert sections >= {"1", "3", "4", "5", "6"}
    cited = 0
    for path in [
        *ROOT.glob("harness/**/*.py"),
        *ROOT.glob("tests/**/*.py"),
        *ROOT.glob("claims/*.*"),
        *ROOT.glob("*.md"),
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("benchmarks/*.py"),
    ]:
        text = path.read_text(errors="replace")
        if path.name == "test_docs.py":
            continue
        for match in re.finditer(r"([\w./-]*)PROTOCOL\.md(?: section| §)? ?(\d+)?", text):
            prefix, section = match.groups()
            where = path.relative_to(ROOT)
            assert prefix.endswith("docs/"), f"{where} cites {match.group(0)!r}: cite docs/PROTOCOL.md"
            assert section is None or section in sections, f"{where}: docs/PROTOCOL.md has no section {section}"
            cited += 1
    assert cited > 10


def test_protocol_states_the_outcome_rule_the_code_applies():
    """docs/PROTOCOL.md section 1 names the outcomes the code concludes and the function that applies its
    radius rule; the interval rule replaced the point estimate and must not be described as it."""
    from harness.claims import evaluate
    from harness.claims.registry import OUTCOMES

    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    section = text[text.index("## 1. Claims") : text.index("## 2. ")]
    assert "point estimate" not in section
    for outcome in set(OUTCOMES) - {"skipped"}:
        assert f"**{outcome}**" in section, f"PROTOCOL section 1 does not state when a claim is {outcome}"
    for name in re.findall(r"`harness\.claims\.evaluate\.(\w+)`", section):
        assert hasattr(evaluate, name), f"PROTOCOL section 1 cites harness.claims.evaluate.{name}, which is gone"
    assert "summarise_radii" in section and "Holm" in section


def test_the_ci_script_runs_the_readme_test_command():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    command = next(line for _, block in blocks("shell") for line in block.splitlines() if '.[test]"' in line)
    assert command in ci and command in readme
