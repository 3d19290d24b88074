"""Who may connect and what each may touch: per-device credentials and the broker ACL.

Every device of the site file (and the engine, and one operator login for the
CLI) gets its own username and random password, stored one file per device
with mode 600 so each machine can be given only its own. The engine writes
Mosquitto's password file and ACL from the site file.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from broker.contract import Role, Topics
from broker.errors import AntreanError
from broker.site import Site

_LOGGER = logging.getLogger(__name__)

CREDENTIALS_DIR = "credentials"
TLS_DIR = "tls"
OPERATOR_DEVICE = "admin"
PASSWORD_BYTES = 24


class SecurityError(AntreanError):
    """Credentials or broker access files cannot be made or read."""


@dataclass(frozen=True)
class Credentials:
    """A device's MQTT username and password."""

    username: str
    password: str


def username_for(role: Role, device: str) -> str:
    """Return the MQTT username of a device; operators share one login."""
    if role is Role.OPERATOR:
        device = OPERATOR_DEVICE
    return f"{role.value}-{device}"


def site_devices(site: Site) -> list[tuple[Role, str]]:
    """Return every (role, device id) that connects to the site's broker."""
    devices = [(Role.ENGINE, site.id), (Role.OPERATOR, OPERATOR_DEVICE)]
    devices += [(Role.KIOSK, kiosk.id) for kiosk in site.kiosks]
    devices += [(Role.COUNTER, str(counter.number)) for counter in site.counters]
    devices += [(Role.DISPLAY, display.id) for display in site.displays]
    return devices


def tls_ca_path(data_dir: Path) -> Path:
    """Return the CA certificate clients use to verify the broker's TLS listener."""
    return data_dir / TLS_DIR / "ca.crt"


def credentials_path(data_dir: Path, username: str) -> Path:
    """Return the file that holds one device's credentials."""
    return data_dir / CREDENTIALS_DIR / f"{username}.json"


def write_private(path: Path, text: str) -> None:
    # Created with mode 600 from the start, so the secret is never readable by others.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def generate_credentials(
    site: Site, data_dir: Path, *, rotate: bool = False
) -> list[str]:
    """Create credentials for every device that has none (all of them if rotate).

    Returns the usernames written.
    """
    written = []
    for role, device in site_devices(site):
        username = username_for(role, device)
        path = credentials_path(data_dir, username)
        if path.exists() and not rotate:
            continue
        secret = secrets.token_urlsafe(PASSWORD_BYTES)
        write_private(
            path, json.dumps({"username": username, "password": secret}) + "\n"
        )
        written.append(username)
    if written:
        _LOGGER.info(
            "Wrote credentials for %s in %s",
            ", ".join(written),
            data_dir / CREDENTIALS_DIR,
        )
    return written


def load_credentials(data_dir: Path, role: Role, device: str) -> Credentials | None:
    """Return a device's credentials from the data directory, or None if it has none."""
    path = credentials_path(data_dir, username_for(role, device))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(str(data["username"]), str(data["password"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SecurityError(
            f"cannot read the credentials in {path}: {exc}. "
            "Recreate them with `antrean broker credentials --rotate`."
        ) from exc


def acl_text(site: Site) -> str:
    """Return Mosquitto ACL rules: each device reaches only its own topics."""
    topics = Topics(site.id)
    root = topics.root
    # Kiosks and displays tell people when the engine is down, so they may see its presence.
    engine_status = topics.status(Role.ENGINE, site.id)
    rules = [
        f"# Written by antrean from the site file {site.source}; changes are overwritten."
    ]

    def user(role: Role, device: str, *lines: str) -> None:
        rules.append("")
        rules.append(f"user {username_for(role, device)}")
        rules.extend(lines)
        rules.append(f"topic write {topics.status(role, device)}")

    user(
        Role.ENGINE,
        site.id,
        f"topic read {root}/cmd/#",
        f"topic write {topics.state}",
        f"topic write {root}/event/#",
        f"topic write {root}/reply/#",
        f"topic write {root}/print/#",
        f"topic read {root}/status/#",
    )
    rules += ["", f"user {username_for(Role.OPERATOR, OPERATOR_DEVICE)}"]
    rules += [
        f"topic write {root}/cmd/operator/#",
        f"topic read {root}/#",
        f"topic write {root}/status/operator/#",
    ]
    for kiosk in site.kiosks:
        user(
            Role.KIOSK,
            kiosk.id,
            f"topic write {topics.command(Role.KIOSK, kiosk.id)}",
            f"topic read {topics.state}",
            f"topic read {engine_status}",
            f"topic read {topics.print_request(kiosk.id)}",
        )
    for counter in site.counters:
        device = str(counter.number)
        user(
            Role.COUNTER,
            device,
            f"topic write {topics.command(Role.COUNTER, device)}",
            f"topic read {topics.state}",
            f"topic read {root}/event/#",
            f"topic read {root}/status/#",
        )
    for display in site.displays:
        user(
            Role.DISPLAY,
            display.id,
            f"topic read {topics.state}",
            f"topic read {root}/event/#",
            f"topic read {engine_status}",
        )
    # Every user may read the replies addressed to its own username, and no others.
    rules += ["", f"pattern read {root}/reply/%u/#", ""]
    return "\n".join(rules)


def write_access_files(
    site: Site, data_dir: Path, directory: Path
) -> tuple[Path, Path]:
    """Write Mosquitto's password file (hashed) and ACL; return their paths."""
    generate_credentials(site, data_dir)
    lines = []
    for role, device in site_devices(site):
        credentials = load_credentials(data_dir, role, device)
        if credentials is None:
            raise SecurityError(
                f"credentials of {role.value} {device} disappeared while writing the password file"
            )
        lines.append(f"{credentials.username}:{credentials.password}")
    password_file = directory / "passwords"
    write_private(password_file, "\n".join(lines) + "\n")
    _hash_password_file(password_file)
    acl_file = directory / "acl"
    write_private(acl_file, acl_text(site))
    return password_file, acl_file


def _hash_password_file(path: Path) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    try:
        subprocess.run(
            [tool, "-U", str(path)], check=True, capture_output=True, timeout=60
        )
    except FileNotFoundError as exc:
        path.unlink(missing_ok=True)
        raise SecurityError(
            "mosquitto_passwd is not installed. Install it with: sudo apt-get install mosquitto"
        ) from exc
    except subprocess.CalledProcessError as exc:
        path.unlink(missing_ok=True)
        raise SecurityError(
            f"mosquitto_passwd failed on {path}: {exc.stderr.decode(errors='replace').strip()}"
        ) from exc
