"""`database.rds_instance`: the RDS endpoint looked up at deploy time and laid over the
environment's env (as DATABASE_HOST / DATABASE_PORT by default), so deploy.toml never
hard-codes an address that changes when the database is restored or replaced."""

from __future__ import annotations

from ...config import LoadedConfig
from ...errors import ConfigError, ConnectError
from ...plan.cloud.aws import database_env, region_for


def with_database_endpoint(loaded: LoadedConfig, env_name: str) -> LoadedConfig:
    """`loaded` with the environment's env extended by the RDS endpoint; unchanged when the
    environment names no RDS instance. Called before any host is touched."""
    from ...adapters.aws import db_instance_endpoint

    from ...plan.cloud.infra import derived_database

    environment = loaded.environment(env_name)
    # Its own database table, or the RDS instance its infra stack made.
    database = derived_database(loaded.config.app, env_name, environment)
    if database is None:
        return loaded
    region = region_for(loaded.config, environment)
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
    # Pydantic's model_copy skips validation: the env keys were checked not to clash (models.py).
    env = {**environment.env, **database_env(database, address, port)}
    environments = {**loaded.config.environments, env_name: environment.model_copy(update={"env": env})}
    return LoadedConfig(loaded.path, loaded.config.model_copy(update={"environments": environments}))
