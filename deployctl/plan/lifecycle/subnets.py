"""Address space for release networks on a host (target local or ssh).

Every release gets its own bridge network (plan/lifecycle/names.Names.release_network), and Docker's
default address pools hold about 30 networks per engine (172.17-31.0.0/16, 192.168.x.0/20):
kept releases, a warm one and a few apps on one host used them up here ("could not find
an available, non-overlapping IPv4 address pool among the defaults", on the 31st). So a
release network takes a small subnet (SUBNET_PREFIX: 62 addresses, plenty for one
release's containers and its one-offs) from the environment's `release_subnet_pool`
(default DEFAULT_POOL: 1,024 of them; config/models.py checks the key); the app's own
network, which every kept release and the accessories join, takes a /24 of it, chosen here from what the engine already uses.
Docker itself refuses a subnet that overlaps another network's, so two deploys choosing
at once (other apps on the host, not under our lock) cannot share one: the loser chooses
again (services/lifecycle/switch.HostSwitch.ensure_network).
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Callable, Iterable, Iterator

from ...config.models import DEFAULT_SUBNET_POOL as DEFAULT_POOL
from ...config.models import SUBNET_PREFIX

_Network = ipaddress.IPv4Network
# The app's own network (the proxy, every kept release's containers, the accessories): a /24.
APP_SUBNET_PREFIX = 24


def parse_used(text: str) -> list[_Network]:
    """The subnets `docker network inspect` printed (IPv4 only; anything else is skipped)."""
    used = []
    for word in text.split():
        try:
            net = ipaddress.ip_network(word, strict=False)
        except ValueError:
            continue
        if isinstance(net, _Network):
            used.append(net)
    return used


def free_subnets(pool: str, used: Iterable[_Network], prefix: int = SUBNET_PREFIX) -> Iterator[str]:
    """The /`prefix` subnets of `pool` that overlap no network in `used`, lowest first."""
    taken = sorted(set(used), key=lambda n: (int(n.network_address), n.prefixlen))
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=max(prefix, ipaddress.ip_network(pool).prefixlen)):
        if not any(candidate.overlaps(net) for net in taken):
            yield str(candidate)


def pick_subnet(pool: str, used: Iterable[_Network], prefix: int = SUBNET_PREFIX, *, spread: int = 1,
                choose: Callable[[list[str]], str] | None = None) -> str | None:
    """The first free /`prefix` of `pool` (None: full); with `spread` > 1, `choose` among the
    first `spread` free ones: after losing a subnet to another deploy creating networks on the
    host at the same moment (every contender's "first free" is the same one, so with N of them
    the last would otherwise need N tries), a pick among several rarely meets another's
    (`choose`: random.choice in services/lifecycle/switch.py; this module stays pure)."""
    candidates = list(itertools.islice(free_subnets(pool, used, prefix), spread))
    if not candidates:
        return None
    return candidates[0] if spread <= 1 or choose is None else choose(candidates)


def capacity(pool: str) -> int:
    """How many release networks the pool holds."""
    return 2 ** (SUBNET_PREFIX - ipaddress.ip_network(pool).prefixlen)
