"""Host keys as data for `deployctl hosts trust`: fingerprints as OpenSSH prints them, the
known_hosts lines deployctl writes, the keys cloud-init publishes on an EC2 console, and the
decision which scanned keys may be trusted. No I/O: services/host_keys.py scans and writes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

KNOWN_HOSTS_DIR = "deployctl/known_hosts"  # under $XDG_CONFIG_HOME (default ~/.config)
CONSOLE_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
# One public key line: its type, its base64 blob (a comment may follow). cloud-init prefixes
# console lines with a timestamp on some images, so the match is not anchored to the line start.
KEY_LINE = re.compile(r"\b((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+([A-Za-z0-9+/]+={0,2})(?=\s|\Z)")
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


@dataclass(frozen=True)
class HostKey:
    key_type: str  # ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa...
    blob: str  # base64, as in a known_hosts line

    @property
    def fingerprint(self) -> str:
        return fingerprint(base64.b64decode(self.blob))


def fingerprint(blob: bytes) -> str:
    """`ssh-keygen -lf`'s SHA256 form: unpadded base64 of the key blob's SHA-256."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    """How OpenSSH (and paramiko) name a host in known_hosts: bare on port 22, else [host]:port."""
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_text(keys: dict[tuple[str, int], HostKey]) -> str:
    """The whole file deployctl owns for one environment: one line per host, sorted."""
    return "".join(f"{known_hosts_name(host, port)} {key.key_type} {key.blob}\n"
                   for (host, port), key in sorted(keys.items()))


def merged_known_hosts(existing: str, keys: dict[tuple[str, int], HostKey]) -> str:
    """A known_hosts file someone else maintains, with these hosts' lines replaced and every
    other line (other hosts, comments, hashed names, markers) kept as it was."""
    ours = {known_hosts_name(host, port) for host, port in keys}
    kept = []
    for line in existing.splitlines(keepends=True):
        fields = line.split()
        names = fields[0] if fields and not fields[0].startswith("@") else (fields[1] if len(fields) > 1 else "")
        if line.strip() and not line.lstrip().startswith("#") and ours & set(names.split(",")):
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    return "".join(kept) + known_hosts_text(keys)


def console_keys(output: str) -> list[HostKey]:
    """The public host keys cloud-init printed between its BEGIN/END SSH HOST KEY KEYS
    markers on the instance's console (the last boot's block wins: keys may be regenerated)."""
    blocks = CONSOLE_BLOCK.findall(output)
    if not blocks:
        return []
    keys = []
    for key_type, blob in KEY_LINE.findall(blocks[-1]):
        try:
            base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            continue  # a wrapped or garbled console line: not a key we can vouch for
        keys.append(HostKey(key_type, blob))
    return keys


def valid_fingerprint(text: str) -> bool:
    return FINGERPRINT.fullmatch(text) is not None


def unpinned(scanned: dict[str, HostKey], pinned: list[str]) -> list[str]:
    """The hosts whose scanned key is not among the fingerprints given on the command line
    (one per host, or one that every host shares), each with the fingerprint it offered."""
    allowed = set(pinned)
    return [f"{host} offered {key.key_type} {key.fingerprint}"
            for host, key in scanned.items() if key.fingerprint not in allowed]


def not_on_console(scanned: dict[str, HostKey], published: dict[str, list[HostKey]]) -> list[str]:
    """The hosts whose scanned key is not one their console published; a host that published
    nothing is refused too (its key cannot be checked)."""
    out = []
    for host, key in scanned.items():
        keys = published.get(host, [])
        if not keys:
            out.append(f"{host}: its console output holds no SSH host keys (cloud-init prints them at "
                       "first boot; the console keeps only recent output)")
        elif key not in keys:
            out.append(f"{host} offered {key.key_type} {key.fingerprint}, which its console did not publish "
                       f"(it published {', '.join(k.fingerprint for k in keys)})")
    return out
