"""Where a `conveyor ci` job runs: branch, commit, run URL, default branch, job summary file.

Read from the CI system's usual environment, plain git otherwise:

* GitHub Actions (GITHUB_ACTIONS=true): branch GITHUB_HEAD_REF (pull requests) or
  GITHUB_REF_NAME (not for tags), commit GITHUB_SHA, run URL
  GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID, default branch from the event
  payload (GITHUB_EVENT_PATH), job summary GITHUB_STEP_SUMMARY;
* GitLab CI (GITLAB_CI=true): branch CI_COMMIT_BRANCH / CI_COMMIT_REF_NAME (not for tags),
  commit CI_COMMIT_SHA, run URL CI_PIPELINE_URL, default branch CI_DEFAULT_BRANCH;
* Cloud Build (CONVEYOR_CI=cloudbuild, or BUILD_ID with PROJECT_ID and no JENKINS_URL): branch
  BRANCH_NAME, commit COMMIT_SHA, run URL the console's, from PROJECT_ID, LOCATION, BUILD_ID;
* anywhere else: git (branch of HEAD, its commit, origin/HEAD or else main/master as the
  default branch).

Cloud Build sets no environment of its own: its substitutions are passed as `env` by the
generated cloudbuild.yaml. `CONVEYOR_DEFAULT_BRANCH` overrides the default branch everywhere.
Values the CI provides win over git (a CI checkout is often a detached HEAD, and Cloud Build's
source may have no .git at all); git fills what the CI leaves out.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CiEnv:
    #: github | gitlab | cloudbuild | git (no CI detected) | none (not even a git repository)
    system: str
    branch: str | None
    commit: str | None
    default_branch: str | None
    run_url: str | None = None
    #: GitHub's job summary file ($GITHUB_STEP_SUMMARY)
    summary_file: str | None = None
    actor: str | None = None
    tag: str | None = None
    #: the working tree has uncommitted changes (only known from git)
    dirty: bool | None = None
    #: a CI system runs this job (also true for an unknown CI that sets CI=true)
    is_ci: bool = False

    @property
    def short_commit(self) -> str | None:
        return self.commit[:12] if self.commit else None

    @property
    def on_default_branch(self) -> bool | None:
        """None when either the branch or the default branch is unknown."""
        if not self.branch or not self.default_branch:
            return None
        return self.branch == self.default_branch

    @property
    def label(self) -> str:
        return {"github": "GitHub Actions", "gitlab": "GitLab CI", "cloudbuild": "Cloud Build",
                "git": "local (git)", "none": "local"}.get(self.system, self.system)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"on_default_branch": self.on_default_branch}


def _get(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


# --------------------------------------------------------------------------- git


def _git(cwd: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                           check=False,
                           env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


@dataclass(frozen=True)
class GitInfo:
    is_repo: bool
    branch: str | None = None
    commit: str | None = None
    default_branch: str | None = None
    dirty: bool | None = None


def git_info(cwd: Path | str) -> GitInfo:
    cwd = Path(cwd)
    if _git(cwd, "rev-parse", "--is-inside-work-tree") != "true":
        return GitInfo(is_repo=False)
    # symbolic-ref also names the branch of a repository without commits yet; a detached
    # HEAD (the usual CI checkout) has none
    branch = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    commit = _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    default = None
    origin_head = _git(cwd, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if origin_head:
        default = origin_head.split("/", 1)[1] if "/" in origin_head else origin_head
    else:
        for candidate in ("main", "master"):
            if _git(cwd, "show-ref", "--verify", "--quiet", f"refs/heads/{candidate}") is not None:
                default = candidate
                break
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return GitInfo(True, branch or None, commit or None, default,
                   None if status is None else bool(status))


# --------------------------------------------------------------------------- CI systems


def _github(env: Mapping[str, str]) -> dict[str, Any]:
    tag = env.get("GITHUB_REF_NAME") if env.get("GITHUB_REF_TYPE") == "tag" else None
    branch = _get(env, "GITHUB_HEAD_REF") or (None if tag else _get(env, "GITHUB_REF_NAME"))
    run_url = None
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
        run_url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
        if env.get("GITHUB_RUN_ATTEMPT") not in (None, "", "1"):
            run_url += f"/attempts/{env['GITHUB_RUN_ATTEMPT']}"
    default = None
    event_path = env.get("GITHUB_EVENT_PATH")
    if event_path:
        try:
            event = json.loads(Path(event_path).read_text())
            default = (event.get("repository") or {}).get("default_branch") or None
        except (OSError, ValueError, AttributeError):
            default = None
    return {"system": "github", "branch": branch, "commit": _get(env, "GITHUB_SHA"),
            "default_branch": default, "run_url": run_url,
            "summary_file": _get(env, "GITHUB_STEP_SUMMARY"),
            "actor": _get(env, "GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR"), "tag": tag}


def _gitlab(env: Mapping[str, str]) -> dict[str, Any]:
    tag = _get(env, "CI_COMMIT_TAG")
    branch = None if tag else _get(env, "CI_COMMIT_BRANCH", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
                                   "CI_COMMIT_REF_NAME")
    return {"system": "gitlab", "branch": branch, "commit": _get(env, "CI_COMMIT_SHA"),
            "default_branch": _get(env, "CI_DEFAULT_BRANCH"),
            "run_url": _get(env, "CI_PIPELINE_URL", "CI_JOB_URL"),
            "actor": _get(env, "GITLAB_USER_LOGIN"), "tag": tag}


def _cloudbuild(env: Mapping[str, str]) -> dict[str, Any]:
    run_url = None
    build_id, project = _get(env, "BUILD_ID"), _get(env, "PROJECT_ID")
    if build_id and project:
        location = _get(env, "LOCATION")
        where = f";region={location}" if location and location != "global" else ""
        run_url = (f"https://console.cloud.google.com/cloud-build/builds{where}/{build_id}"
                   f"?project={project}")
    return {"system": "cloudbuild", "branch": _get(env, "BRANCH_NAME"),
            "commit": _get(env, "COMMIT_SHA"), "default_branch": None, "run_url": run_url,
            "tag": _get(env, "TAG_NAME")}


def detect_system(env: Mapping[str, str]) -> str | None:
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    if env.get("CONVEYOR_CI") == "cloudbuild" or (
            env.get("BUILD_ID") and env.get("PROJECT_ID") and not env.get("JENKINS_URL")):
        return "cloudbuild"
    return None


def detect(env: Mapping[str, str] | None = None, cwd: Path | str = ".") -> CiEnv:
    """The job's CI environment; `env` defaults to os.environ, `cwd` is the repository."""
    env = os.environ if env is None else env
    system = detect_system(env)
    found: dict[str, Any] = {}
    if system == "github":
        found = _github(env)
    elif system == "gitlab":
        found = _gitlab(env)
    elif system == "cloudbuild":
        found = _cloudbuild(env)
    git = git_info(cwd)
    if system is None:
        found["system"] = "git" if git.is_repo else "none"
    for key in ("branch", "commit", "default_branch"):
        if not found.get(key):
            found[key] = getattr(git, key)
    found["dirty"] = git.dirty if git.is_repo else None
    override = _get(env, "CONVEYOR_DEFAULT_BRANCH")
    if override:
        found["default_branch"] = override
    found["is_ci"] = system is not None or env.get("CI", "").lower() in ("true", "1", "yes")
    if not found.get("actor"):
        found["actor"] = _get(env, "USER", "LOGNAME")
    kwargs: dict[str, Any] = {k: found.get(k) for k in CiEnv.__dataclass_fields__}
    return CiEnv(**kwargs)
