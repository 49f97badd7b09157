"""`conveyor init`: inspect an application repository, write conveyor.toml and a CI file.

What is inspected (best effort; every guess is written as a commented value that the user can
check, and what could not be found is said in a comment and in the command's output):

* the Dockerfile: the port it EXPOSEs, the path its HEALTHCHECK requests, where it COPYs the
  migrations directory;
* the compose file (docker-compose.yml, compose.yaml, ...): the PostgreSQL service (image, user,
  database, password variable, published port) and the app service (build context, Dockerfile,
  build args, published port, image name);
* the project's own migration tool (`alembic.ini`, Django's `manage.py`, Rails' `bin/rails`,
  Prisma's `schema.prisma`: `migrations.command` and its status, SQL and revert commands), else
  a Diesel-layout migrations directory (`<version>_<name>/up.sql`, `diesel.toml` honoured);
* the app's health route (the HEALTHCHECK's path, else a common health path routed in the code);
* the test suite (pytest, cargo, npm, go, make) for the environments' `test_command`.

Secrets are never copied: every password is a reference (`{ env = "VAR" }`). The one value
taken over is a local-development default password that the compose file itself declares
(`${VAR:-default}`), so that `conveyor up` and `docker compose up` agree; it is marked as such.

The CI files are `string.Template` files in `conveyor/templates` with `@@{name}` placeholders
(`$` and `${{ }}` belong to the shells and CI systems). No YAML library is needed at runtime: the
compose file is read with PyYAML's safe loader.

Modules: `facts` (what was found), `detect` (inspect_project) with `dockerfile`, `compose` and
`yaml_text` (compose YAML and interpolation); `config_text` (conveyor.toml); `ci_needs` and
`ci_files` (the CI files); `write` (plan_files, write_files, init_project).
"""

from conveyor.init.ci_files import (
                                    CI_FILES,
                                    CI_SYSTEMS,
                                    render_cloudbuild,
                                    render_github,
                                    render_gitlab,
)
from conveyor.init.ci_needs import CiNeeds, ci_needs
from conveyor.init.config_text import render_config
from conveyor.init.detect import inspect_project
from conveyor.init.facts import Facts
from conveyor.init.write import FileExistsRefused, InitResult, init_project, plan_files, write_files
from conveyor.init.yaml_text import (
                                    compose_variables,
                                    parse_yaml_subset,
                                    resolve_defaults,
                                    to_conveyor_interpolation,
)

__all__ = ["CI_FILES", "CI_SYSTEMS", "CiNeeds", "Facts", "FileExistsRefused", "InitResult",
           "ci_needs", "compose_variables", "init_project", "inspect_project",
           "parse_yaml_subset", "plan_files", "render_cloudbuild", "render_config",
           "render_github", "render_gitlab", "resolve_defaults", "to_conveyor_interpolation",
           "write_files"]
