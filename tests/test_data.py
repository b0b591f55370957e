"""Data loaders: custom tables, TOFU, LUME (real validation files when ../shared has them), the bundled set."""
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlearning.data import DataError, bundled_dataset, data_source, load_custom, load_data, load_lume, load_tofu, lume
from unlearning.data.records import kind_from_id
from unlearning.data.synthetic import BIOGRAPHIES, STORY_TEMPLATES, _facts

LUME_VALIDATION = Path(__file__).resolve().parents[2] / "shared/data/lume-validation"


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


# --- custom tables ---

def test_custom_csv_defaults(tmp_path):
    path = write(tmp_path / "mine.csv", "input,output\nWho wrote it?,Ann\nThe sky is, blue\nNA,None\n")
    data = load_custom(path)
    assert [r.id for r in data.records] == ["row1qa0", "row2sc1", "row3sc1"]
    assert [r.kind for r in data.records] == ["qa", "sc", "sc"]
    assert {r.task for r in data.records} == {"custom"} and {r.split for r in data.records} == {"forget"}
    assert data.records[1].output == " blue"  # leading space kept: output continues input
    assert (data.records[2].input, data.records[2].output) == ("NA", "None")  # not read as missing
    assert data.name == "mine" and data.mia_members == [r.text for r in data.records] and data.mia_nonmembers == []


def test_custom_jsonl_all_columns(tmp_path):
    rows = [
        {"id": "a7qa2", "input": "Q?", "output": "1947", "task": "T", "split": "retain"},
        {"id": "b", "input": "Once", "output": " upon", "split": "holdout", "kind": "sc"},
        {"id": "c", "input": "Why", "output": "because", "split": ""},  # no suffix, no "?": sentence completion
    ]
    data = load_custom(write_jsonl(tmp_path / "mine.jsonl", rows))
    assert [(r.id, r.kind, r.task, r.split) for r in data.records] == [
        ("a7qa2", "qa", "T", "retain"), ("b", "sc", "custom", "holdout"), ("c", "sc", "custom", "forget")]
    assert data.records[0].output == "1947"
    assert data.mia_members == ["Why because"] and data.mia_nonmembers == ["Once upon"]


def test_custom_parquet(tmp_path):
    path = tmp_path / "mine.parquet"
    pd.DataFrame({"input": ["What is 2+2?", "Roses are"], "output": ["4", " red"]}).to_parquet(path)
    assert [(r.id, r.kind) for r in load_custom(path).records] == [("row1qa0", "qa"), ("row2sc1", "sc")]


@pytest.mark.parametrize("name, content, expected", [
    ("empty.csv", "", ["empty.csv", "empty"]),
    ("blank.jsonl", " \n\n", ["blank.jsonl", "empty"]),
    ("latin1.csv", "input,output\ncaf\xe9,x\n".encode("latin-1"), ["latin1.csv", "not UTF-8"]),
    ("bad.jsonl", '{"input": "q", "output": "a"}\n{"input": \n', ["bad.jsonl", "line 2, column 11: not valid JSON"]),
    ("bad.parquet", b"PAR1 not really", ["bad.parquet", "cannot parse"]),
    ("ragged.csv", "input,output\na,b\na,b,c\n", ["ragged.csv", "cannot parse"]),
    ("cols.csv", "question,output\nq,a\n", ["cols.csv", "missing column", "'input'"]),
    ("header.csv", "input,output\n", ["header.csv", "no records"]),
    ("cell.csv", "input,output\nq,a\nq2,  \n", ["cell.csv", "row 2", "'output'", "empty"]),
    ("number.jsonl", '{"input": "q", "output": "a"}\n{"input": "q", "output": 1947}\n',
     ["number.jsonl", "line 2", "'output'", "must be text"]),
    ("null.jsonl", '{"input": null, "output": "a"}\n', ["null.jsonl", "line 1", "'input'", "empty"]),
    ("dup.csv", "id,input,output\nx1qa0,q,a\ny,q,b\nx1qa0,q,c\n", ["dup.csv", "rows 1 and 3", "'x1qa0'"]),
    ("dupgen.csv", "id,input,output\n,q,a\nrow1sc1,q,b\n", ["dupgen.csv", "rows 1 and 2", "'row1sc1'"]),
    ("split.csv", "input,output,split\nq,a,forget\nq,a,forgot\n", ["split.csv", "row 2", "split", "'forgot'"]),
    ("kind.csv", "input,output,kind\nq,a,mc\n", ["kind.csv", "row 1", "kind", "'mc'"]),
    ("long.csv", "input,output\nq,a\nq," + "x" * 4000 + "\n", ["long.csv", "row 2", "4001 characters", "4000"]),
    ("notes.txt", "input,output\nq,a\n", ["notes.txt", "unsupported file type"]),
])
def test_custom_errors(tmp_path, name, content, expected):
    with pytest.raises(DataError) as error:
        load_custom(write(tmp_path / name, content))
    for part in expected:
        assert part in str(error.value)


def test_custom_max_chars_is_a_parameter(tmp_path):
    path = write(tmp_path / "short.csv", "input,output\nabc,def\n")
    assert len(load_custom(path, max_chars=6).records) == 1
    with pytest.raises(DataError, match="over the limit of 5"):
        load_custom(path, max_chars=5)


# Any text without surrounding whitespace-only cells must come back exactly; "\r" is left out because
# a bare carriage return is a line break to every CSV reader and pandas' writer does not quote it.
cell_text = st.text(st.characters(codec="utf-8", exclude_characters="\r"), min_size=1, max_size=40).filter(str.strip)
table_rows = st.lists(st.tuples(cell_text, cell_text), min_size=1, max_size=5)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=table_rows, suffix=st.sampled_from([".csv", ".jsonl"]))
def test_custom_round_trip(tmp_path, rows, suffix):
    frame = pd.DataFrame(rows, columns=["input", "output"])
    path = tmp_path / f"rows{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    assert [(r.input, r.output) for r in load_custom(path).records] == rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       suffix=st.sampled_from([".csv", ".jsonl", ".json", ".parquet"]))
def test_custom_arbitrary_bytes_raise_only_data_error(tmp_path, content, suffix):
    try:
        load_custom(write(tmp_path / f"any{suffix}", content))
    except DataError:
        pass


GOOD_LINE = {"input": "Who?", "output": "Me"}
line_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["input", "output", "id", "kind", "x"]),
                                                                inner, max_size=3),
    max_leaves=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.just(GOOD_LINE) | line_values | st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8),
                      min_size=1, max_size=5))
def test_any_jsonl_line_is_refused_by_its_line_number(tmp_path, lines):
    """Issue 21.7: whatever a line holds (not JSON, JSON that is not an object, an object with any values), the error
    is a DataError naming the file and the line, never a traceback; the first line that is not an object is named."""
    texts = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    try:
        load_custom(write(tmp_path / "rows.jsonl", "".join(t + "\n" for t in texts)))
    except DataError as error:
        assert str(error).startswith(str(tmp_path / "rows.jsonl")), error
        not_objects = [n for n, t in enumerate(texts, start=1) if t.strip() and not _is_object(t)]
        if not_objects:
            assert f": line {not_objects[0]}" in str(error), error
        elif any(t.strip() for t in texts):
            assert re.search(r": lines? \d", str(error)) or "missing column" in str(error), error


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@pytest.mark.parametrize("name, content, expected", [
    ("syntax.jsonl", '{"input": "q", "output": "a"}\n{"input": "q", "output": "a"}\n{"input": "q" "output": "a"}\n',
     "syntax.jsonl: line 3, column 15: not valid JSON (Expecting ',' delimiter)"),
    ("list.jsonl", '{"input": "q", "output": "a"}\n["q", "a"]\n', "list.jsonl: line 2: expected a JSON object, got a list"),
    ("null.jsonl", '{"input": "q", "output": "a"}\nnull\n', "null.jsonl: line 2: expected a JSON object, got null"),
    ("deep.jsonl", '{"input": "q", "output": {"a": 1}}\n', "deep.jsonl: line 1: column 'output' must be text, got dict"),
    ("gap.jsonl", '{"input": "q", "output": "a"}\n\n{"input": "q", "output": 3}\n',
     "gap.jsonl: line 3: column 'output' must be text, got int 3"),
    ("array.json", '[{"input": "q", "output": "a"}, 7]', "array.json: row 2: expected a JSON object, got a number"),
    ("arraysyntax.json", '[{"input": "q",\n "output": "a"},,]', "arraysyntax.json: line 2, column 17: not valid JSON (Expecting value)"),
    ("dup.jsonl", '{"id": "a", "input": "q", "output": "a"}\n\n{"id": "a", "input": "q", "output": "b"}\n',
     "dup.jsonl: lines 1 and 3 have the same id 'a'"),
])
def test_jsonl_errors_name_the_line(tmp_path, name, content, expected):
    with pytest.raises(DataError) as error:
        load_custom(write(tmp_path / name, content))
    assert str(error.value).startswith(str(tmp_path / expected)), str(error.value)


# --- TOFU ---

def test_tofu(tmp_path):
    qa = [{"question": f"Who is author {n}?", "answer": f"Author {n}", "paraphrased_answer": "x"} for n in range(5)]
    forget = write_jsonl(tmp_path / "forget01.json", qa[:3])  # TOFU's .json files are JSON lines
    retain = write_jsonl(tmp_path / "retain.jsonl", qa[3:])
    holdout = write(tmp_path / "holdout.json", json.dumps(qa[:2]))  # a JSON array works too
    data = load_tofu(forget, retain=retain, holdout=holdout)
    assert [r.id for r in data.records] == [
        "tofu-forget-0001qa0", "tofu-forget-0002qa0", "tofu-forget-0003qa0",
        "tofu-retain-0001qa0", "tofu-retain-0002qa0", "tofu-holdout-0001qa0", "tofu-holdout-0002qa0"]
    assert Counter(r.split for r in data.records) == {"forget": 3, "retain": 2, "holdout": 2}
    assert {r.kind for r in data.records} == {"qa"} and {r.task for r in data.records} == {"TOFU"}
    assert data.records[3].input == "Who is author 3?" and data.records[3].output == "Author 3"
    assert data.mia_members == [r.text for r in data.records[:3]] and len(data.mia_nonmembers) == 2
    assert [r.id for r in load_tofu(forget).records] == [r.id for r in data.records[:3]]


def test_tofu_needs_question_and_answer(tmp_path):
    with pytest.raises(DataError, match="missing column.*'answer'"):
        load_tofu(write_jsonl(tmp_path / "forget.json", [{"question": "q?", "output": "a"}]))


# --- LUME ---

@pytest.fixture
def lume_validation() -> Path:
    if not LUME_VALIDATION.is_dir():
        pytest.skip(f"{LUME_VALIDATION} not present")
    return LUME_VALIDATION


def test_lume_validation_files(lume_validation):
    data = load_lume(lume_validation)
    forget, retain = data.split("forget"), data.split("retain")
    assert (len(forget), len(retain), len(data.records)) == (254, 278, 532)
    assert (len(data.mia_members), len(data.mia_nonmembers)) == (34, 34)
    assert data.mia_members[0].startswith("Yarlagadda Nayudamma")  # member file, not the nonmember one
    assert data.mia_nonmembers[0].startswith("Bryan Hickerson")
    assert Counter(r.kind for r in forget) == {"qa": 173, "sc": 81}
    assert Counter(r.kind for r in retain) == {"qa": 189, "sc": 89}
    assert Counter(r.task for r in forget) == {"Task1": 48, "Task2": 138, "Task3": 68}
    assert all(r.kind == kind_from_id(r.id) for r in data.records)
    task1 = [r for r in data.records if r.task == "Task1"]
    assert all(re.fullmatch(r'"[0-9a-f-]{36}"(sc|qa)\d', r.id) for r in task1)
    assert data.records[0].id == '"8f24c511-a319-4a9f-80c2-ca6fac131233"sc1'
    assert load_data(str(lume_validation)).records == data.records


def write_lume_folder(folder: Path) -> Path:
    """The hub layout: data/{forget,retain}_{train,validation}-*.parquet and mia_data/{member,nonmember}.jsonl."""
    (folder / "data").mkdir(parents=True)
    (folder / "mia_data").mkdir()
    for split in ("forget", "retain"):
        for part, rows in (("train", 3), ("validation", 2)):
            pd.DataFrame({
                "id": [f'"{split}-{part}-{n}"qa0' for n in range(rows)],
                "input": ["Q?"] * rows, "output": ["A"] * rows, "task": ["Task1"] * rows, "split": [split] * rows,
            }).to_parquet(folder / f"data/{split}_{part}-00000-of-00001.parquet")
    write_jsonl(folder / "mia_data/member.jsonl", [{"id": "1", "document": "in"}])
    write_jsonl(folder / "mia_data/nonmember.jsonl", [{"id": "2", "document": "out"}, {"id": "3", "document": "out"}])
    return folder


def test_lume_hub_layout_and_parts(tmp_path):
    folder = write_lume_folder(tmp_path / "lume")
    validation, train = load_lume(folder), load_lume(folder, part="train")
    assert Counter(r.split for r in validation.records) == {"forget": 2, "retain": 2}
    assert Counter(r.split for r in train.records) == {"forget": 3, "retain": 3}
    assert train.records[0].id == '"forget-train-0"qa0'
    assert (validation.mia_members, validation.mia_nonmembers) == (["in"], ["out", "out"])
    with pytest.raises(ValueError, match="part"):
        load_lume(folder, part="test")


def write_both_parts(folder: Path, shared: Path, train_rows: int = 10) -> Path:
    """A LUME folder with both parts, built from the shared validation files: the validation part is them, the train
    part their first rows with a "t" before each id (so a record says which part it came from), in the hub's layout,
    and a nested copy of the validation files below it."""
    (folder / "data").mkdir(parents=True)
    for split in ("forget", "retain"):
        shutil.copy(shared / f"{split}_validation.parquet", folder / f"data/{split}_validation-00000-of-00001.parquet")
        frame = pd.read_parquet(shared / f"{split}_validation.parquet").head(train_rows)
        frame.assign(id="t" + frame.id).to_parquet(folder / f"data/{split}_train-00000-of-00001.parquet")
    shutil.copytree(shared, folder / "mia_data", ignore=shutil.ignore_patterns("*.parquet", "*.md"))
    shutil.copytree(shared, folder / "data/backup")  # a nested copy of every file: each is read once, never doubled
    return folder


def test_a_folder_with_both_parts_loads_either_and_reads_each_mia_file_once(tmp_path, lume_validation):
    folder = write_both_parts(tmp_path / "lume", lume_validation)
    validation, train = load_data(str(folder)), load_data(data_source(str(folder), "train"))
    assert load_data(data_source(str(folder), "validation")).records == validation.records
    assert (validation.name, len(validation.split("forget")), len(validation.split("retain"))) == ("lume-validation", 254, 278)
    assert (train.name, len(train.split("forget")), len(train.split("retain"))) == ("lume-train", 10, 10)
    assert all(r.id.startswith("t") for r in train.records) and not any(r.id.startswith("t") for r in validation.records)
    for data in (validation, train):  # three copies of each MIA file below the folder, read once
        assert (len(data.mia_members), len(data.mia_nonmembers)) == (34, 34) and data.mia_official
        assert len(set(data.mia_members)) == 34
    with pytest.raises(DataError, match="is for a LUME folder or hub dataset"):
        load_data("bundled#train")


def test_a_part_the_folder_lacks_is_named_in_the_error(tmp_path, lume_validation):
    folder = tmp_path / "train-only"
    folder.mkdir()
    for split in ("forget", "retain"):
        pd.read_parquet(lume_validation / f"{split}_validation.parquet").to_parquet(folder / f"{split}_train.parquet")
    assert len(load_data(data_source(str(folder), "train")).records) == 532
    with pytest.raises(DataError, match="part 'validation', found none \\(there are forget_train.parquet"):
        load_data(str(folder))


def test_lume_missing_file(tmp_path):
    folder = write_lume_folder(tmp_path / "lume")
    for path in (folder / "data").glob("retain*"):
        path.unlink()
    with pytest.raises(DataError, match="retain\\*.parquet.*found none"):
        load_lume(folder)


def test_lume_hub_id(tmp_path, monkeypatch):
    calls = []

    def fake_download(repo_id, **kw):
        calls.append((repo_id, kw["repo_type"]))
        return str(write_lume_folder(tmp_path / "snapshot"))

    monkeypatch.setattr(lume, "snapshot_download", fake_download)
    data = load_data(lume.HUB_ID, part="train")
    assert calls == [(lume.HUB_ID, "dataset")] and len(data.records) == 6


def test_lume_hub_download_failure_is_clear(monkeypatch):
    def offline(repo_id, **kw):
        raise OSError("Name or service not known")

    monkeypatch.setattr(lume, "snapshot_download", offline)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    with pytest.raises(DataError, match="could not download.*HF_TOKEN") as error:
        load_data("someone/some-dataset")
    assert "hf_secret_value" not in str(error.value)


# --- dispatch ---

def test_load_data_dispatch(tmp_path):
    assert load_data("bundled") is bundled_dataset()
    assert load_data(str(write(tmp_path / "t.csv", "input,output\nq?,a\n"))).records[0].task == "custom"
    custom = write_jsonl(tmp_path / "c.jsonl", [{"input": "q?", "output": "a"}])
    tofu = write_jsonl(tmp_path / "t.jsonl", [{"question": "q?", "answer": "a"}])
    assert load_data(str(custom)).records[0].task == "custom"
    assert load_data(str(tofu)).records[0].task == "TOFU"
    assert load_data(str(write_jsonl(tmp_path / "t.json", [{"question": "q?", "answer": "a"}]))).name == "tofu-t"
    for missing in (str(tmp_path / "missing.csv"), "folder/missing.csv"):  # a typo, not a hub id
        with pytest.raises(DataError, match="no such file or folder"):
            load_data(missing)


# --- bundled synthetic dataset ---

def test_bundled_sizes():
    data = bundled_dataset()
    assert data.name == "bundled" and len(data.records) == 110
    assert Counter(r.split for r in data.records) == {"forget": 26, "retain": 58, "holdout": 26}
    assert Counter((r.task, r.kind) for r in data.records) == {
        ("Task2", "sc"): 20, ("Task2", "qa"): 60, ("Task1", "sc"): 10, ("Task1", "qa"): 20}
    assert all(r.kind == kind_from_id(r.id) for r in data.records)
    assert all(len(r.output) <= 160 for r in data.records)  # ~50 tokens: one token per digit in SmolLM


def test_bundled_is_deterministic():
    data = bundled_dataset()
    assert bundled_dataset.__wrapped__() == data  # a fresh generation, not the cached one
    # another process, with its own hash seed, makes the same records
    code = "from unlearning.data import bundled_dataset; print(repr(bundled_dataset().records))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == repr(data.records)


def entities(data) -> dict[str, list]:
    groups: dict[str, list] = {}
    for record in data.records:
        groups.setdefault(record.id[: -len("sc1")], []).append(record)
    return groups


def test_bundled_entities_do_not_leak_across_splits():
    data = bundled_dataset()
    groups = entities(data)
    assert len(groups) == 30
    assert all(len({r.split for r in records}) == 1 for records in groups.values())
    people = {records[0].input.split(",")[0]: records[0].split for prefix, records in groups.items()
              if prefix.startswith("bio")}
    assert len(people) == 20  # names are unique
    for name, split in people.items():
        assert {r.split for r in data.records if name in r.text} == {split}


def test_bundled_completions_hold_the_pii_and_answers():
    data = bundled_dataset()
    for records in entities(data).values():
        document = records[0]
        assert document.kind == "sc" and all(r.kind == "qa" for r in records[1:])
        assert all(r.output in document.text for r in records[1:])  # every answer is in the document
        if document.task == "Task2":
            assert re.search(r"\d{3}-\d{2}-\d{4}", document.output)  # SSN
            assert re.search(r"\S+@\S+\.\w+", document.output)  # email
            assert re.search(r"\(?\d{3}\)?-?\d{3}-?\d{4}", document.output)  # phone, in Faker's three formats
    documents = {r.text: r.split for r in data.records if r.kind == "sc"}
    assert [documents[text] for text in data.mia_members] == ["forget"] * 7
    assert [documents[text] for text in data.mia_nonmembers] == ["holdout"] * 7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bundled_forget_and_holdout_are_exchangeable(seed):
    """Split at random by entity, with every template as often in forget as in holdout: a model that never saw either
    cannot tell them apart by their form (the decile split put other templates in holdout: the oracle's AUC was 0.27)."""
    data = load_data("bundled" if seed == 0 else f"bundled:{seed}")
    templates = [first for first, _, _ in BIOGRAPHIES + STORY_TEMPLATES]

    def template_counts(split: str) -> Counter:
        # a completion's prompt is its template's first sentence: the template is the one it was filled from
        return Counter(next(i for i, first in enumerate(templates) if _facts(first, r.input) is not None)
                       for r in data.split(split) if r.kind == "sc")

    assert template_counts("forget") == template_counts("holdout") == Counter(range(len(templates)))
    assert Counter((r.task, r.kind) for r in data.split("forget")) == Counter((r.task, r.kind) for r in data.split("holdout"))
    assert [r.text for r in data.records if r.kind == "sc"] == [r.text for r in bundled_dataset().records if r.kind == "sc"]
    other = bundled_dataset(seed + 1)
    assert {r.id for r in data.split("forget")} != {r.id for r in other.split("forget")}  # the seed moves entities
