"""runs/secrets: what a password in a storage URL becomes in what bigmodel writes, and how the code
that opens the database gets the real URL back. The end-to-end walk over every file of a real sweep
against a password-protected PostgreSQL is tests/search/test_credentials.py."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bigmodel_cli.errors import UserError
from bigmodel_cli.runs import secrets


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv(secrets.REAL_STORAGE_ENV, raising=False)
    monkeypatch.delenv(secrets.STORAGE_ENV, raising=False)
    yield
    secrets.forget()


def test_any_user_password_in_a_url_is_masked_however_hydra_escaped_it():
    assert secrets.mask_text("postgresql://u:s3cret!@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert secrets.mask_text(r"x=postgresql\://u\:s3cret@h\:5432/db") == r"x=postgresql\://u\:***@h\:5432/db"
    assert secrets.mask_text("http://host:8080/path@x and postgresql://u@h/db") == (
        "http://host:8080/path@x and postgresql://u@h/db"  # a port is no password; no password, nothing to mask
    )


def test_a_remembered_password_is_masked_even_where_it_stands_alone():
    secrets.remember("postgresql://u:Tr1cky-pw@h/db")
    assert secrets.mask_override("+db_password=Tr1cky-pw") == "+db_password=***"
    assert secrets.mask_data({"a": ["Tr1cky-pw", 3], "b": "postgresql://u:Tr1cky-pw@h/db"}) == {
        "a": ["***", 3],
        "b": "postgresql://u:***@h/db",
    }


def test_the_config_keeps_the_masked_url_and_the_opener_gets_the_real_one(monkeypatch):
    """What the URL resolves to counts (here an interpolation of an environment variable), not its
    spelling; the overrides Hydra saves lose the password too."""
    monkeypatch.setenv("DB_PW", "Env-pw-123")
    cfg = OmegaConf.create(
        {
            "hparams_search": {"storage": "postgresql://u:${oc.env:DB_PW}@h/db"},
            "hydra": {"overrides": {"task": ["+pw=Env-pw-123", "x=1", "t=http://me:other-pw@mlflow"], "hydra": []}},
        }
    )
    secrets.take_storage_credentials(cfg)
    assert cfg.hparams_search.storage == "postgresql://u:***@h/db"
    # the jobs are composed from these: another URL's credentials (a tracking server's) still work there
    assert list(cfg.hydra.overrides.task) == ["+pw=***", "x=1", "t=http://me:other-pw@mlflow"]
    assert secrets.unmask(cfg.hparams_search.storage) == "postgresql://u:Env-pw-123@h/db"
    secrets.forget()
    with pytest.raises(UserError, match="its password is masked and the real one is not known"):
        secrets.unmask("postgresql://u:***@h/db")
    monkeypatch.setenv(secrets.STORAGE_ENV, "postgresql://u:Env-pw-123@h/db")
    assert secrets.unmask("postgresql://u:***@h/db") == "postgresql://u:Env-pw-123@h/db"
