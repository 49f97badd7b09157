"""The CI files: `string.Template` files in `conveyor/templates` with `@@{name}` placeholders.

(`$` and `${{ }}` belong to the shells and CI systems.)
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable
from importlib import resources

from conveyor.init.ci_needs import FILE_SECRETS, CiNeeds
from conveyor.init.config_text import toml_str
from conveyor.init.facts import Facts

CI_SYSTEMS = ("github", "gitlab", "cloudbuild")
CI_FILES = {
    "github": (".github/workflows/conveyor.yml",),
    "gitlab": (".gitlab-ci.yml",),
    "cloudbuild": ("cloudbuild.yaml", "cloudbuild-promote.yaml"),
}
JUNIT_FILE = "conveyor-junit.xml"
SUMMARY_FILE = "conveyor-summary.md"


class _Template(string.Template):
    delimiter = "@@"


def _template(name: str) -> _Template:
    text = resources.files("conveyor.templates").joinpath(name).read_text(encoding="utf-8")
    return _Template(text)


def _indent(lines: list[str], n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line else "" for line in lines)


def default_package_spec() -> str:
    """How the CI job installs conveyor (pip requirement); `conveyor init --package` overrides.

    Point it at where your conveyor comes from (a wheel URL, `git+https://...@vX.Y.Z`, your
    package index): a bare name on a public index could resolve to someone else's package.
    """
    from conveyor import __version__

    return os.environ.get("CONVEYOR_INIT_PACKAGE") or f"conveyor=={__version__}"


def _test_setup(facts: Facts) -> str:
    import shlex

    return shlex.join(facts.test_setup) if facts.test_setup else ""


def render_github(facts: Facts, needs: CiNeeds, package: str | None = None) -> str:
    def job(promote: bool) -> dict[str, str]:
        variables = needs.variables + (needs.prod_variables if promote else [])
        secrets = needs.secrets + (needs.prod_secrets if promote else [])
        env = [f"{n}: ${{{{ vars.{n} }}}}" for n, _ in variables]
        env += [f"{n}: ${{{{ secrets.{n} }}}}" for n in secrets]
        names = [n for n, _ in variables] + secrets
        return {
            "env": _indent(env, 10) if env else " " * 10 + "{}",
            "names": " ".join(names) or "CONVEYOR_NOTHING",
        }

    dev, prod = job(False), job(True)
    setup = _test_setup(facts)
    return _template("github.yml").substitute(
        app=facts.name,
        package=toml_str(package or default_package_spec()),
        dev_env=dev["env"], dev_names=dev["names"],
        prod_env=prod["env"], prod_names=prod["names"],
        test_setup=setup or "true  # nothing to install for the tests",
        secrets_list=_indent(_secret_doc(needs, "github"), 0),
        junit=JUNIT_FILE, summary=SUMMARY_FILE,
    )


def render_gitlab(facts: Facts, needs: CiNeeds, package: str | None = None) -> str:
    setup = _test_setup(facts)
    return _template("gitlab-ci.yml").substitute(
        app=facts.name,
        package=toml_str(package or default_package_spec()),
        test_setup=toml_str(setup or "true"),
        secrets_list=_indent(_secret_doc(needs, "gitlab"), 0),
        junit=JUNIT_FILE, summary=SUMMARY_FILE,
    )


def _secret_id(name: str) -> str:
    return name.lower().replace("_", "-")


def render_cloudbuild(facts: Facts, needs: CiNeeds, promote: bool = False,
                      package: str | None = None) -> str:
    """cloudbuild.yaml (feature branches: dev) or cloudbuild-promote.yaml (main: dev + prod).

    Two files, so that the feature-branch trigger never fetches the prod secrets: give the
    promote trigger its own service account (the only one allowed to read them) and an approval.
    """
    variables = needs.variables + (needs.prod_variables if promote else [])
    secrets = needs.secrets + (needs.prod_secrets if promote else [])
    env_lines = [f"- {n}=${{_{n}}}" for n, _ in variables]
    # empty = "not set": conveyor.toml's default applies (the defaults are listed above)
    subs = [f"_{n}: \"\"" for n, _ in variables]
    secret_env = ["CONVEYOR_SSH_KEY_DATA", "CONVEYOR_KNOWN_HOSTS_DATA"] + secrets
    available = []
    for s in ["CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS"] + secrets:
        env_name = s + "_DATA" if s in FILE_SECRETS else s
        available.append(f"- versionName: projects/$PROJECT_ID/secrets/{_secret_id(s)}"
                         f"/versions/latest")
        available.append(f"  env: {env_name}")
    names = [n for n, _ in variables] + secrets
    setup = _test_setup(facts)
    if promote:
        purpose = ["# For the trigger on the default branch (main), with \"Require approval\" on",
                   ("# the trigger and its own service account: the only one that may read "
                    "the prod"),
                   ("# secrets. After dev, `conveyor ci --promote` promotes the image digest "
                    "that just"),
                   "# passed dev to prod."]
    else:
        purpose = ["# For the trigger on every branch except the default one (branch regex such as",
                   "# ^main$ with \"invert regex\"). Its service account needs no prod secrets."]
    return _template("cloudbuild.yaml").substitute(
        app=facts.name,
        purpose="\n".join(purpose),
        package=toml_str(package or default_package_spec()),
        env_lines=_indent(env_lines, 6) if env_lines else "",
        substitutions=_indent(subs, 2),
        secret_env=_indent([f"- {s}" for s in secret_env], 6),
        available=_indent(available, 4),
        names=" ".join(names) or "CONVEYOR_NOTHING",
        test_setup=setup.replace("$", "$$") or "true",
        secrets_list=_indent(_secret_doc(needs, "cloudbuild", promote), 0),
        ci_args="--promote " if promote else "",
        timeout="3600s" if promote else "2700s",
        junit=JUNIT_FILE, summary=SUMMARY_FILE,
    )


def _secret_doc(needs: CiNeeds, system: str, promote: bool = True) -> list[str]:
    """The header comment that lists what to create in the CI system."""
    out = []
    if system == "github":
        out.append("#   secrets (Settings > Secrets and variables > Actions; put the prod-only "
                   "ones in")
        out.append("#   the `production` environment, so that only the promote job can read them):")
        out.append("#     CONVEYOR_SSH_KEY          the deploy user's private SSH key")
        out.append("#     CONVEYOR_KNOWN_HOSTS      known_hosts lines of the VMs (ssh-keyscan, "
                   "verified)")
        out.append("#     CONVEYOR_REGISTRY_USERNAME, CONVEYOR_REGISTRY_PASSWORD   (optional)")
        for s in needs.secrets + needs.prod_secrets:
            out.append(f"#     {s}")
        out.append("#   variables (... > Variables):")
        for n, d in needs.variables + needs.prod_variables:
            out.append(f"#     {n}" + (f"   (default {d})" if d else ""))
    elif system == "gitlab":
        out.append("#   Settings > CI/CD > Variables; mark them Masked, and Protected for "
                   "prod-only")
        out.append("#   ones (protected variables reach only protected branches such as main):")
        out.append("#     CONVEYOR_SSH_KEY          type File: the deploy user's private SSH key")
        out.append("#     CONVEYOR_KNOWN_HOSTS      type File: known_hosts lines of the VMs")
        out.append("#     CONVEYOR_REGISTRY_USERNAME, CONVEYOR_REGISTRY_PASSWORD   (optional; for "
                   "GitLab's")
        out.append("#       registry use $CI_REGISTRY_USER / $CI_REGISTRY_PASSWORD and "
                   "CONVEYOR_REGISTRY=$CI_REGISTRY_IMAGE)")
        for s in needs.secrets + needs.prod_secrets:
            out.append(f"#     {s}")
        for n, d in needs.variables + needs.prod_variables:
            out.append(f"#     {n}   (plain variable" + (f"; default {d})" if d else ")"))
    else:
        out.append("#   Secret Manager secrets (the build's service account needs "
                   "roles/secretmanager.secretAccessor):")
        prod = needs.prod_secrets if promote else []
        for s in ["CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS"] + needs.secrets + prod:
            out.append(f"#     {_secret_id(s):<28}-> ${s}" if s not in FILE_SECRETS else
                       f"#     {_secret_id(s):<28}-> written to a 0600 file, ${s} is its path")
        out.append("#   substitutions (set on the trigger):")
        for n, d in needs.variables + (needs.prod_variables if promote else []):
            out.append(f"#     _{n}" + (f"   (default {d})" if d else ""))
    return out


#: system -> renderer(facts, needs, package=...) of its (first) CI file
RENDERERS: dict[str, Callable[..., str]] = {
    "github": render_github, "gitlab": render_gitlab, "cloudbuild": render_cloudbuild,
}
