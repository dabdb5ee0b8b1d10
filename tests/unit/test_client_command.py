"""The command line's pure parts: reading texts from arguments, stdin and files; options; the terminal view."""

import io
import json

import pytest
from rich.console import Console

from triton_ner.client.__main__ import parse_labels
from triton_ner.client.inputs import STDIN, InputError, count_texts, jsonl_texts, read_texts, text_lines
from triton_ner.client.options import parse_header
from triton_ner.client.render import colour, entity_type, highlighted


def test_text_lines_keep_empty_lines_so_outputs_match_lines():
    assert list(text_lines(["a\n", "\n", "b\r\n", "c"])) == ["a", "", "b", "c"]


def test_jsonl_takes_the_text_field_and_skips_blank_lines():
    lines = ['{"text": "Berlin", "id": 1}\n', "\n", '{"text": ""}\n']
    assert list(jsonl_texts(lines, "in.jsonl")) == ["Berlin", ""]


@pytest.mark.parametrize(("line", "message"), [
    ("not json", r"^in.jsonl:2: not JSON \(Expecting value\)$"),
    ('{"id": 1}', r'^in.jsonl:2: not a JSON object with a string field "text"$'),
    ('{"text": 3}', r'field "text"$'),
    ('["Berlin"]', r'field "text"$'),
])
def test_a_bad_jsonl_line_is_named(line, message):
    with pytest.raises(InputError, match=message):
        list(jsonl_texts(['{"text": "ok"}', line], "in.jsonl"))


def test_arguments_then_files_in_order_and_stdin_only_without_either(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("one\n\nthree\n")
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t}) for t in ["four", "five"]) + "\n")
    stdin = io.StringIO("six\nseven\n")
    assert list(read_texts(["zero"], [txt, STDIN, jsonl], stdin)) == ["zero", "one", "", "three", "six", "seven",
                                                                      "four", "five"]
    assert list(read_texts([], [], io.StringIO("x\ny\n"))) == ["x", "y"]
    assert list(read_texts(["x"], [], io.StringIO("unread"))) == ["x"]
    assert count_texts(["zero"], [txt, jsonl]) == 6
    assert count_texts(["zero"], [txt, STDIN]) is None
    assert count_texts([], []) is None
    assert count_texts(["a", "b"], []) == 2


def test_missing_and_undecodable_files_are_one_line(tmp_path):
    with pytest.raises(InputError, match="missing.txt: No such file or directory"):
        list(read_texts([], [tmp_path / "missing.txt"], io.StringIO()))
    with pytest.raises(InputError, match="missing.txt: No such file or directory"):
        count_texts([], [tmp_path / "missing.txt"])
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Zürich\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin.txt: not UTF-8 text"):
        list(read_texts([], [latin], io.StringIO()))


def test_a_file_read_halfway_is_closed(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("one\ntwo\n")
    texts = read_texts([], [txt], io.StringIO())
    assert next(texts) == "one"
    texts.close()  # no ResourceWarning (warnings are errors)


def test_headers_and_labels_of_the_command_line():
    assert parse_header("infer-key: secret: with colon") == ("infer-key", "secret: with colon")
    with pytest.raises(ValueError, match="is not 'Name: value'"):
        parse_header("infer-key=secret")
    assert parse_labels("O, MISC") == ["O", "MISC"]
    assert parse_labels("") == []
    assert parse_labels(None) is None


def test_entity_types_of_grouped_and_token_entities():
    assert entity_type({"entity_group": "LOC"}) == "LOC"
    assert entity_type({"entity": "B-PER"}) == "PER"
    assert entity_type({"entity": "I-ORG"}) == "ORG"
    assert entity_type({"entity": "DATE"}) == "DATE"
    assert colour("PER") == "magenta" and colour("DATE") == colour("DATE")


def test_terminal_view_marks_each_entity_with_its_type():
    text = "My name is Wolfgang and I live in Berlin"
    entities = [{"entity_group": "LOC", "start": 34, "end": 40}, {"entity_group": "PER", "start": 11, "end": 19}]
    view = highlighted(text, entities)
    assert view.plain == "My name is Wolfgang[PER] and I live in Berlin[LOC]"
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard")
    console.print(view)
    assert "\x1b[" in console.file.getvalue()  # coloured in a terminal
    assert highlighted("abc", []).plain == "abc"
