"""Secret files handed to the image's own user (plan/pipeline/image_user.py): by the host's chown
where it may, by a chown container where it may not. Deploys and accessories both."""

from __future__ import annotations

from ...adapters.connector import ConnectionLost, check
from ...plan.lifecycle import docker_commands as dc
from ...plan.pipeline import image_user as iu


def hand_to_image_user(conn, image: str, host_dir: str, cache_file: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Nothing for a root image. Else the uid by number (a numeric USER, or the name looked
    up in the image's account files without starting it) and `chown -R` on the host; the
    container's chown when that cannot be done (the host user is not root, no such account).
    `cache_file`: where the owner of an image named by its content is remembered on the host
    (plan/pipeline/image_user.owner_record): a redeploy of that image asks the engine nothing."""
    remember = cache_file is not None and iu.content_address(image) is not None
    owner = iu.cached_owner(conn.read_file(cache_file), image) if remember else None
    user = None
    if owner is None:
        user = check(conn, dc.image_user(image)).strip()
        owner = iu.ROOT_OWNER if iu.is_root(user) else iu.numeric_owner(user)
        if owner is None:
            accounts = conn.run(iu.read_accounts(image))
            owner = iu.resolve_owner(user, accounts.stdout) if accounts.ok else None
        if owner is not None and remember:
            _remember(conn, cache_file, iu.owner_record(image, owner))  # type: ignore[arg-type]
    if owner == iu.ROOT_OWNER:
        return
    if owner is not None and conn.run(iu.host_chown(owner, host_dir)).ok:
        return
    # a remembered owner is the image's user by number: the container's chown takes it as well
    check(conn, dc.chown_secrets(image, user if user is not None else owner, host_dir))


def _remember(conn, path: str, record: bytes) -> None:  # type: ignore[no-untyped-def]
    """Best effort: a host that cannot keep the file (a full disk) asks the image again next time."""
    try:
        conn.put_file(path, record, 0o644)
    except ConnectionLost:
        raise
    except OSError:
        pass
