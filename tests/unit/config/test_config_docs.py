"""docs/config.md documents every key of the schema (so error hints point at the truth)."""

from pathlib import Path

from conveyor import config

DOC = (Path(__file__).resolve().parents[3] / "docs" / "config.md").read_text()


def test_every_key_is_documented():
    models = [config.AppConfig, config.HealthCheck, config.MigrationsConfig,
              config.RegistryConfig, config.EnvironmentConfig, config.ComposeDatabase,
              config.ContainerDatabase, config.UrlDatabase, config.BackupConfig,
              config.HttpCheck]
    missing = [f"{m.__name__}.{name}" for m in models for name in m.model_fields
               if f"`{name}" not in DOC and f".{name}]" not in DOC]
    assert not missing, f"undocumented keys: {missing}"
