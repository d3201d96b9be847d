"""`database.rds_instance`: the RDS endpoint looked up at deploy time and laid over the
environment's env (as DATABASE_HOST / DATABASE_PORT by default), so deploy.toml never
hard-codes an address that changes when the database is restored or replaced."""

from __future__ import annotations

from ...errors import ConfigError, ConnectError
from ...plan.cloud.aws import database_env, region_for
from ..env import Env


def with_database_endpoint(env: Env) -> Env:
    """`env` with its env extended by the RDS endpoint (a new Env: services/env.py says why);
    unchanged when the environment names no RDS instance. Called before any host is touched."""
    from ...adapters.aws import db_instance_endpoint

    from ...plan.cloud.infra import derived_database

    env_name, environment = env.name, env.settings
    # Its own database table, or the RDS instance its infra stack made.
    database = derived_database(env.config.app, env_name, environment)
    if database is None:
        return env
    region = region_for(env.config, environment)
    found = db_instance_endpoint(region, database.rds_instance)
    in_region = f" in {region}" if region else ""
    key = (f"environments.{env_name}.database.rds_instance" if environment.database is not None
           else f"environments.{env_name}.infra.database")
    if found is None:
        raise ConfigError([f"{key}: there is no RDS DB instance {database.rds_instance!r}{in_region}"],
                          hint="check the instance identifier and the environment's aws_region"
                          if environment.database is not None else f"deployctl infra apply --env {env_name}")
    address, port, status = found
    if not address or not port:
        raise ConnectError(f"RDS DB instance {database.rds_instance!r}{in_region} has no endpoint yet "
                           f"(status {status})", hint="wait until it is available, then deploy again")
    return env.with_env_values(database_env(database, address, port))
