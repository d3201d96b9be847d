"""`deployctl infra`: the environment's AWS network, hosts and database as one CloudFormation
stack rendered from `[environments.<env>.infra]` (plan/cloud/infra_template.py).

plan: a change set, shown and deleted (nothing changes). apply: the same change set, refused
(exit 6) when it would replace or remove the database unless allowed, else executed and
followed through the stack's events; the database password is generated into the
environment's secret source first. destroy: refused while the database has deletion
protection. The AWS calls are in adapters/cloudformation.py.
"""

from __future__ import annotations

import os
import secrets as random_secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config.models import Environment, Infra, _ssh_public_key
from ...errors import ConfigError, DeployError
from ...events import Emit, Message, StepDone, StepProgress, StepStarted
from ...plan.cloud.aws import region_for
from ...plan.cloud.infra import PlannedChange, classify, derived_database, infra_spec, no_changes_reason, password_store, security_problems, stack_tags
from ...plan.cloud.infra_https import certificate_problem
from ...plan.cloud.infra_template import InfraSpec, render_template, template_text
from ...secrets import redactor
from ..env import Env

PASSWORD_ALPHABET = string.ascii_letters + string.digits  # no '/', '@', '"' or space: RDS refuses those
PASSWORD_LENGTH = 32
BUSY = "_IN_PROGRESS"
FAILED_CREATE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED")
GOOD = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
STEP = "infra"


@dataclass(frozen=True)
class InfraTarget:
    """One environment's stack: where it lives and what it should hold."""

    env_name: str
    environment: Environment
    infra: Infra
    region: str | None
    spec: InfraSpec
    template: dict[str, Any]

    @property
    def stack_name(self) -> str:
        return self.spec.stack_name

    @property
    def body(self) -> str:
        return template_text(self.template)


@dataclass
class InfraPlan:
    stack_name: str
    region: str | None
    exists: bool
    changes: list[PlannedChange] = field(default_factory=list)

    @property
    def destroys_data(self) -> list[PlannedChange]:
        return [c for c in self.changes if c.destroys_data]

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack_name, "region": self.region, "exists": self.exists,
                "changes": [c.to_dict() for c in self.changes]}


def _key(env_name: str, name: str) -> str:
    return f"environments.{env_name}.infra.{name}"


def public_key(env: Env, infra: Infra) -> str:
    if infra.ssh_public_key is not None:
        return infra.ssh_public_key
    assert infra.ssh_public_key_file is not None
    path = Path(os.path.expanduser(infra.ssh_public_key_file))
    path = path if path.is_absolute() else env.loaded.root / path
    key = _key(env.name, "ssh_public_key_file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{key}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}"],
                          hint="give the deploy key's public half (ssh-keygen -y -f KEY > KEY.pub)") from None
    try:
        return _ssh_public_key(text.strip())
    except ValueError as exc:
        raise ConfigError([f"{key}: {path}: {exc}"]) from None


def target_for(env: Env) -> InfraTarget:
    """The rendered template of the environment's infra table; ConfigError (exit 3) when
    there is none or its key file cannot be read."""
    env_name, environment = env.name, env.settings
    infra = environment.infra
    if infra is None:
        raise ConfigError([f"environments.{env_name}: no infra table"],
                          hint=f"add [environments.{env_name}.infra] to deploy.toml (docs/infra.md)")
    config = env.config
    port = env.proxy_port
    if port == 0:
        raise ConfigError([f"environments.{env_name}.proxy_port: 0 (any free port) cannot be opened in a security "
                           "group; give a fixed port"])
    lb = infra.load_balancer
    if lb is not None:
        missing = certificate_problem(lb, config.proxy.hosts, f"environments.{env_name}.infra.load_balancer")
        if missing:
            raise ConfigError([missing], hint="docs/infra.md#https")
    spec = infra_spec(config.app, env_name, environment, public_key(env, infra),
                      proxy_port=port, proxy_healthcheck=config.proxy.healthcheck, proxy_hosts=config.proxy.hosts)
    template = render_template(spec)
    problems = security_problems(template, proxy_port=port,
                                 listener_ports=[lb.port, lb.https_port] if lb else [],
                                 plain_http=bool(lb and lb.plain_http))
    if problems:  # the renderer never makes these; a guard against a future edit that would
        raise ConfigError([f"environments.{env_name}.infra: the template breaks a security rule: {p}" for p in problems])
    return InfraTarget(env_name, environment, infra, region_for(config, environment), spec, template)


# -- plan -------------------------------------------------------------------------------------

def _change_set(target: InfraTarget, emit: Emit) -> tuple[InfraPlan, str | None, dict | None]:
    """Create the change set and read it: (plan, change set id or None when nothing changes,
    the stack as it was)."""
    from ...adapters import cloudformation as cfn

    region, name = target.region, target.stack_name
    emit(StepStarted(STEP, f"change set for stack {name}" + (f" in {region}" if region else "")))
    stack = cfn.describe_stack(region, name)
    status = stack["StackStatus"] if stack else None
    if status in FAILED_CREATE:
        raise DeployError(f"stack {name} failed to create ({status}) and must be deleted before another try",
                          hint=f"deployctl infra destroy --env {target.env_name}")
    if status and status.endswith(BUSY) and status != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {name} is busy ({status})", hint="wait until the operation ends, then try again")
    create = stack is None or status == "REVIEW_IN_PROGRESS"
    old = None if create else cfn.stack_template(region, name)
    change_set_id = cfn.create_change_set(region, name, f"deployctl-{time.strftime('%Y%m%d-%H%M%S')}", target.body,
                                          create=create, tags=stack_tags(target.spec.app, target.env_name))
    answer = cfn.wait_change_set(region, change_set_id)
    plan = InfraPlan(name, region, exists=not create)
    if answer.get("Status") == "FAILED":
        if no_changes_reason(answer.get("StatusReason")):
            cfn.delete_change_set(region, change_set_id)
            emit(StepDone(STEP, "no changes"))
            return plan, None, stack
        cfn.delete_change_set(region, change_set_id)
        raise DeployError(f"CloudFormation refused the change set for {name}: {answer.get('StatusReason')}")
    plan.changes = classify(answer.get("Changes", []), old, target.template)
    emit(StepDone(STEP, f"{len(plan.changes)} change{'s' if len(plan.changes) != 1 else ''}"))
    return plan, change_set_id, stack


def _discard(target: InfraTarget, change_set_id: str | None, stack_before: dict | None) -> None:
    """Leave nothing behind: the change set, and the empty stack a CREATE change set made."""
    from ...adapters import cloudformation as cfn

    if change_set_id is not None:
        cfn.delete_change_set(target.region, change_set_id)
    if stack_before is None:
        stack = cfn.describe_stack(target.region, target.stack_name)
        if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
            cfn.delete_stack(target.region, target.stack_name)


def plan(env: Env, emit: Emit) -> InfraPlan:
    """What apply would change, from a change set that is deleted again."""
    target = target_for(env)
    result, change_set_id, before = _change_set(target, emit)
    _discard(target, change_set_id, before)
    return result


# -- apply ------------------------------------------------------------------------------------

def _generate_password() -> str:
    value = "".join(random_secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
    redactor.add(value)
    return value


def ensure_password(target: InfraTarget, emit: Emit) -> bool:
    """The database's master password in the environment's secret source: generated and
    stored when absent, never overwritten, never shown. True when generated now."""
    from ...adapters import cloudformation as cfn

    store = password_store(target.environment)
    if store is None:
        return False
    value = _generate_password()
    if store.kind == "ssm":
        stored = cfn.ssm_put_new(target.region, store.location, value)
    else:
        stored = cfn.secretsmanager_put_key(target.region, store.location, store.key, value)
    emit(StepDone("database password", f"generated into {store.describe()}" if stored
                  else f"kept: already in {store.describe()}"))
    return stored


def _event_line(event: dict) -> str:
    reason = event.get("ResourceStatusReason")
    return (f"{event.get('LogicalResourceId')} ({event.get('ResourceType')}) {event.get('ResourceStatus')}"
            + (f": {reason}" if reason else ""))


def follow(target: InfraTarget, stack_id: str, emit: Emit, step: str, seen: set[str]) -> tuple[dict | None, list[str]]:
    """Follow the stack's events to the end of its operation: (final stack, failure lines)."""
    from ...adapters import cloudformation as cfn

    failures: list[str] = []

    def on_event(event: dict) -> None:
        line = _event_line(event)
        if str(event.get("ResourceStatus", "")).endswith("_FAILED"):
            failures.append(line)
            emit(Message(line, level="error"))
        else:
            emit(StepProgress(step, line))

    every = float(os.environ.get("DEPLOYCTL_INFRA_POLL_SECONDS") or 5)
    return cfn.wait_stack(target.region, stack_id, on_event, seen=seen, every=every), failures


def apply(env: Env, emit: Emit, *, allow_replace: bool = False) -> tuple[InfraPlan, dict[str, str]]:
    """Make the stack match deploy.toml: (the plan applied, the stack's outputs)."""
    from ...adapters import cloudformation as cfn

    target = target_for(env)
    result, change_set_id, before = _change_set(target, emit)
    if change_set_id is None:
        return result, stack_outputs(env)
    dangerous = result.destroys_data
    if dangerous and not allow_replace:
        _discard(target, change_set_id, before)
        what = ", ".join(f"{c.logical_id} ({c.action}{': ' + c.reason if c.reason else ''})" for c in dangerous)
        raise DeployError(f"refused: this change would {dangerous[0].action} the database: {what}; nothing was changed",
                          hint="a replaced database starts empty (CloudFormation keeps a final snapshot); rerun with "
                               "--allow-replace if that is what you want")
    ensure_password(target, emit)
    seen = {e["EventId"] for e in cfn.stack_events(target.region, target.stack_name)} if before else set()
    emit(StepStarted("infra apply", f"executing the change set on {target.stack_name}"))
    cfn.execute_change_set(target.region, change_set_id)
    stack, failures = follow(target, target.stack_name, emit, "infra apply", seen)
    status = stack["StackStatus"] if stack else "DELETED"
    if status not in GOOD:
        raise DeployError(f"stack {target.stack_name} ended {status}" + (": " + "; ".join(failures[:5]) if failures else ""),
                          hint="CloudFormation rolled the change back; see the events above")
    emit(StepDone("infra apply", f"stack {target.stack_name} {status}"))
    return result, stack_outputs(env)


# -- outputs, destroy ---------------------------------------------------------------------------

def stack_outputs(env: Env) -> dict[str, str]:
    """The stack's outputs. The database's address and port come from DescribeDBInstances
    when the stack's own outputs lack them (moto leaves GetAtt Endpoint.Address empty)."""
    from ...adapters import cloudformation as cfn

    env_name = env.name
    target = target_for(env)
    stack = cfn.describe_stack(target.region, target.stack_name)
    if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        raise ConfigError([f"environments.{env_name}.infra: there is no stack {target.stack_name!r}"
                           + (f" in {target.region}" if target.region else "")],
                          hint=f"deployctl infra apply --env {env_name}")
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    database = derived_database(env.config.app, env_name, target.environment)
    if target.infra.database is not None and database is not None and not outputs.get("DatabaseAddress"):
        found = cfn.db_instance(target.region, database.rds_instance) or {}
        endpoint = found.get("Endpoint") or {}
        outputs.setdefault("DatabaseIdentifier", database.rds_instance)
        if endpoint.get("Address"):
            outputs["DatabaseAddress"] = endpoint["Address"]
            outputs["DatabasePort"] = str(endpoint.get("Port", ""))
    if target.infra.database is not None and not outputs.get("DatabasePasswordLocation"):
        store = password_store(target.environment)
        outputs["DatabasePasswordLocation"] = store.describe() if store else ""
    return dict(sorted(outputs.items()))


def destroy(env: Env, emit: Emit) -> bool:
    """Delete the stack. Refused (exit 6) while its database has deletion protection. False
    when there was no stack."""
    from ...adapters import cloudformation as cfn

    env_name = env.name
    target = target_for(env)
    stack = cfn.describe_stack(target.region, target.stack_name)
    if stack is None:
        emit(Message(f"there is no stack {target.stack_name}; nothing to destroy"))
        return False
    database = derived_database(env.config.app, env_name, target.environment)
    if target.infra.database is not None and database is not None:
        found = cfn.db_instance(target.region, database.rds_instance)
        if found and found.get("DeletionProtection"):
            raise DeployError(f"refused: the database {database.rds_instance} has deletion protection; nothing was "
                              "deleted", hint=f"set environments.{env_name}.infra.database.deletion_protection = false "
                                              "and run infra apply first, if you really mean to delete it")
    seen = {e["EventId"] for e in cfn.stack_events(target.region, stack["StackId"])}
    emit(StepStarted("infra destroy", f"deleting stack {target.stack_name}"))
    cfn.delete_stack(target.region, target.stack_name)
    final, failures = follow(target, stack["StackId"], emit, "infra destroy", seen)
    status = final["StackStatus"] if final else "DELETE_COMPLETE"
    if status != "DELETE_COMPLETE":
        raise DeployError(f"stack {target.stack_name} ended {status}" + (": " + "; ".join(failures[:5]) if failures else ""))
    emit(StepDone("infra destroy", f"stack {target.stack_name} deleted"))
    return True
