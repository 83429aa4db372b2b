"""Credentials in database URLs (an Optuna study's `hparams_search.storage`) never reach a file, a
log line, a tracker or the terminal.

The best way is to leave them out of the URL: `postgresql://user@host/db` and libpq's own
PGPASSWORD, ~/.pgpass or PGPASSFILE, or the whole URL in OPTUNA_STORAGE (conf/hparams_search reads it).
A URL given with a password anyway is kept in this process (and, for the jobs a launcher starts
elsewhere, in the environment variable REAL_STORAGE_ENV) and masked everywhere else: `user:***@`.

`take_storage_credentials` runs before Hydra saves anything (RunRecorder.on_run_start /
on_multirun_start): it resolves the storage URL (so an interpolation or an environment variable
counts by what it gives, not by its spelling), remembers its password, and puts the masked URL in
the config and the overrides that Hydra, the sweeper and every job see. The writers (run.json,
multirun.yaml, error lines) mask again with `mask_text` / `mask_override` / `mask_data`, and
`unmask` gives the code that opens the database the real URL back.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote

from bigmodel_cli.errors import UserError

# The whole URL, as the user may give it (conf/hparams_search/optuna.yaml: storage defaults to it).
STORAGE_ENV = "OPTUNA_STORAGE"
# The real URL behind a masked hparams_search.storage, for the sweep's jobs in other processes.
REAL_STORAGE_ENV = "BIGMODEL_OPTUNA_STORAGE"
MASK = "***"
STORAGE_KEY = "hparams_search.storage"
# `scheme://user:password@` (a colon Hydra escaped, `user\:password@`, too); the password stops at
# the first @ or / (a literal @ or / in a URL's password must be percent-encoded).
URL_PASSWORD = re.compile(r"(?P<head>://[^\s/@:\\]*\\?:)(?P<password>[^\s@/]+)@")
# Shorter strings are not taken as secrets on their own (masking every "1" would garble the record).
MIN_SECRET = 4

_remembered: dict[str, str] = {}  # masked URL -> real URL, in this process


def password_of(url: str) -> str | None:
    """The password in a URL as written, or None."""
    match = URL_PASSWORD.search(str(url))
    return match.group("password") if match and match.group("password") != MASK else None


def masked_url(url: str) -> str:
    return URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", str(url))


def remember(url: str) -> str:
    """Keep the real URL for this process and its children; returns the masked form."""
    masked = masked_url(url)
    _remembered[masked] = url
    os.environ[REAL_STORAGE_ENV] = url
    return masked


def forget() -> None:
    _remembered.clear()
    os.environ.pop(REAL_STORAGE_ENV, None)


def _known_urls() -> list[str]:
    return [*_remembered.values(), *(os.environ.get(v) for v in (REAL_STORAGE_ENV, STORAGE_ENV))]


def known_secrets() -> set[str]:
    """The passwords of the storage URLs this process knows (as written and percent-decoded)."""
    found = set()
    for url in _known_urls():
        password = password_of(url) if url else None
        if password:
            found |= {s for s in (password, unquote(password)) if len(s) >= MIN_SECRET}
    return found


def mask_text(text: str) -> str:
    """Any `user:password@` in `text` as `user:***@`, and any known password as ***."""
    text = masked_url(text)
    for secret in known_secrets():
        text = text.replace(secret, MASK)
    return text


def mask_password(text: str, password: str) -> str:
    """`text` without this one password: in URLs (any length), and anywhere once it is long enough
    to be taken as a secret. Other URLs' credentials stay (they may be needed, e.g. a tracking URI)."""
    text = URL_PASSWORD.sub(
        lambda m: f"{m.group('head')}{MASK}@" if m.group("password") == password else m.group(0), str(text)
    )
    return text.replace(password, MASK) if len(password) >= MIN_SECRET else text


def mask_override(override: str) -> str:
    """A command-line word or override (`key=value`) with its credentials masked."""
    return mask_text(str(override))


def mask_data(value: Any) -> Any:
    """A config (dicts, lists, strings) with every string masked."""
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def unmask(url: str) -> str:
    """The real URL behind a masked one (this process's, REAL_STORAGE_ENV's or OPTUNA_STORAGE's)."""
    url = str(url)
    if MASK not in url or URL_PASSWORD.search(url) is None:
        return url
    for real in _known_urls():
        if real and masked_url(real) == url:
            return real
    raise UserError(
        f"{STORAGE_KEY}={url}: its password is masked and the real one is not known to this process; fix: "
        f"leave the password out of the URL and give it to PostgreSQL by PGPASSWORD, ~/.pgpass or "
        f"PGPASSFILE, or set {STORAGE_ENV}=<the whole URL> in the environment"
    )


def take_storage_credentials(config) -> None:
    """Before Hydra saves anything: remember the password of the config's resolved storage URL and
    leave only its masked form in the config and its overrides (the task's and Hydra's)."""
    from omegaconf import OmegaConf, open_dict, read_write

    if "hparams_search" not in config:
        return
    try:
        url = OmegaConf.select(config, STORAGE_KEY, throw_on_resolution_failure=True)
    except Exception:  # noqa: BLE001 - a value that does not resolve is reported where it is used
        return
    password = password_of(str(url)) if url else None
    if password is None:
        return
    masked = remember(str(url))
    with read_write(config), open_dict(config):
        config.hparams_search.storage = masked
        overrides = config.hydra.overrides if "hydra" in config else {}
        for kind in ("task", "hydra"):
            if kind in overrides:
                overrides[kind] = [mask_password(o, password) for o in overrides[kind]]
