"""Uploaded data files: kept next to the runs, under names that cannot escape their folder, refused whole when bad."""
from pathlib import Path

import pytest

from app.state import Studio
from unlearning.data import DataError


def test_uploads_are_kept_next_to_the_runs(tmp_path):
    studio = Studio(runs=tmp_path / "runs", preload=False)
    upload = tmp_path / "my data.csv"
    upload.write_text("input,output\nWho?,Me\n")
    saved = Path(studio.save_upload(upload))
    assert saved.parent == studio.store.root / "uploads" and saved.name.endswith("-my_data.csv")
    assert saved.read_text() == upload.read_text() and studio.store.ids() == []  # not mistaken for a run


@pytest.mark.parametrize("name", ["...csv", "..\\..\\b.csv", ".hidden", "ééé.csv"])
def test_upload_names_cannot_escape_the_uploads_folder(tmp_path, name):
    studio = Studio(runs=tmp_path / "runs", preload=False)
    folder = tmp_path / "in"
    folder.mkdir()
    upload = folder / name
    upload.write_text("input,output\nWho?,Me\n")
    saved = Path(studio.save_upload(upload)).resolve()
    assert saved.parent == (studio.store.root / "uploads").resolve() and saved.is_file()


def test_a_bad_upload_is_refused_by_its_own_name_and_not_kept(tmp_path):
    studio = Studio(runs=tmp_path / "runs", preload=False)
    upload = tmp_path / "answers.csv"
    upload.write_text("input,wrong\nWho?,Me\n")
    with pytest.raises(DataError, match=r"^answers\.csv: missing column\(s\) 'output'"):
        studio.load_upload(upload)
    assert list((studio.store.root / "uploads").iterdir()) == []
