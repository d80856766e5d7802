"""Check every role's meta/argument_specs.yml against defaults/main.yml and README.md.

For each role and each entry point:
- every variable in defaults/main.yml is declared in the spec, with the same default;
- every option with a default in the spec appears in defaults/main.yml;
- every option is named in the role's README.md.
Exits non-zero and lists every mismatch.
"""
from __future__ import annotations

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_yaml(path: pathlib.Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def check_role(role: pathlib.Path) -> list[str]:
    problems = []
    spec_file = role / "meta" / "argument_specs.yml"
    if not spec_file.is_file():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    entry_points = load_yaml(spec_file).get("argument_specs", {})
    defaults_file = role / "defaults" / "main.yml"
    defaults = load_yaml(defaults_file) if defaults_file.is_file() else {}
    readme_file = role / "README.md"
    readme = readme_file.read_text(encoding="utf-8") if readme_file.is_file() else ""
    if not readme:
        problems.append(f"{role.name}: README.md is missing")

    main_options = entry_points.get("main", {}).get("options", {})
    if "main" not in entry_points:
        problems.append(f"{role.name}: argument_specs has no 'main' entry point")
    for name, value in defaults.items():
        if name not in main_options:
            problems.append(f"{role.name}: default '{name}' is not declared in argument_specs")
        elif main_options[name].get("default") != value:
            problems.append(
                f"{role.name}: default of '{name}' differs: "
                f"defaults/main.yml={value!r}, argument_specs={main_options[name].get('default')!r}"
            )
    for entry_name, entry in entry_points.items():
        for name, option in (entry.get("options") or {}).items():
            if "default" in option and name not in defaults:
                problems.append(f"{role.name}/{entry_name}: '{name}' has a spec default but none in defaults/main.yml")
            if not option.get("description"):
                problems.append(f"{role.name}/{entry_name}: '{name}' has no description")
            if readme and f"`{name}`" not in readme:
                problems.append(f"{role.name}: README.md does not document `{name}`")
    return problems


def main() -> int:
    roles = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
    problems = [problem for role in roles for problem in check_role(role)]
    for problem in problems:
        print(problem)
    print(f"checked {len(roles)} roles: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
