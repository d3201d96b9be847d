"""An InitPlan as a commented deploy.toml (written by hand: comments are the point). Pure.

Strings are written as JSON strings, which are valid TOML basic strings (the same escapes).
tomllib must read the text back as `init_model.to_data(plan)`; a unit test holds that.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from .init_model import AccessoryDraft, InitPlan, ServiceDraft

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+\Z")
RULE = "# " + "-" * 88


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in v):  # no TOML (nor UTF-8) can hold one
            raise ValueError(f"{v!r} holds a lone surrogate character and cannot be written to TOML")
        # json leaves DEL as it is; TOML wants every control character but tab escaped.
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def key(k: str) -> str:
    return k if BARE_KEY.match(k) else value(k)


def comment_text(text: str) -> str:
    """Text copied from the project (compose strings, file names) made safe inside a comment.

    A comment ends at a newline, and what follows is read as TOML: a healthcheck string with
    "\\n[environments.local.env]\\n..." in it injected a table (security review). TOML also
    refuses control characters in a comment. So every control, surrogate and line or
    paragraph separator character is written as an escape, and a backslash as two, to keep
    the escapes unambiguous."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c in _COMMENT_ESCAPES:
            out.append(_COMMENT_ESCAPES[c])
        elif unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


_COMMENT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def comment(text: str) -> str:
    """A whole comment line."""
    return f"# {comment_text(text)}" if text else "#"


def line(k: str, v: Any, note: str | None = None) -> str:
    text = f"{key(k)} = {value(v)}"
    return f"{text}  # {comment_text(note)}" if note else text


def _table(out: list[str], name: str, entries: dict[str, Any]) -> None:
    if entries:
        out.append(f"\n[{name}]")
        out.extend(line(k, entries[k]) for k in sorted(entries))


def _service(out: list[str], s: ServiceDraft) -> None:
    out.append(f"\n[services.{s.name}]")
    out.append(comment(f"from {s.source}"))
    out.append(line("context", s.context, "build context, relative to this file"))
    if s.dockerfile != "Dockerfile":
        out.append(line("dockerfile", s.dockerfile, "relative to the context"))
    if s.target:
        out.append(line("target", s.target, "the Dockerfile stage that ships"))
    out.append(line("port", s.port, f"where it listens in its container ({s.port_source})"))
    if s.routed:
        out.append(line("routed", True, "the proxy sends the app's traffic here"))
    if s.secrets:
        out.append(line("secrets", s.secrets, "files at /run/secrets/NAME, values from the secret source"))
    _table(out, f"services.{s.name}.build_args", s.build_args)
    _table(out, f"services.{s.name}.env", s.env)
    out.append(f"\n[services.{s.name}.healthcheck]")
    out.extend(comment(c) for c in s.health_comment)
    for k in ("type", "path", "command"):
        if k in s.health:
            out.append(line(k, s.health[k]))


def _accessory(out: list[str], a: AccessoryDraft, app: str) -> None:
    out.append(f"\n[accessories.{a.name}]")
    out.append(comment(f"from {a.source}"))
    if a.image is not None:
        out.append(line("image", a.image))
    if a.build is not None:
        out.append(line("build", a.build, "built with the services"))
        if a.dockerfile != "Dockerfile":
            out.append(line("dockerfile", a.dockerfile))
    if a.port is not None:
        out.append(line("port", a.port, "where it listens on the app's network (never published)"))
    if a.volumes:
        out.append(comment(f"named volumes: Docker volume {app}-<env>-{a.name}-<name>, kept across deploys"))
        out.append(line("volumes", a.volumes))
    if a.files:
        out.append("# files from the project, uploaded and mounted read-only (an init script runs on first start only)")
        out.append(line("files", a.files))
    if a.secrets:
        out.append(line("secrets", a.secrets))
    if a.command is not None:
        out.append(line("command", a.command, "arguments after the image"))
    _table(out, f"accessories.{a.name}.env", a.env)
    if a.health_command is not None:
        out.append(f"\n[accessories.{a.name}.healthcheck]")
        out.append(line("command", a.health_command, "from compose's healthcheck"))


def render(plan: InitPlan) -> str:
    secrets = plan.secret_names
    routed = next(s for s in plan.services if s.routed)
    out = [
        comment(f"deploy.toml for {plan.app}: written by `deployctl init` from {plan.source}."),
        "# Review it before the first deploy; what init could not infer is listed in the report it",
        "# printed, and in the comments below. Every key: docs/configuration.md; this file: docs/init.md.",
        "#",
        "# Secrets never live in this file. `{{ secret.NAME }}` in an env value is read from the",
        "# environment's secret source when deploying (secrets = \"env\": the variable NAME in",
        "# deployctl's own environment) and reaches the container through a 0600 env file.",
    ]
    if secrets:
        out.append(comment(f"This file reads: {', '.join(secrets)}."))
    out += [
        "#",
        "# On this machine:",
        *(comment(f"  export {name}=...") for name in secrets),
        "#   deployctl build && deployctl deploy --env local",
        comment(f"  then open http://127.0.0.1:{plan.proxy_port or '<port shown by deploy>'}/"),
        "",
        line("app", plan.app, "names images, containers, networks and volumes"),
        "",
        RULE,
        "# Services: built from your code, a new container of each per release. On each",
        "# release's network they reach each other by these names, as compose services did;",
        "# only the routed one is reached from outside, through deployctl's proxy.",
        "# deployctl test: give a service a test stage (test_target = \"STAGE\") or a",
        "# [services.NAME.test] command = [...] run in its image; see docs/configuration.md.",
        RULE,
    ]
    for s in plan.services:
        _service(out, s)
    out += ["", RULE,
            comment(f"Proxy: deployctl's own nginx sits in front of the routed service ({routed.name}) and switches"),
            "# it to each new release once its health check passes, with no downtime.",
            comment(f"Routed service: {routed.name} ({plan.routed_reason or 'the only service'}).")]
    if plan.replaced_proxy:
        out.append(comment(f"It replaces compose's {', '.join(plan.replaced_proxy)}: that service is not deployed."))
    out += ["# The defaults suit most apps; to change them, uncomment:",
            "# [proxy]",
            "# max_body_size = \"10m\"     # largest request body (uploads); nginx's default is 1m",
            "# read_timeout = 60          # seconds to wait for the app's answer",
            RULE]
    if plan.accessories:
        out += ["", RULE,
                "# Accessories: long-lived containers beside the app (its database). A deploy starts",
                "# them when absent and never recreates them; their data stays in named volumes.",
                "# `deployctl accessory status|logs|remove NAME` manages them.",
                RULE]
        for a in plan.accessories:
            _accessory(out, a, plan.app)
    out += ["", RULE,
            "# Environments: where the app runs. `local` is this machine's Docker engine (no",
            "# registry needed). For staging or production, add a [registry] (images are pushed",
            "# there and the hosts pull them) and an ssh environment, for example:",
            "#",
            "#   [registry]",
            "#   server = \"registry.example.com\"",
            "#",
            "#   [environments.production]",
            "#   target = \"ssh\"",
            "#   hosts = [\"10.0.1.10\", \"10.0.1.11\"]",
            comment(f"  secrets = \"ssm:/{plan.app}/production/\"   # or secretsmanager:ID, or env")]
    if plan.accessories:
        out.append(comment(f"  accessories = {value([a.name for a in plan.accessories])}"
                           "   # or a managed database instead: drop it and point the env at it"))
    out += [RULE,
            "",
            "[environments.local]",
            line("target", "local"),
            line("proxy_port", plan.proxy_port,
                 f"the app answers on this port ({plan.proxy_port_source})" if plan.proxy_port
                 else f"any free port ({plan.proxy_port_source})"),
            line("secrets", "env", "{{ secret.NAME }} values come from deployctl's environment")]
    if plan.accessories:
        out.append(line("accessories", [a.name for a in plan.accessories], "booted before each deploy"))
    return "\n".join(out) + "\n"
