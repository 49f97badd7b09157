"""Typed model of `conveyor.toml`.

Loading is in three stages, each with errors that name the file and the key path:

1. TOML parsing (tomllib; syntax errors carry line and column);
2. `${VAR}` / `${VAR:-default}` interpolation of string values from the process environment
   (`$$` is a literal `$`). Global sections are interpolated strictly. An environment section
   that references unset variables is kept *deferred*: it only becomes an error when that
   environment is used, so `conveyor up` works on a laptop without the CI's dev/prod variables;
3. validation with pydantic (unknown keys are errors, so a typo never passes silently).

Secrets are never literal: a key that holds a secret takes `{ env = "VAR" }` or
`{ file = "path" }` and is only read when needed (`SecretRef.resolve`).

    secret        Model (the base of every table), SecretRef
    app           [app] (+ HealthCheck), [migrations], [registry]
    database      ComposeDatabase, ContainerDatabase, UrlDatabase (`kind = ...`)
    environment   [environments.NAME] (+ HttpCheck, BackupConfig)
    project       Config: the loaded file, names and URLs derived from it, unset secrets
    values        the stricter value types (no bool as a number, finite seconds, names, URLs)
    interpolate   ${VAR} interpolation
    validation    pydantic errors as one ConfigError naming each key
    loading       find_config, load_config
"""

from conveyor.config.app import AppConfig, HealthCheck, MigrationsConfig, RegistryConfig
from conveyor.config.database import ComposeDatabase, ContainerDatabase, Database, UrlDatabase
from conveyor.config.environment import BackupConfig, EnvironmentConfig, HttpCheck
from conveyor.config.loading import CONFIG_FILE, find_config, load_config
from conveyor.config.project import Config, RootConfig, UnsetSecret
from conveyor.config.secret import Model, SecretField, SecretRef
from conveyor.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "AppConfig",
    "BackupConfig",
    "ComposeDatabase",
    "Config",
    "ConfigError",
    "ContainerDatabase",
    "Database",
    "EnvironmentConfig",
    "HealthCheck",
    "HttpCheck",
    "MigrationsConfig",
    "Model",
    "RegistryConfig",
    "RootConfig",
    "SecretField",
    "SecretRef",
    "UnsetSecret",
    "UrlDatabase",
    "find_config",
    "load_config",
]
