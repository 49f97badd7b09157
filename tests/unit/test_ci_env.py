"""CI environment detection: GitHub Actions, GitLab CI, Cloud Build, plain git (a real one)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conveyor.ci_env import detect, git_info

SHA = "0123456789abcdef0123456789abcdef01234567"


def git(cwd: Path, *args: str) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
                            "HOME": str(cwd), "PATH": "/usr/bin:/bin"})
    return r.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a\n")
    git(root, "add", "a.txt")
    git(root, "commit", "-q", "-m", "first")
    git(root, "checkout", "-q", "-b", "feature/login")
    return root


def test_plain_git(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    ci = detect({}, repo)
    assert ci.system == "git" and not ci.is_ci
    assert (ci.branch, ci.commit, ci.default_branch) == ("feature/login", head, "main")
    assert ci.on_default_branch is False
    assert ci.dirty is False and ci.run_url is None and ci.summary_file is None
    (repo / "a.txt").write_text("changed\n")
    assert detect({}, repo).dirty is True
    git(repo, "checkout", "-q", "main", "--force")
    assert detect({}, repo).on_default_branch is True


def test_plain_git_detached_head_and_origin_head(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    # origin/HEAD names the remote's current branch: the source repo has feature/login checked out
    assert git_info(clone).default_branch == "feature/login"
    git(clone, "checkout", "-q", "--detach")
    info = git_info(clone)
    assert info.branch is None and info.commit == git(repo, "rev-parse", "HEAD")


def test_no_git(tmp_path: Path) -> None:
    ci = detect({}, tmp_path)
    assert ci.system == "none"
    assert (ci.branch, ci.commit, ci.default_branch, ci.dirty) == (None, None, None, None)
    assert ci.on_default_branch is None


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "trunk")
    ci = detect({}, tmp_path)
    assert ci.branch == "trunk" and ci.commit is None


def test_github_actions_push(repo: Path, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"default_branch": "main"}}))
    env = {"GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_REF_NAME": "feature/x",
           "GITHUB_REF_TYPE": "branch", "GITHUB_SHA": SHA,
           "GITHUB_SERVER_URL": "https://github.com",
           "GITHUB_REPOSITORY": "acme/notes", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "1",
           "GITHUB_STEP_SUMMARY": "/tmp/summary", "GITHUB_EVENT_PATH": str(event),
           "GITHUB_ACTOR": "octocat", "GITHUB_HEAD_REF": ""}
    ci = detect(env, repo)
    assert ci.system == "github" and ci.is_ci
    assert (ci.branch, ci.commit) == ("feature/x", SHA)  # the CI's values win over git's
    assert ci.run_url == "https://github.com/acme/notes/actions/runs/42"
    assert ci.summary_file == "/tmp/summary"
    assert ci.default_branch == "main" and ci.on_default_branch is False
    assert ci.actor == "octocat"
    ci = detect(env | {"GITHUB_RUN_ATTEMPT": "2"}, repo)
    assert ci.run_url.endswith("/runs/42/attempts/2")


def test_github_actions_pull_request_and_tag(tmp_path: Path) -> None:
    base = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA, "GITHUB_REPOSITORY": "a/b",
            "GITHUB_RUN_ID": "1"}
    ci = detect(base | {"GITHUB_REF_NAME": "17/merge", "GITHUB_HEAD_REF": "feature/y"}, tmp_path)
    assert ci.branch == "feature/y"
    assert ci.run_url == "https://github.com/a/b/actions/runs/1"  # server defaults to github.com
    ci = detect(base | {"GITHUB_REF_NAME": "v1.2", "GITHUB_REF_TYPE": "tag"}, tmp_path)
    assert ci.branch is None and ci.tag == "v1.2"
    assert ci.default_branch is None  # no event payload, no git


def test_gitlab_ci(repo: Path) -> None:
    env = {"GITLAB_CI": "true", "CI": "true", "CI_COMMIT_REF_NAME": "feature/z",
           "CI_COMMIT_SHA": SHA, "CI_PIPELINE_URL": "https://gitlab.example.com/g/p/-/pipelines/9",
           "CI_DEFAULT_BRANCH": "develop", "GITLAB_USER_LOGIN": "dev1"}
    ci = detect(env, repo)
    assert ci.system == "gitlab"
    assert (ci.branch, ci.commit, ci.default_branch) == ("feature/z", SHA, "develop")
    assert ci.run_url == "https://gitlab.example.com/g/p/-/pipelines/9"
    assert ci.actor == "dev1" and ci.summary_file is None
    assert detect(env | {"CI_COMMIT_REF_NAME": "develop"}, repo).on_default_branch is True
    ci = detect(env | {"CI_COMMIT_TAG": "v2", "CI_COMMIT_REF_NAME": "v2"}, repo)
    assert ci.tag == "v2" and ci.branch == "feature/login"  # tags name no branch: git's is used


def test_cloud_build(tmp_path: Path) -> None:
    env = {"CONVEYOR_CI": "cloudbuild", "BRANCH_NAME": "feature/q", "COMMIT_SHA": SHA,
           "BUILD_ID": "b-123", "PROJECT_ID": "proj", "LOCATION": "europe-west1",
           "CONVEYOR_DEFAULT_BRANCH": "main"}
    ci = detect(env, tmp_path)  # Cloud Build's source often has no .git: all from the env
    assert ci.system == "cloudbuild" and ci.is_ci
    assert (ci.branch, ci.commit, ci.default_branch) == ("feature/q", SHA, "main")
    assert ci.run_url == ("https://console.cloud.google.com/cloud-build/builds;"
                          "region=europe-west1/b-123?project=proj")
    ci = detect({"BUILD_ID": "b-1", "PROJECT_ID": "p", "LOCATION": "global"}, tmp_path)
    assert ci.system == "cloudbuild"
    assert ci.run_url == "https://console.cloud.google.com/cloud-build/builds/b-1?project=p"
    # Jenkins also sets BUILD_ID: not mistaken for Cloud Build
    ci = detect({"BUILD_ID": "7", "PROJECT_ID": "x", "JENKINS_URL": "http://127.0.0.1/",
                 "CI": "true"}, tmp_path)
    assert ci.system == "none" and ci.is_ci


def test_default_branch_override(repo: Path) -> None:
    assert detect({"CONVEYOR_DEFAULT_BRANCH": "feature/login"}, repo).on_default_branch is True
    env = {"GITLAB_CI": "true", "CI_COMMIT_REF_NAME": "x", "CI_DEFAULT_BRANCH": "main",
           "CONVEYOR_DEFAULT_BRANCH": "release"}
    assert detect(env, repo).default_branch == "release"
