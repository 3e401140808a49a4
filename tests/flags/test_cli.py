"""``commerce flags list`` and ``commerce flags eval``, and a flags file that stops a start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commerce.entrypoints.cli import main
from tests.flags.conftest import Write

ROOT = Path(__file__).resolve().parents[2]

RULES = """\
    flags:
      as-of-reads:
        tenants:
          allow: [acme]
          deny: [globex]
        roles:
          allow: [admin]
        rollout: 25
      counted-sets: off
      retired-flag: on
    """


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("COMMERCE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "memory://")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def configured(write: Write, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write(RULES)
    monkeypatch.setenv("COMMERCE_FLAGS_FILE", str(path))
    return path


def test_flags_list_shows_each_flag_its_default_and_its_rules(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, "flags", "list")
    assert status == 0
    assert out.splitlines()[0] == f"rules from: file {configured}"
    assert "as-of-reads  default on (built-in)" in out
    assert (
        "  rules, the first that matches decides:\n"
        "    tenants.deny: globex -> off\n"
        "    tenants.allow: acme -> on\n"
        "    roles.allow: admin -> on\n"
        "    rollout: 25% of tenants -> on, the others off\n"
    ) in out
    assert "counted-sets  default off (file)\n" in out
    assert out.rstrip().endswith("unknown to this version, ignored: retired-flag")


def test_flags_list_without_a_file_lists_the_built_in_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = _run(capsys, "flags", "list", "--json")
    assert status == 0
    document = json.loads(out)
    assert document["source"] == "no file"
    assert [(f["flag"], f["default"], f["rules"]) for f in document["flags"]] == [
        ("as-of-reads", True, []),
        ("counted-sets", True, []),
    ]
    assert all(f["description"] for f in document["flags"])


def test_flags_list_shows_an_environment_override_first(
    configured: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMERCE_FLAG_AS_OF_READS", "off")
    _, out, _ = _run(capsys, "flags", "list", "--json")
    [as_of] = [f for f in json.loads(out)["flags"] if f["flag"] == "as-of-reads"]
    assert as_of["rules"][0] == "environment: COMMERCE_FLAG_AS_OF_READS=off -> off for all"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ("--tenant", "globex", "--role", "admin"),
            "as-of-reads: off for tenant globex, role admin\n"
            "  reason: TARGETING_MATCH\n"
            "  rule:   tenants.deny\n"
            "  why:    tenant globex is denied\n",
        ),
        (
            ("--tenant", "initech", "--role", "admin"),
            "as-of-reads: on for tenant initech, role admin\n"
            "  reason: TARGETING_MATCH\n"
            "  rule:   roles.allow\n"
            "  why:    role admin is allowed\n",
        ),
    ],
)
def test_flags_eval_explains_which_rule_decided(
    configured: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: str
) -> None:
    status, out, _ = _run(capsys, "flags", "eval", "as-of-reads", *argv)
    assert (status, out) == (0, expected)


def test_flags_eval_of_a_rollout_names_the_bucket_and_never_changes(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("flags", "eval", "as-of-reads", "--tenant", "initech", "--json")
    answers = [json.loads(_run(capsys, *argv)[1]) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert (answers[0]["reason"], answers[0]["rule"]) == ("SPLIT", "rollout")
    assert "bucket" in answers[0]["detail"]
    assert answers[0]["tenant"] == "initech"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("eval", "nope", "--tenant", "acme"), "unknown flag 'nope'; the flags are: as-of-reads"),
        (("eval", "as-of-reads", "--tenant", "Not A Tenant"), "tenant:"),
    ],
)
def test_flags_eval_refuses_in_one_line(
    configured: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], words: str
) -> None:
    status, out, err = _run(capsys, "flags", *argv)
    assert (status, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("commerce: error: ")
    assert words in line


def test_a_bad_flags_file_is_one_line_and_exit_2_for_every_verb(
    write: Write, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write("flags:\n  as-of-reads:\n    rollout: lots\n")
    monkeypatch.setenv("COMMERCE_FLAGS_FILE", str(path))
    status, _, err = _run(capsys, "flags", "list")
    assert status == 2
    assert err.splitlines() == [
        f"commerce: error: COMMERCE_FLAGS_FILE {path}: flags.as-of-reads.rollout: must be a "
        "percentage from 0 to 100, not 'lots'"
    ]


def test_serve_with_a_bad_flags_file_stops_before_listening_in_one_line(write: Write) -> None:
    path = write("flags:\n  as-of-reads: {tenants: {allow: acme}}\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COMMERCE_")},
        "COMMERCE_DATABASE_URL": "memory://",
        "COMMERCE_AUTH": "none",
        "COMMERCE_FLAGS_FILE": str(path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "commerce.entrypoints.cli", "serve", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"commerce: error: COMMERCE_FLAGS_FILE {path}: flags.as-of-reads.tenants.allow: "
        "must be a list"
    ]
