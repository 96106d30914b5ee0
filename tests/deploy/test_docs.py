"""The docs' shell commands stay true: each one is run here, or by the test it is mapped to.

Every line of a ```sh, ```bash or ```console block in README.md, docs/*.md and deploy/README.md
is looked up in `COMMANDS`. A command this file runs names the test here that runs it; one that
needs what a test machine lacks (a Docker daemon, a Kubernetes cluster) or runs for minutes names
the existing test that exercises it, and the files that show it does. A command in no entry
fails the suite until someone adds it, with the test that keeps it true.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.identity.credentials import Subject, TokenService
from broker.settings import load_settings
from tests.support.dev_broker import CLEAN_ENV, running_dev_broker
from tests.support.required import missing

ROOT = Path(__file__).parents[2]
THIS = Path(__file__).relative_to(ROOT).as_posix()
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
SHELL_FENCES = {"sh", "bash", "console"}
README_MAX_LINES = 200
# The venv's `broker` and `python3` come first, as for someone who ran `make run`.
SHELL_ENV = {
    **CLEAN_ENV,
    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
}


@dataclass(frozen=True)
class Exercised:
    """How the commands matching `pattern` (their words joined by spaces) are kept true."""

    pattern: str
    # `tests/deploy/test_docs.py::test_…` when run here; otherwise the test file that runs them.
    by: str
    # (file, text) pairs showing that `by` really exercises the command.
    evidence: tuple[tuple[str, str], ...] = ()
    note: str = ""


def here(test: str) -> str:
    return f"{THIS}::{test}"


def readable(pattern: str) -> str:
    return re.sub(r"[\\$()?^]|\.\*", "", pattern).replace("|", " or ").strip()


COMMANDS = (
    Exercised(
        r"make run$",
        "tests/broker/test_cli.py",
        (
            ("Makefile", "$(BIN)/broker dev"),
            ("tests/support/dev_broker.py", '"dev", "--port"'),
            ("tests/broker/test_cli.py", "running_dev_broker()"),
        ),
        "the recipe is `broker dev`, which test_cli.py's dev_broker fixture starts and drives",
    ),
    Exercised(
        r"make test$",
        ".ci/run",
        ((".ci/run", "\nmake test\n"), ("Makefile", "$(BIN)/pytest")),
        "CI itself: .ci/run installs the tools and runs exactly `make test`",
    ),
    Exercised(
        r"make bench$",
        "tests/bench/test_harness.py",
        (
            ("Makefile", "$(BIN)/python -m tests.bench"),
            ("tests/bench/__main__.py", "from tests.bench.harness import"),
            ("tests/bench/test_harness.py", "from tests.bench.harness import"),
        ),
        "`python -m tests.bench`'s harness, every row for one second (the full run is 6 minutes)",
    ),
    Exercised(
        r"python -m tests\.bench\.compare --against \S+$",
        "tests/bench/test_compare.py",
        (("tests/bench/test_compare.py", "from tests.bench.compare import compare"),),
        "the comparison for one second, the tree against itself, and a ref's worktree",
    ),
    Exercised(
        r"python -m tests\.bench\.instructions --against \S+$",
        "tests/bench/test_instructions.py",
        (("tests/bench/test_instructions.py", "from tests.bench.instructions import count"),),
        "both scenarios counted for 20 requests, twice, the counts agreeing",
    ),
    Exercised(
        r"(curl -s .*localhost:8000/|SESSION=\$\(curl -s .*localhost:8000/"
        r"|echo \$SESSION$|ID=\$\(echo \$SESSION \| python3 )",
        here("test_the_quick_starts_calls_answer_as_documented"),
    ),
    Exercised(r"broker --help$", here("test_broker_help_lists_every_command")),
    Exercised(
        r"broker token mint --sub \S+( --ttl \d+)?$",
        here("test_token_mint_prints_a_token_the_broker_accepts"),
    ),
    Exercised(
        r"broker relay dead-letters( --limit \d+)?$",
        "tests/broker/events/test_relay_dead_letters.py",
        (("tests/broker/events/test_relay_dead_letters.py", '"relay", "dead-letters"'),),
        "needs letters in a real Redis: that test makes one, lists it and replays it",
    ),
    Exercised(
        r"cp \.env\.example deploy/broker\.env$",
        here("test_the_settings_file_is_copied_where_the_deploy_guide_says"),
    ),
    Exercised(
        r"docker compose -f deploy/compose\.yaml ",
        "tests/deploy/test_deploy_files.py",
        (("tests/deploy/test_deploy_files.py", '"compose.yaml"'),),
        "needs a Docker daemon: the test holds compose.yaml's services, healthchecks and settings",
    ),
    Exercised(
        r"curl -s .*localhost:8080/",
        "tests/broker/test_gateway.py",
        (
            ("tests/broker/test_gateway.py", '"/healthz"'),
            ("tests/broker/test_gateway.py", '"/metrics"'),
        ),
        "compose's gateway; the test runs its nginx config in front of two `broker serve`",
    ),
    Exercised(
        r"kubectl -n gladia-broker create secret generic broker-secrets ",
        "tests/deploy/test_deploy_files.py",
        (("tests/deploy/test_deploy_files.py", '{"secretRef": {"name": "broker-secrets"}}'),),
        "needs a cluster: the test checks that the Deployment reads this Secret",
    ),
    Exercised(
        r"kubectl ",
        "tests/deploy/test_kubernetes_build.py",
        (
            ("tests/deploy/test_kubernetes_build.py", '"kustomize"'),
            ("tests/deploy/test_kubernetes_build.py", 'NAMESPACE = "gladia-broker"'),
        ),
        "needs a cluster: the test builds what `apply -k` sends, every object in the namespace,"
        " and validates it against the API's schemas",
    ),
)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    block: Block
    line: int
    # As written, continuation lines included (a `$ ` prompt dropped).
    text: str
    words: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.block.doc}:{self.line}"


def shell_blocks(path: Path) -> Iterator[tuple[str, Block]]:
    """Each fenced block of `path` whose language is a shell, with that language."""
    fence: tuple[str, int, list[str]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if fence is None and line.startswith("```"):
            fence = (line[3:].strip(), number + 1, [])
        elif fence is not None and line.startswith("```"):
            language, start, body = fence
            if language in SHELL_FENCES:
                yield language, Block(path.relative_to(ROOT).as_posix(), start, tuple(body))
            fence = None
        elif fence is not None:
            fence[2].append(line)


def commands_of(language: str, block: Block) -> Iterator[Command]:
    """The block's commands: a line, with the lines a trailing `\\` or an open quote joins."""
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.lines):
        line = raw
        if not pending:
            start = block.line + offset
            if language == "console":
                if not raw.startswith("$ "):
                    continue  # the console's output
                line = raw[2:]
        pending.append(line)
        text = "\n".join(pending)
        if text.endswith("\\"):
            continue
        try:
            words = shlex.split(text, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        pending = []
        if words:
            yield Command(block, start, text, tuple(words))
    assert not pending, f"{block.doc}:{start}: a command that never ends"


def doc_commands() -> list[Command]:
    return [
        command
        for path in DOCS
        for language, block in shell_blocks(path)
        for command in commands_of(language, block)
    ]


def entry_of(command: Command) -> Exercised | None:
    joined = " ".join(command.words)
    return next((entry for entry in COMMANDS if re.match(entry.pattern, joined)), None)


def exercised_by(test: str) -> list[Command]:
    """The docs' commands that the test `test` of this file runs."""
    found = [
        command
        for command in doc_commands()
        if (entry := entry_of(command)) and entry.by == here(test)
    ]
    assert found, f"no command of the docs is left for {test}"
    return found


def run_shell(
    script: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-eu", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**SHELL_ENV, **(env or {})},
    )


# --- the registry ------------------------------------------------------------------------------


def test_every_shell_command_of_the_docs_is_exercised_by_a_test() -> None:
    unknown = [
        f"{command.where}: {command.text}"
        for command in doc_commands()
        if entry_of(command) is None
    ]
    assert not unknown, (
        "commands in the docs that no test runs; add each to COMMANDS in "
        f"{THIS}, with the test that keeps it true:\n" + "\n".join(unknown)
    )


def test_every_entry_of_the_registry_still_has_a_command_in_the_docs() -> None:
    used = {entry_of(command) for command in doc_commands()}
    stale = [entry.pattern for entry in COMMANDS if entry not in used]
    assert not stale, f"entries of COMMANDS that match no command of the docs: {stale}"


@pytest.mark.parametrize("entry", COMMANDS, ids=[readable(entry.pattern) for entry in COMMANDS])
def test_each_entry_names_a_test_that_really_exercises_its_commands(entry: Exercised) -> None:
    if entry.by.startswith(f"{THIS}::"):
        assert entry.by.removeprefix(f"{THIS}::") in globals(), entry.by
        assert not entry.evidence, "a command run here needs no other evidence"
        return
    assert (ROOT / entry.by).is_file(), entry.by
    assert entry.evidence and entry.note, "a mapped command says why, and shows where it is run"
    for path, text in entry.evidence:
        assert text in (ROOT / path).read_text(), f"{path} no longer holds {text!r}"


# --- the docs themselves -----------------------------------------------------------------------


def test_the_readme_stays_a_five_minute_read() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < README_MAX_LINES, "move the details to docs/ and link them"


@pytest.mark.parametrize("path", sorted((ROOT / "docs").glob("*.md")), ids=lambda path: path.name)
def test_each_doc_says_what_it_covers_in_one_line_under_its_title(path: Path) -> None:
    title, blank, summary, after = path.read_text().splitlines()[:4]
    assert title.startswith("# ") and blank == "" and after == "", path.name
    assert summary and not summary.startswith(("#", "-", "|", "```")), path.name


def without_code(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of `path`."""
    found = set()
    for line in without_code(path.read_text()).splitlines():
        if heading := re.match(r"#+ (.*)", line):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            found.add(slug)
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_link_between_the_docs_leads_somewhere(path: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{path.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{path.name}: {target} has no such heading"


# --- the commands run here ---------------------------------------------------------------------


@pytest.fixture
def dev_broker() -> Iterator[tuple[int, str]]:
    """`broker dev` as `make run` starts it, on a free port; its port and the banner's exports."""
    with running_dev_broker() as broker:
        yield broker.port, "\n".join(broker.exports)


def documented_answers(block: Block) -> list[tuple[int, str]]:
    """The block's `# → STATUS body` comments, a body's continuation comment lines joined."""
    answers: list[tuple[int, str]] = []
    continuing = False
    for line in block.lines:
        if answer := re.match(r"# → (\d{3})\b(.*)", line):
            answers.append((int(answer.group(1)), answer.group(2)))
            continuing = True
        elif continuing and re.match(r"#\s{2,}", line):
            status, body = answers[-1]
            answers[-1] = (status, body + line[1:])
        else:
            continuing = False
    return answers


def json_documents(text: str) -> list[Any]:
    """The JSON documents printed one after another (curl adds no newline)."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while rest := text[position:].lstrip():
        document, end = decoder.raw_decode(rest)
        documents.append(document)
        position = len(text) - len(rest) + end
    return documents


def pairs(document: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of a JSON document, nested ones too."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield key, value
            yield from pairs(value)
    elif isinstance(document, list):
        for item in document:
            yield from pairs(item)


def assert_answer_matches(documented: str, actual: Any) -> None:
    """Each key the doc shows is there; each value it spells out (not `…`) is that value."""
    found = list(pairs(actual))
    keys = {key for key, _ in found}
    for key in re.findall(r'"(\w+)":', documented):
        assert key in keys, (key, actual)
    for key, literal in re.findall(r'"(\w+)": ("[^"…]*"|true|false|null)[,}]', documented):
        assert (key, json.loads(literal)) in found, (key, literal, actual)


def test_the_quick_starts_calls_answer_as_documented(dev_broker: tuple[int, str]) -> None:
    """The README's calls, exactly as written, in a shell that ran the exports `make run` printed.

    `broker dev` runs on a free port rather than 8000 (the suite runs in parallel with other
    things), so `localhost:8000` is that port; curl also reports each status on stderr.
    """
    if shutil.which("curl") is None:
        missing("curl is not installed")
    port, exports = dev_broker
    blocks: dict[Block, list[Command]] = {}
    for command in exercised_by("test_the_quick_starts_calls_answer_as_documented"):
        blocks.setdefault(command.block, []).append(command)
    for block, commands in blocks.items():
        documented = documented_answers(block)
        assert documented, f"{block.doc}:{block.line}: say what each call answers (# → 201 …)"
        calls = "\n".join(command.text for command in commands)
        script = "\n".join([
            exports,
            """curl() { command curl --write-out '%{stderr}%{http_code}\\n' "$@"; }""",
            calls.replace("localhost:8000", f"127.0.0.1:{port}"),
        ])  # fmt: skip
        ran = run_shell(script)
        assert ran.returncode == 0, ran.stderr
        statuses = [int(line) for line in ran.stderr.split() if re.fullmatch(r"\d{3}", line)]
        assert statuses == [status for status, _ in documented], (block.doc, block.line, ran.stderr)
        answers = json_documents(ran.stdout)
        assert len(answers) == len(documented), ran.stdout
        for (_, body), answer in zip(documented, answers, strict=True):
            assert_answer_matches(body, answer)


def test_broker_help_lists_every_command() -> None:
    for command in exercised_by("test_broker_help_lists_every_command"):
        ran = run_shell(command.text)
        assert ran.returncode == 0, (command.where, ran.stderr)
        for name in ("serve", "dev", "token", "relay", "simulator"):
            assert name in ran.stdout, (command.where, name)


def test_token_mint_prints_a_token_the_broker_accepts() -> None:
    keys = {"BROKER_SECRET_KEYS": "d" * 40}
    settings = load_settings(environ=keys, env_file=None)
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    for command in exercised_by("test_token_mint_prints_a_token_the_broker_accepts"):
        ran = run_shell(command.text, env=keys)
        assert ran.returncode == 0, (command.where, ran.stderr)
        subject = command.words[command.words.index("--sub") + 1]
        assert tokens.verify(ran.stdout.strip()) == Subject(subject), command.where


def test_the_settings_file_is_copied_where_the_deploy_guide_says(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    (tmp_path / "deploy").mkdir()
    for command in exercised_by("test_the_settings_file_is_copied_where_the_deploy_guide_says"):
        ran = run_shell(command.text, cwd=tmp_path)
        assert ran.returncode == 0, (command.where, ran.stderr)
        copied = (tmp_path / "deploy" / "broker.env").read_text()
        assert copied == (ROOT / ".env.example").read_text()
