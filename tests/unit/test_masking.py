"""The one secret masker (conveyor.masking): URL passwords, password= settings, known values."""

from __future__ import annotations

from conveyor.masking import Redactor, mask_secrets, mask_url_passwords


def test_url_password_is_masked_and_the_rest_kept():
    text = "cannot connect to postgresql://app:s3cr%40t@db:5432/notes: refused"
    assert mask_secrets(text) == "cannot connect to postgresql://app:***@db:5432/notes: refused"
    assert mask_url_passwords("postgres://u@h/d") == "postgres://u@h/d"  # no password


def test_password_setting_in_conninfo_and_url_query_is_masked():
    assert mask_secrets("host=db user=app password=hunter22 dbname=x") == \
        "host=db user=app password=*** dbname=x"
    assert mask_secrets("host=db password='it\\'s secret' dbname=x") == \
        "host=db password=*** dbname=x"
    masked = mask_secrets("postgresql://app@db/notes?password=hunter22")
    assert "hunter22" not in masked and masked.startswith("postgresql://app@db/notes?password=***")


def test_redactor_masks_known_values_and_patterns_recursively():
    r = Redactor(["tok-123456", "ab"])  # values under 3 characters are not registered
    r.add(None)
    event = {"line": "login with tok-123456 to postgresql://u:pw@h/d", "n": 1,
             "argv": ("echo", "password=xyz", "ab")}
    assert r(event) == {"line": "login with *** to postgresql://u:***@h/d", "n": 1,
                        "argv": ["echo", "password=***", "ab"]}


def test_render_and_the_migrations_use_the_same_masker():
    from conveyor import render
    from conveyor.migrations import errors

    assert render.Redactor is Redactor
    assert errors.mask_secrets is mask_secrets
