"""Every CLI input a person can get wrong is one line on stderr with exit code 2, never a traceback.

The stack file's own mistakes (a YAML syntax error, a list as the document), an output path that
cannot be written, and `fetch-reference` without a network, each through `python -m homelab` as a
person runs it.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from homelab import cli, engine, reference
from tests.harness import fixture_stack_file
from tests.homelab.test_reference import FakeUpstream


def _run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    code = cli.main(list(argv), out=io.StringIO(), err=err)
    return code, err.getvalue()


def _one_line(message: str) -> str:
    assert "Traceback" not in message
    assert message.count("\n") == 1, message
    assert message.startswith("error: ")
    return message.removeprefix("error: ").rstrip("\n")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(engine, "PROJECT_ROOT", tmp_path)
    return tmp_path


def test_a_yaml_syntax_error_names_the_file_line_column_and_what_was_expected(
    project: Path,
) -> None:
    text = fixture_stack_file("homelab").read_text()
    # A key whose value is a mapping gets a stray sequence entry at the wrong indentation.
    broken = text.replace("  homelab:tls:\n", "  homelab:tls:\n    - acmeEmail\n   dns01: x\n", 1)
    (project / "Pulumi.broken.yaml").write_text(broken)
    lines = broken.splitlines()
    line_no = lines.index("   dns01: x") + 1
    code, err = _run("render", "--stack", "broken", "--out", str(project / "out"))
    assert code == 2
    line = _one_line(err)
    # Both places: where the mapping the stray line breaks started, and the stray line itself.
    assert line.startswith(
        f"{project / 'Pulumi.broken.yaml'}: expected <block end>, but found "
        f"'<block mapping start>' at line {line_no}, column 4, while parsing a block mapping "
        "that starts at line "
    )


def test_an_unclosed_quote_names_the_line_it_starts_on_not_only_the_end_of_the_file(
    project: Path,
) -> None:
    # The closing quote forgotten on the last value: PyYAML reads on to the end of the file
    # before it complains, so the line where it noticed is not where the mistake is.
    text = (
        'config:\n  homelab:domain: sarma.love\n  homelab:tls:\n    acmeEmail: "admin@sarma.love\n'
    )
    text += "".join(f"  # line {n}\n" for n in range(5, 48))
    (project / "Pulumi.quoted.yaml").write_text(text)
    code, err = _run("render", "--stack", "quoted", "--out", str(project / "out"))
    assert code == 2
    line = _one_line(err)
    assert line == (
        f"{project / 'Pulumi.quoted.yaml'}: found unexpected end of stream at line 48, "
        "column 1, while scanning a quoted scalar that starts at line 4, column 16; fix the YAML "
        "between those two places (an unclosed quote or bracket, or an indentation, often)"
    )


def test_a_list_as_the_document_is_one_line(project: Path) -> None:
    (project / "Pulumi.listed.yaml").write_text("- config:\n    homelab:domain: sarma.love\n")
    code, err = _run("render", "--stack", "listed")
    assert code == 2
    assert "the document is a list, not a mapping" in _one_line(err)


def test_a_config_that_is_not_a_mapping_is_one_line(project: Path) -> None:
    (project / "Pulumi.flat.yaml").write_text("config: homelab\n")
    code, err = _run("render", "--stack", "flat")
    assert code == 2
    assert "`config` is a string, not a mapping" in _one_line(err)


def test_render_to_an_unwritable_out_names_the_path(tmp_path: Path, project: Path) -> None:
    # A regular file where a directory must go: the write fails whoever runs it (root too).
    (project / "Pulumi.homelab.yaml").write_text(fixture_stack_file("homelab").read_text())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    code, err = _run("render", "--out", str(blocker / "rendered"))
    assert code == 2
    line = _one_line(err)
    assert line.startswith(f"cannot write {blocker / 'rendered'}")
    assert "choose a writable --out" in line


def test_render_diff_to_an_unwritable_out_names_the_path(tmp_path: Path) -> None:
    head = tmp_path / "head"
    head.mkdir()
    (head / "SUMMARY.md").write_text("# render\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("x\n")
    for flag in ("--out", "--diff-out"):
        code, err = _run(
            "render-diff", str(tmp_path / "base"), str(head), flag, str(blocker / "c.md")
        )
        assert code == 2
        assert _one_line(err).startswith(f"cannot write {blocker / 'c.md'}")


def test_render_diff_refuses_a_base_that_is_a_file(tmp_path: Path) -> None:
    head = tmp_path / "head"
    head.mkdir()
    (head / "SUMMARY.md").write_text("# render\n")
    base = tmp_path / "base.tar"
    base.write_text("an archive, say, not the render directory\n")
    out = io.StringIO()
    err = io.StringIO()
    code = cli.main(["render-diff", str(base), str(head)], out=out, err=err)
    assert code == 2
    assert _one_line(err.getvalue()).startswith(
        f"the base {base} is a file, not a render directory"
    )
    assert out.getvalue() == ""


def test_fetch_reference_without_a_network_names_the_url_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real downloader (urllib) through a proxy that refuses: what a machine without network
    # meets, deterministically and without the network.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, f"http://127.0.0.1:{port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    err = io.StringIO()
    code = cli.main(
        ["fetch-reference", "--dest", str(tmp_path)],
        out=io.StringIO(),
        err=err,
        fetch=reference.download,
    )
    assert code == 2
    line = _one_line(err.getvalue())
    first = reference.sources()[0]
    assert isinstance(first, reference.Chart)
    assert line.startswith(f"cannot download {first.repository}/index.yaml: ")
    assert "check the network connection" in line
    assert "fetch-reference` again" in line


def test_fetch_reference_into_an_unwritable_dest_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x\n")
    err = io.StringIO()
    code = cli.main(
        ["fetch-reference", "--dest", str(blocker)],
        out=io.StringIO(),
        err=err,
        fetch=FakeUpstream(),
    )
    assert code == 2
    line = _one_line(err.getvalue())
    assert line.startswith(f"cannot write {blocker / 'upstream'}")
    assert "choose a writable --dest" in line


def test_a_chart_version_missing_from_its_repository_is_one_line(tmp_path: Path) -> None:
    err = io.StringIO()
    code = cli.main(
        ["fetch-reference", "--dest", str(tmp_path)],
        out=io.StringIO(),
        err=err,
        fetch=lambda url: b"apiVersion: v1\nentries: {}\n",
    )
    assert code == 2
    assert "is not in" in _one_line(err.getvalue())


def test_a_bug_in_the_program_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the errors a user can fix become one line; a program error is not swallowed.
    def broken_render(stack: str) -> engine.Render:
        raise engine.RenderError(engine.Render(stack, [], [], {}, (), {}), KeyError("x"))

    monkeypatch.setattr(engine, "render", broken_render)
    with pytest.raises(engine.RenderError):
        cli.main(["render", "--out", "/tmp/never-written"], out=io.StringIO(), err=io.StringIO())


PORTAL_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Guest Wi-Fi</title></head><body>Log in</body></html>"
)


def _fetch_reference_line(tmp_path: Path, fetch: reference.Downloader) -> str:
    err = io.StringIO()
    code = cli.main(
        ["fetch-reference", "--dest", str(tmp_path)], out=io.StringIO(), err=err, fetch=fetch
    )
    assert code == 2
    return _one_line(err.getvalue())


def test_a_captive_portal_answering_every_url_is_named_not_blamed_on_the_pin(
    tmp_path: Path,
) -> None:
    # A hotel or guest Wi-Fi answers every request with its login page (HTTP 200, HTML).
    line = _fetch_reference_line(tmp_path, lambda url: PORTAL_PAGE)
    first = reference.sources()[0]
    assert isinstance(first, reference.Chart)
    assert line.startswith(
        f"the answer from {first.repository}/index.yaml was a web page, not a Helm repository "
        "index: is a proxy or a captive portal"
    )
    assert "pins.py" not in line
    assert not (tmp_path / "upstream").exists()


@pytest.mark.parametrize(
    ("answer", "got"),
    [(PORTAL_PAGE, "a web page"), (b"\x1f\x8b\x08\x00 cut short", "not a gzip'd tar archive")],
    ids=["portal-page", "truncated-archive"],
)
def test_a_chart_download_that_is_not_an_archive_is_one_line_naming_its_url(
    tmp_path: Path, answer: bytes, got: str
) -> None:
    upstream = FakeUpstream()

    def portal_for_archives(url: str) -> bytes:
        return answer if url.endswith(".tgz") else upstream(url)

    line = _fetch_reference_line(tmp_path, portal_for_archives)
    chart = next(s for s in reference.sources() if isinstance(s, reference.Chart))
    assert line.startswith(
        f"the answer from {chart.repository}/charts/{chart.name}-{chart.version}.tgz was {got}, "
        "not a chart archive (.tgz): is a proxy or a captive portal"
    )


def test_a_raw_file_answered_by_a_portal_page_is_not_written_as_the_file(tmp_path: Path) -> None:
    upstream = FakeUpstream()
    raw = next(s for s in reference.sources() if isinstance(s, reference.RawFile))

    def portal_for_raw_files(url: str) -> bytes:
        return PORTAL_PAGE if url == raw.url else upstream(url)

    line = _fetch_reference_line(tmp_path, portal_for_raw_files)
    assert line.startswith(f"the answer from {raw.url} was a web page, not the file")
    assert not (tmp_path / "upstream" / raw.destination).exists()
