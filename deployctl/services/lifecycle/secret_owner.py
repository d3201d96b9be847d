"""Secret files handed to the image's own user (plan/pipeline/image_user.py): by the host's chown
where it may, by a chown container where it may not. Deploys and accessories both."""

from __future__ import annotations

from ...adapters.connector import check
from ...plan.lifecycle import docker_commands as dc
from ...plan.pipeline import image_user as iu


def hand_to_image_user(conn, image: str, host_dir: str) -> None:  # type: ignore[no-untyped-def]
    """Nothing for a root image. Else the uid by number (a numeric USER, or the name looked
    up in the image's account files without starting it) and `chown -R` on the host; the
    container's chown when that cannot be done (the host user is not root, no such account)."""
    user = check(conn, dc.image_user(image)).strip()
    if iu.is_root(user):
        return
    owner = iu.numeric_owner(user)
    if owner is None:
        accounts = conn.run(iu.read_accounts(image))
        owner = iu.resolve_owner(user, accounts.stdout) if accounts.ok else None
    if owner is not None and conn.run(iu.host_chown(owner, host_dir)).ok:
        return
    check(conn, dc.chown_secrets(image, user, host_dir))
