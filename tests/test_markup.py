"""`translate --markup html` (issue 32, points 2 and 7): tags, attributes, comments and entities
kept, the text between them translated, script/style/code/pre untouched, inline tags placed
back well-nested; N lines in, N out; malformed and huge lines bounded.

The parsing and placement are checked with a stand-in translator (each word upper-cased, or
the words reversed with their alignment); the command on the session's tiny trained model,
against its own engine translating the text alone."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.engines.markup import translate_markup

TAG = re.compile(r"<(/?)([a-zA-Z]+)[^>]*?(/?)>")


def upper(texts: list[str]) -> list[list[Hypothesis]]:
    return [[Hypothesis(text=text.upper(), score=-1.0)] for text in texts]


def reversed_aligned(texts: list[str]) -> list[list[Hypothesis]]:
    """Words in reverse order, each aligned to its source word."""
    out = []
    for text in texts:
        words = text.split()
        links = [(i, len(words) - 1 - i) for i in range(len(words))]
        out.append([Hypothesis(text=" ".join(reversed(words)), alignment=links)])
    return out


def html(lines: list[str], decode: object = upper) -> list[str]:
    return [nbest[0].text for nbest in translate_markup(decode, lines)]  # type: ignore[arg-type]


def well_formed(text: str) -> bool:
    stack = []
    for match in TAG.finditer(text):
        closing, name, self_closed = match.groups()
        if name in ("img", "br") or self_closed:
            continue
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def test_tags_attributes_comments_and_entities_are_kept_and_text_translated() -> None:
    line = ('<p class="lead" id=x>A <b>small</b> dog &amp; a&nbsp;cat <a href="/a?b=1&amp;c=2" '
            'title="Hi">run</a>.<!-- keep me --><br/>Done &#169; <img src="i.png" alt="x"> now</p>')
    assert html([line]) == [  # a void tag between two spaces comes after both
        '<p class="lead" id=x>A <b>SMALL</b> DOG &amp; A&nbsp;CAT <a href="/a?b=1&amp;c=2" '
        'title="Hi">RUN</a>.<!-- keep me --><br/>DONE &#169;  <img src="i.png" alt="x">NOW</p>']


def test_script_style_code_and_pre_contents_are_untouched() -> None:
    line = ('<style>p { color: red }</style>one <script>if (a < b && c) { x = "<b>no</b>"; }</script>'
            'two <code>print(x) <b>y</b></code> three <pre>keep <pre>nested</pre> this</pre> four')
    assert html([line]) == [
        '<style>p { color: red }</style>ONE <script>if (a < b && c) { x = "<b>no</b>"; }</script>'
        'TWO <code>print(x) <b>y</b></code> THREE <pre>keep <pre>nested</pre> this</pre> FOUR']


def test_inline_tags_follow_the_alignment_and_stay_nested() -> None:
    assert html(["a <b>big <i>red</i></b> dog"], reversed_aligned) == ["dog <b><i>red</i> big</b> a"]
    assert html(["<b>one</b> two <i>three</i>"], reversed_aligned) == ["<i>three</i> two <b>one</b>"]
    assert html(["A dog in the <a href='s'>snow</a>."]) == ["A DOG IN THE <a href='s'>SNOW</a>."]


def test_n_lines_in_n_out_with_empty_and_textless_lines() -> None:
    lines = ["", "<br>", "   ", "plain text", "<p></p><!-- only a comment -->", "<b>x</b>"]
    assert html(lines) == ["", "<br>", "   ", "PLAIN TEXT", "<p></p><!-- only a comment -->", "<b>X</b>"]


@pytest.mark.parametrize(("line", "expected"), [
    ("a <b>unclosed <i>tags", "A <b>UNCLOSED <i>TAGS"),
    ("stray </b> closing </i>", "STRAY</b>  CLOSING</i> "),  # a closing tag ends at the word before it
    ("<b>x <i>crossed</b> y</i>", "<b>X <i>CROSSED</b> Y</i>"),
    ('text <p class="open', 'TEXT <p class="open'),  # an unfinished tag: the rest kept as is
    ("text <!-- never closed <b>x</b>", "TEXT <!-- never closed <b>x</b>"),
    ("1 < 2 & 3 > 2", "1 &lt; 2 &amp; 3 &gt; 2"),
    ("x &#zz; y <b>z</b>", "X &amp;#ZZ; Y <b>Z</b>"),  # a bogus "&#" stops html.parser's feeding: not here
    ("&nbsp;<b>a</b>&nbsp;", "&nbsp;<b>A</b>&nbsp;"),  # entities at a segment's edges too
    ("<script>alert('a <b>')", "<script>alert('a <b>')"),
])
def test_malformed_lines_keep_every_tag_and_all_their_text(line: str, expected: str) -> None:
    assert html([line]) == [expected]


def test_output_is_well_formed_where_the_input_is() -> None:
    lines = ["<div><b>a <i>b</i></b> c <span>d <em>e</em> f</span></div>",
             "<p><a href='x'>link <b>bold</b></a> tail</p>", "<ul><li>one <b>two</b></li><li>three</li></ul>"]
    for decode in (upper, reversed_aligned):
        for out in html(lines, decode):
            assert well_formed(out), out


@pytest.mark.parametrize("line", ["word " * 210_000, "<" * 1_000_000, "<b>x</b> " * 110_000,
                                  "<!--" * 250_000, "<p a='" + "x" * 1_000_000, "<b>" * 300_000 + "x",
                                  "<script>" + "a<b " * 300_000, "&#x; <b>y</b> " * 90_000])
def test_a_1mb_line_is_one_output_line_in_bounded_time(line: str) -> None:
    started = time.perf_counter()
    out = html([line, "<b>ok</b>"])
    assert time.perf_counter() - started < 60
    assert len(out) == 2 and out[1] == "<b>OK</b>" and "\n" not in out[0]
    assert out[0].count("<b>") == line.count("<b>")


# ---------------------------------------------------------------- the command

def test_translate_markup_html_keeps_the_structure_and_translates_the_text(trained_run: Path, toy_dir: Path,
                                                                          tmp_path: Path) -> None:
    """N lines out for N in; the text of each segment is the engine's own translation of it."""
    from mt_cli.engines.choice import open_translator

    s = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:3]
    first, rest = s[0].split(" ", 1)
    lines = [f'<p class="x"><b>{first}</b> {rest}</p><!-- c -->', "", f"<code>{s[1]}</code> {s[2]}",
             "<script>var a = '<b>';"]
    source = tmp_path / "page.html"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source), "--markup", "html"])
    assert result.exit_code == 0, result.stderr
    alone = [n[0].text for n in open_translator(trained_run, engine="ctranslate2").translate_nbest(
        [f"{first} {rest}", s[2]])]
    out = result.stdout.split("\n")[:-1]
    assert len(out) == 4 and out[1] == "" and out[3] == lines[3]
    assert re.sub(r"<[^>]*>", "", out[0]) == alone[0] and out[0].startswith('<p class="x"><b>')
    assert out[0].endswith("</p><!-- c -->") and out[0].count("</b>") == 1 and well_formed(out[0])
    assert out[2] == f"<code>{s[1]}</code> {alone[1]}"


def test_with_alignments_the_native_engine_places_the_tags(trained_run: Path, toy_dir: Path,
                                                           tmp_path: Path) -> None:
    s = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:4]
    lines = [f"<i>{line}</i>" if n % 2 else f"<b>{line.split()[0]}</b> {line.split(' ', 1)[1]}"
             for n, line in enumerate(s)]
    source = tmp_path / "page.html"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source), "--markup", "html",
                                      "--alignments", "--format", "jsonl"])
    assert result.exit_code == 0, result.stderr
    assert "engine: native" in result.stderr
    records = [__import__("json").loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4 and all("alignment" not in r for r in records)
    for line, record in zip(lines, records):
        assert well_formed(record["text"]) and record["text"].count("<") == line.count("<")


@pytest.mark.parametrize(("extra", "says"), [
    (["--markup", "xml"], "--markup: must be one of none, html, got 'xml'"),
    (["--markup", "html", "--prefix-file", "{src}"], "--prefix-file: not with --markup html"),
    (["--markup", "html", "--shard", "1/2"], "--shard: not with --markup html"),
])
def test_what_markup_cannot_serve_is_one_error_line(trained_run: Path, toy_dir: Path, extra: list[str],
                                                    says: str) -> None:
    src = str(toy_dir / "test.src")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), src, *[e.format(src=src) for e in extra]])
    assert_one_line_error(result, says)


def test_unclosed_huge_and_script_lines_are_one_line_each_without_a_traceback(trained_run: Path, toy_dir: Path,
                                                                              tmp_path: Path) -> None:
    words = (toy_dir / "test.src").read_text(encoding="utf-8").split()
    huge = "<p><b>" + " ".join(words[n % len(words)] for n in range(200_000)) + "</b></p>"  # 1 MB, one segment
    lines = [f"{words[0]} <b>{words[1]} <i>{words[2]}", huge, "<script>if (a < b) { c = '<p>x'; }", "<!-- <b>"]
    source = tmp_path / "bad.html"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source), "--markup", "html",
                                      "--beam-size", "1"])
    assert result.exit_code == 0 and result.exception is None, result.stderr
    out = result.stdout.split("\n")[:-1]
    assert len(out) == 4 and out[2:] == lines[2:] and "truncated" in result.stderr
    assert out[0].count("<b>") == out[0].count("<i>") == 1 and out[1].startswith("<p><b>")
    assert out[1].endswith("</b></p>") and len(out[1]) < 10_000
