"""list_backups.sh: name, size and metadata (on one line) of an environment's backups."""

PATTERN = "^shop-prod-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}[.]dump$"


def test_lists_the_matching_files_by_name_with_size_and_metadata(docker, tmp_path):
    (tmp_path / "shop-prod-20260102T000000Z-0002.dump").write_text("12345")
    (tmp_path / "shop-prod-20260101T000000Z-0001.dump").write_text("123")
    (tmp_path / "shop-prod-20260101T000000Z-0001.json").write_text('{\n  "id": "1"\n}\n')
    (tmp_path / "shop-prod-eu-20260101T000000Z-0001.dump").write_text("x")
    (tmp_path / "shop-prod-20260103T000000Z-0003.dump.partial").write_text("x")

    r = docker.run("list_backups", str(tmp_path), PATTERN)

    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ('shop-prod-20260101T000000Z-0001.dump\t3\t{  "id": "1"}\n'
                        "shop-prod-20260102T000000Z-0002.dump\t5\t\n")
    assert docker.calls() == []


def test_an_empty_or_missing_directory_lists_nothing(docker, tmp_path):
    for d in (tmp_path, tmp_path / "missing"):
        r = docker.run("list_backups", str(d), PATTERN)
        assert (r.returncode, r.stdout) == (0, "")
