"""Zoo manifests: hashes written, checked, and tampering refused with the file named."""

from __future__ import annotations

import json

import pytest

from survey_mass.zoo.manifest import (
    MANIFEST_NAME,
    ModelIntegrityError,
    read_manifest,
    sha256_file,
    verify_manifest,
    write_manifest,
)


@pytest.fixture
def entry(tmp_path):
    (tmp_path / "fold0.keras").write_bytes(b"model zero")
    (tmp_path / "fold1.keras").write_bytes(b"model one")
    members = [{"file": "fold0.keras", "fold": 0}, {"file": "fold1.keras", "fold": 1}]
    write_manifest(tmp_path, "toy", "xray", members, inputs={"shape": [8, 8, 1]})
    return tmp_path


def test_round_trip_keeps_fields_and_hashes(entry):
    manifest = verify_manifest(entry)
    assert manifest["ensemble"] == "toy" and manifest["instrument"] == "xray"
    assert manifest["inputs"] == {"shape": [8, 8, 1]}
    assert [m["fold"] for m in manifest["members"]] == [0, 1]
    assert manifest["members"][1]["sha256"] == sha256_file(entry / "fold1.keras")
    assert read_manifest(entry) == manifest


def test_one_changed_byte_is_refused_naming_file_and_hashes(entry):
    expected = read_manifest(entry)["members"][1]["sha256"]
    (entry / "fold1.keras").write_bytes(b"model onE")
    with pytest.raises(ModelIntegrityError, match="fold1.keras") as err:
        verify_manifest(entry)
    assert expected in str(err.value)
    assert sha256_file(entry / "fold1.keras") in str(err.value)


def test_missing_member_and_missing_manifest(entry, tmp_path_factory):
    (entry / "fold0.keras").unlink()
    with pytest.raises(ModelIntegrityError, match="fold0.keras.*missing"):
        verify_manifest(entry)
    with pytest.raises(FileNotFoundError, match=MANIFEST_NAME):
        read_manifest(tmp_path_factory.mktemp("empty"))


def test_member_paths_cannot_leave_the_folder(entry):
    manifest = json.loads((entry / MANIFEST_NAME).read_text())
    manifest["members"][0]["file"] = "../outside.keras"
    (entry / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="inside the folder"):
        verify_manifest(entry)


def test_write_refuses_bad_instrument_and_unwritten_members(tmp_path):
    with pytest.raises(ValueError, match="instrument"):
        write_manifest(tmp_path, "toy", "radio", [{"file": "a.keras"}])
    with pytest.raises(FileNotFoundError, match="a.keras"):
        write_manifest(tmp_path, "toy", "sz", [{"file": "a.keras"}])
    assert not (tmp_path / MANIFEST_NAME).exists()
