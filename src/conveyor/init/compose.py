"""The compose file: the PostgreSQL service and the app service."""

from __future__ import annotations

import re
from pathlib import Path

from conveyor.init.facts import POSTGRES_PORT, DbFacts, Facts, PortMapping, app_name
from conveyor.init.yaml_text import (
    YamlSubsetError,
    compose_variables,
    parse_yaml_subset,
    resolve_defaults,
    to_conveyor_interpolation,
)


def _ports(service: dict) -> list[PortMapping]:
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            target = str(entry.get("target") or "")
            published = entry.get("published")
            raw_host = str(published) if published is not None else None
            ip = entry.get("host_ip")
        else:
            text = str(entry).split("/")[0]
            # ip:host:container | host:container | container; ${VAR:-d} may hold ':'
            parts = re.findall(r"(?:\$\{[^}]*\}|[^:])+", text)
            target = parts[-1] if parts else ""
            raw_host = parts[-2] if len(parts) >= 2 else None
            ip = parts[-3] if len(parts) >= 3 else None
        try:
            container = int(resolve_defaults(target).split("-")[0])
        except ValueError:
            continue
        host = None
        if raw_host:
            try:
                host = int(resolve_defaults(raw_host).split("-")[0])
            except ValueError:
                host = None
        out.append(PortMapping(container, host, resolve_defaults(ip) if ip else None, raw_host))
    return out


def _environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out: dict[str, str | None] = {}
        for item in env:
            k, sep, v = str(item).partition("=")
            out[k] = v if sep else None
        return out
    if isinstance(env, dict):
        return {str(k): (None if v is None else str(v)) for k, v in env.items()}
    return {}


_PG_IMAGE = re.compile(r"(^|/)(postgres|postgis|timescaledb[^:/]*|pgvector|supabase/postgres)"
                       r"(:|$)|postgres", re.IGNORECASE)


def inspect_compose(facts: Facts, path: Path) -> None:
    facts.compose_file = path.name
    try:
        data = parse_yaml_subset(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, YamlSubsetError) as exc:
        facts.compose_error = str(exc)
        facts.notes.append(f"could not read {path.name} ({exc}); its services were not used")
        return
    services = (data or {}).get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        facts.notes.append(f"{path.name} has no `services` table")
        return
    db_name = app_svc = None
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        image = resolve_defaults(str(svc.get("image") or ""))
        env = _environment(svc)
        if db_name is None and (_PG_IMAGE.search(image) or
                                any(k.startswith("POSTGRES_") for k in env)) \
                and not svc.get("build"):
            db_name = name
    candidates = [n for n, s in services.items() if isinstance(s, dict) and s.get("build")
                  and n != db_name]
    if not candidates:
        candidates = [n for n, s in services.items() if isinstance(s, dict) and n != db_name]
    if candidates:
        app_svc = candidates[0]

    if db_name is not None:
        svc = services[db_name]
        env = _environment(svc)
        user = resolve_defaults(env.get("POSTGRES_USER") or "") or "postgres"
        dbname = resolve_defaults(env.get("POSTGRES_DB") or "") or user
        raw_pw = env.get("POSTGRES_PASSWORD")
        pw_var = pw_default = None
        literal = False
        if raw_pw:
            used = compose_variables(raw_pw)
            if used and re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:?-[^}]*)?\}?", raw_pw):
                pw_var, pw_default = used[0]
            else:
                literal = True
        mapping = next((p for p in _ports(svc) if p.container == POSTGRES_PORT), None)
        image_raw = str(svc.get("image") or "postgres:16")
        facts.db = DbFacts(
            service=db_name, image_raw=image_raw, image=resolve_defaults(image_raw),
            user=user, name=dbname, password_var=pw_var, password_default=pw_default,
            password_literal=literal,
            host_ip=(mapping.host_ip if mapping and mapping.host_ip else "127.0.0.1"),
            host_port=mapping.host if mapping else None,
            host_port_raw=mapping.raw_host if mapping else None,
        )
        if mapping is None or mapping.host is None:
            facts.notes.append(
                f"the compose service `{db_name}` publishes no port for 5432: conveyor's local "
                f"stage connects from this machine, so publish one (e.g. "
                f"\"127.0.0.1:5432:5432\") and set environments.local.database.port")
    else:
        facts.notes.append(f"no PostgreSQL service found in {path.name}")

    if app_svc is not None:
        facts.app_service = app_svc
        svc = services[app_svc]
        build = svc.get("build")
        if isinstance(build, str):
            facts.context = build
        elif isinstance(build, dict):
            facts.context = str(build.get("context") or ".")
            if build.get("dockerfile"):
                facts.dockerfile = str(build["dockerfile"])
            args = build.get("args") or {}
            if isinstance(args, list):
                args = {str(a).partition("=")[0]: str(a).partition("=")[2] for a in args}
            for k, v in (args or {}).items():
                if v is not None:
                    facts.build_args[str(k)] = to_conveyor_interpolation(str(v))
        image = str(svc.get("image") or "")
        if image:
            base = resolve_defaults(image).rsplit("/", 1)[-1].split(":")[0].split("@")[0]
            if base:
                facts.name = app_name(base)
        facts.app_env_names = sorted(k for k in _environment(svc) if k != "DATABASE_URL")
        ports = _ports(svc)
        chosen = next((p for p in ports if facts.port and p.container == facts.port), None)
        chosen = chosen or (ports[0] if ports else None)
        if chosen:
            if facts.port is None:
                facts.port, facts.port_source = chosen.container, f"{path.name} ports"
            facts.app_host_port = chosen.host
            facts.app_host_port_raw = chosen.raw_host
            if chosen.host_ip:
                facts.app_host_ip = chosen.host_ip
        hc = svc.get("healthcheck")
        if facts.health_path is None and isinstance(hc, dict):
            test = hc.get("test")
            text = " ".join(map(str, test)) if isinstance(test, list) else str(test or "")
            m = re.search(r"https?://[^/\s'\"]+(/[A-Za-z0-9_./~-]*)", text)
            if m:
                facts.health_path, facts.health_source = m.group(1), f"{path.name} healthcheck"
