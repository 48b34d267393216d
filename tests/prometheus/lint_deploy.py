"""Checks what deploy/ ships for monitoring beyond what promtool checks by itself:

- the Grafana dashboard imports (JSON, schemaVersion >= 38, a `DS_PROMETHEUS` datasource input
  that every panel, query and variable uses, unique panel ids);
- every dashboard query parses as PromQL (`promtool check rules` over a rule file made of them,
  with Grafana's variables replaced by values);
- the dashboard and the alert rules name only metric families codex-relay exposes (contract.py).

Prints one line per problem and exits non-zero if there is any. Standard library and promtool only.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from contract import unknown_names  # noqa: E402

MIN_SCHEMA_VERSION = 38
DATASOURCE_UID = "${DS_PROMETHEUS}"

# What Grafana puts in place of its variables when it runs a query.
GRAFANA_VALUES = {
    "$__rate_interval": "1m", "$__interval": "1m", "$__range": "1d",
    "$job": ".*", "$instance": ".*", "$tenant": ".*", "$account": ".*",
}


def panels_of(dashboard):
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def structure_problems(dashboard):
    problems = []
    if dashboard.get("schemaVersion", 0) < MIN_SCHEMA_VERSION:
        problems.append(f"schemaVersion {dashboard.get('schemaVersion')} < {MIN_SCHEMA_VERSION}")
    inputs = {i.get("name"): i for i in dashboard.get("__inputs", [])}
    if inputs.get("DS_PROMETHEUS", {}).get("pluginId") != "prometheus":
        problems.append("no __inputs entry DS_PROMETHEUS for a prometheus datasource")
    ids = [p.get("id") for p in panels_of(dashboard)]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids are not unique: {ids}")
    for panel in panels_of(dashboard):
        if panel.get("type") == "row":
            continue
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        if "gridPos" not in panel:
            problems.append(f"{name}: no gridPos")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{name}: no query")
        for source in [panel.get("datasource")] + [t.get("datasource") for t in targets]:
            if (source or {}).get("uid") != DATASOURCE_UID:
                problems.append(f"{name}: datasource {source} is not {DATASOURCE_UID}")
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query" and variable["datasource"].get("uid") != DATASOURCE_UID:
            problems.append(f"variable {variable.get('name')}: datasource is not {DATASOURCE_UID}")
    return problems


def queries_of(dashboard):
    """(where, PromQL) for every panel query, and (where, text) for every variable query."""
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel.get('title')!r} query {target.get('refId')}", \
                target.get("expr", "")
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        yield f"variable {variable.get('name')}", \
            query.get("query", "") if isinstance(query, dict) else query or ""


def as_promql(expr):
    for variable, value in sorted(GRAFANA_VALUES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    leftover = re.findall(r"\$\w+", expr)
    if leftover:
        raise ValueError(f"unknown Grafana variables {leftover}")
    return expr


def parse_problems(exprs):
    """Runs promtool over one recording rule per expression; its complaints, by expression."""
    with tempfile.TemporaryDirectory(prefix="codex-relay-dashboard-") as tmp:
        path = os.path.join(tmp, "dashboard.rules.yml")
        with open(path, "w") as rules:
            rules.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (_, expr) in enumerate(exprs):
                # A JSON string is a YAML double-quoted scalar.
                rules.write(f"      - record: dashboard:query_{i}\n"
                            f"        expr: {json.dumps(expr)}\n")
        done = subprocess.run(["promtool", "check", "rules", path], capture_output=True,
                              text=True)
    if done.returncode == 0:
        return []
    output = done.stdout + done.stderr
    named = [f"{exprs[int(i)][0]}: {complaint}"
             for i, complaint in re.findall(r'"dashboard:query_(\d+)": (.*)', output)]
    return named or [f"promtool check rules: {output.strip()}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dashboard", default="deploy/grafana/codex-relay.json")
    parser.add_argument("--rules", default="deploy/prometheus/codex-relay.rules.yml")
    args = parser.parse_args()

    problems = []
    try:
        with open(args.dashboard) as f:
            dashboard = json.load(f)
    except ValueError as error:
        print(f"lint: FAIL {args.dashboard} is not JSON: {error}")
        return 1
    problems += structure_problems(dashboard)

    promql = []
    for where, query in queries_of(dashboard):
        problems += [f"{where}: {name} is no codex-relay family" for name in unknown_names(query)]
        if where.startswith("panel"):
            try:
                promql.append((where, as_promql(query)))
            except ValueError as error:
                problems.append(f"{where}: {error}")
    problems += parse_problems(promql)

    with open(args.rules) as f:
        rules = f.read()
    problems += [f"{args.rules}: {name} is no codex-relay family" for name in unknown_names(rules)]

    for problem in problems:
        print(f"lint: FAIL {problem}")
    print(f"lint: {len(promql)} dashboard queries, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
