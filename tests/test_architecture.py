"""The seams ARCHITECTURE.md draws, checked statically with `ast` over the project's own modules.

No circle between modules, no import inside a function to dodge one, and a credential's secret
opened or sealed only in `integrations/services/secrets.py`. Each checker is a plain function over
source text, so the real tree and the synthetic cases of the self-tests go through the same code.
"""

from __future__ import annotations

import ast
import subprocess
from collections import deque
from collections.abc import Iterator, Mapping
from functools import cache
from itertools import pairwise
from pathlib import Path, PurePosixPath

PROJECT_PACKAGES = {"accounts", "api", "connect", "core", "integrations", "portal", "sandbox"}
SKIPPED_DIRECTORIES = ("tests/", "benchmarks/", "scripts/")

# Bootstrapping code may import lazily: settings are read before the apps load, and manage.py
# imports Django only once it runs.
FUNCTION_IMPORT_EXEMPT = ("portal/settings/", "manage.py")

VAULT_CALLS = {"open_secret", "seal_secret", "clear_secret"}
VAULT_MODULE = "core/vault.py"
SECRETS_MODULE = "integrations/services/secrets.py"
# Modules that seal or open the secret of a model other than Credential. A credential's secret
# goes through secrets.py even here; the "credential" heuristic below guards that.
OTHER_MODELS_SECRETS = {
    "accounts/services/tenants.py": "Tenant (its webhook signing secret)",
    "accounts/services/vault_rotation.py": "every SealedSecretModel (re-encryption on rotation)",
    "api/idempotency.py": "IdempotencyKey (the stored response)",
    "connect/flows/oauth.py": "OAuthAttempt (the PKCE verifier)",
    "integrations/services/oauth_clients.py": "TenantOAuthClient (the client secret)",
    "integrations/services/webhooks.py": "WebhookEndpoint (the endpoint's secret)",
}


# --- Reading the tree --------------------------------------------------------------------------


@cache
def _repository_root() -> Path:
    here = Path(__file__).resolve().parent
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=here,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(top.stdout.strip())


def _is_project_file(path: str) -> bool:
    return not path.startswith(SKIPPED_DIRECTORIES) and "/migrations/" not in f"/{path}"


@cache
def project_sources() -> dict[str, str]:
    """Every project Python file git tracks or would track, by its path from the root."""
    root = _repository_root()
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    sources = {}
    for path in sorted(set(listed.stdout.splitlines())):
        file = root / path
        # A file deleted from the work tree but not yet from the index is gone: skip it.
        if _is_project_file(path) and file.is_file():
            sources[path] = file.read_text(encoding="utf-8")
    found = {PurePosixPath(path).parts[0] for path in sources}
    assert found >= PROJECT_PACKAGES, f"the scan missed {sorted(PROJECT_PACKAGES - found)}"
    return sources


# --- Imports -----------------------------------------------------------------------------------


def module_name(path: str) -> str:
    """`integrations/services/credentials.py` -> `integrations.services.credentials`."""
    parts = PurePosixPath(path).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _iter_imports(
    node: ast.AST, in_function: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement and whether it runs inside a function; `if TYPE_CHECKING:` skipped."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, in_function
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: list[ast.AST] = list(node.orelse)  # the body is read by type checkers only
    else:
        children = list(ast.iter_child_nodes(node))
    nested = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    for child in children:
        yield from _iter_imports(child, nested)


def _longest_known_prefix(name: str, modules: set[str]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def _imported_names(node: ast.Import | ast.ImportFrom, path: str, modules: set[str]) -> list[str]:
    """The modules an import statement reaches: `from pkg import name` is `pkg.name` if a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module_name(path).split(".")
        if not path.endswith("__init__.py"):
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    names = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        names.append(submodule if alias.name != "*" and submodule in modules else base)
    return names


def project_imports(path: str, source: str, modules: set[str]) -> Iterator[tuple[int, str, bool]]:
    """(line, imported module, inside a function) for each import reaching a project module.

    The imported module is the longest known module the name starts with (the name itself when
    nothing matches, say a module just deleted); "project" means its top-level package is one of
    the project's.
    """
    tops = {module.split(".")[0] for module in modules}
    for node, in_function in _iter_imports(ast.parse(source, filename=path)):
        for name in _imported_names(node, path, modules):
            if name.split(".")[0] in tops:
                yield node.lineno, _longest_known_prefix(name, modules) or name, in_function


def import_graph(sources: Mapping[str, str]) -> dict[str, dict[str, list[str]]]:
    """importer -> imported -> the `path:line` of each import statement, for project modules."""
    modules = {module_name(path) for path in sources}
    graph: dict[str, dict[str, list[str]]] = {module: {} for module in modules}
    for path, source in sources.items():
        importer = module_name(path)
        for line, imported, _ in project_imports(path, source, modules):
            if imported not in modules:
                continue
            where = graph[importer].setdefault(imported, [])
            if f"{path}:{line}" not in where:
                where.append(f"{path}:{line}")
    return graph


def strongly_connected_components(graph: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so a deep chain of imports cannot overflow the stack."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = lowlink[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = lowlink[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    lowlink[node] = min(lowlink[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[node])
                if lowlink[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _shortest_path(
    graph: Mapping[str, Mapping[str, object]], start: str, goal: str, within: set[str]
) -> list[str]:
    came_from = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(came_from[path[-1]])
            return path[::-1]
        for successor in sorted(graph[node]):
            if successor in within and successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"{goal} is not reachable from {start} inside its component")


def find_import_cycles(sources: Mapping[str, str]) -> list[str]:
    """Each import circle, as `a -> b -> a` with the `path:line` of every import on it.

    For every import inside a strongly connected component, the shortest circle through it is
    listed (once), so every import that takes part in a circle shows up and none is left out.
    """
    graph = import_graph(sources)
    cycles: dict[tuple[str, ...], str] = {}
    for component in strongly_connected_components(graph):
        members = set(component)
        for importer in component:
            for imported in graph[importer]:
                if imported not in members:
                    continue
                loop = [importer, *_shortest_path(graph, imported, importer, members)]
                turn = loop[:-1].index(min(loop[:-1]))
                loop = [*loop[turn:-1], *loop[:turn], loop[turn]]
                where = "; ".join(
                    f"{a} imports {b} at {', '.join(graph[a][b])}" for a, b in pairwise(loop)
                )
                cycles[tuple(loop)] = f"{' -> '.join(loop)}\n      ({where})"
    return [cycles[key] for key in sorted(cycles)]


def find_function_level_imports(sources: Mapping[str, str]) -> list[str]:
    """`path:line module` for each import inside a function that reaches a project module."""
    modules = {module_name(path) for path in sources}
    found = []
    for path, source in sorted(sources.items()):
        if path.startswith(FUNCTION_IMPORT_EXEMPT):
            continue
        for line, imported, in_function in project_imports(path, source, modules):
            entry = f"{path}:{line} {imported}"
            if in_function and entry not in found:
                found.append(entry)
    return found


# --- The vault -------------------------------------------------------------------------------


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return ""


def find_secret_access_outside_secrets_py(path: str, source: str) -> list[str]:
    """`path:line ...` for each vault call or import that may touch a credential's secret."""
    if path in {VAULT_MODULE, SECRETS_MODULE}:
        return []
    allowlisted = path in OTHER_MODELS_SECRETS
    tree = ast.parse(source, filename=path)
    aliases = {name: name for name in VAULT_CALLS}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "core.vault":
            for alias in node.names:
                if alias.name in VAULT_CALLS:
                    aliases[alias.asname or alias.name] = alias.name
                    if not allowlisted:
                        found.append((node.lineno, f"imports {alias.name} from core.vault"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in aliases:
            called = aliases[node.func.id]
        elif isinstance(node.func, ast.Attribute) and node.func.attr in VAULT_CALLS:
            called = node.func.attr
        else:
            continue
        instance = node.args[0] if node.args else None
        for keyword in node.keywords:
            if keyword.arg == "instance":
                instance = keyword.value
        argument = _dotted(instance) if instance is not None else ""
        if "credential" in argument.lower():
            found.append((node.lineno, f"{called}({argument}) on a credential"))
        elif not allowlisted:
            found.append((node.lineno, f"{called}({argument}) outside secrets.py"))
    return [f"{path}:{line} {what}" for line, what in sorted(found)]


# --- The real tree -----------------------------------------------------------------------------


def test_no_import_circle_among_the_projects_modules():
    cycles = find_import_cycles(project_sources())

    assert not cycles, (
        "Import circles among the project's modules (ARCHITECTURE.md: no circle between "
        "modules); break each by moving what both sides need down a layer:\n  "
        + "\n  ".join(cycles)
    )


def test_no_import_inside_a_function_reaches_the_projects_modules():
    imports = find_function_level_imports(project_sources())

    assert not imports, (
        "Imports of project modules inside functions (ARCHITECTURE.md: no import inside a "
        "function to dodge a circle); move them to the top of the module:\n  "
        + "\n  ".join(imports)
    )


def test_only_secrets_py_opens_or_seals_a_credentials_secret():
    violations = [
        violation
        for path, source in sorted(project_sources().items())
        for violation in find_secret_access_outside_secrets_py(path, source)
    ]

    assert not violations, (
        "A credential's secret is opened or sealed only in integrations/services/secrets.py "
        "(ask it for the secret with a purpose); a module sealing another model's secret goes "
        "on OTHER_MODELS_SECRETS with that model named:\n  " + "\n  ".join(violations)
    )


def test_the_allowlisted_vault_callers_still_exist():
    missing = sorted(set(OTHER_MODELS_SECRETS) - set(project_sources()))

    assert not missing, f"OTHER_MODELS_SECRETS names modules that are gone: {missing}"


# --- The checkers can fail ---------------------------------------------------------------------


def test_the_circle_check_reports_two_modules_importing_each_other():
    sources = {
        "fakeapp/__init__.py": "",
        "fakeapp/a.py": "from fakeapp import b\n",
        "fakeapp/b.py": "def later():\n    from fakeapp.a import thing\n",
        "fakeapp/c.py": "import typing\nif typing.TYPE_CHECKING:\n    import fakeapp.a\n",
        "fakeapp/d.py": "import fakeapp.d\n",
    }

    cycles = find_import_cycles(sources)

    assert [cycle.split("\n")[0] for cycle in cycles] == [
        "fakeapp.a -> fakeapp.b -> fakeapp.a",
        "fakeapp.d -> fakeapp.d",
    ]
    assert "fakeapp/a.py:1" in cycles[0]
    assert "fakeapp/b.py:2" in cycles[0]


def test_the_circle_check_passes_a_tree_whose_imports_run_one_way():
    sources = {
        "fakeapp/__init__.py": "",
        "fakeapp/a.py": "from fakeapp import b\nimport json\n",
        "fakeapp/b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fakeapp import a\n"
        ),
    }

    assert find_import_cycles(sources) == []


def test_the_function_import_check_reports_an_import_inside_a_method():
    sources = {
        "fakeapp/__init__.py": "",
        "fakeapp/a.py": "import json\n",
        "fakeapp/b.py": (
            "from typing import TYPE_CHECKING\n"
            "import fakeapp.a\n"
            "class Thing:\n"
            "    def run(self):\n"
            "        import json\n"
            "        from fakeapp import a\n"
            "        if TYPE_CHECKING:\n"
            "            from fakeapp.a import Other\n"
        ),
    }

    assert find_function_level_imports(sources) == ["fakeapp/b.py:6 fakeapp.a"]


def test_the_secret_check_reports_a_credential_sealed_outside_secrets_py():
    source = (
        "from core import vault\n"
        "from core.vault import seal_secret\n"
        "def merge(credential, twin):\n"
        "    seal_secret(credential, {})\n"
        "    vault.open_secret(twin)\n"
    )

    assert find_secret_access_outside_secrets_py("integrations/services/fake.py", source) == [
        "integrations/services/fake.py:2 imports seal_secret from core.vault",
        "integrations/services/fake.py:4 seal_secret(credential) on a credential",
        "integrations/services/fake.py:5 open_secret(twin) outside secrets.py",
    ]


def test_the_secret_check_reports_a_credential_even_in_an_allowlisted_module():
    source = (
        "from core.vault import open_secret, seal_secret\n"
        "def seal(endpoint, attempt):\n"
        "    seal_secret(endpoint, {'secret': 's'})\n"
        "    open_secret(attempt.credential)\n"
    )

    assert find_secret_access_outside_secrets_py("integrations/services/webhooks.py", source) == [
        "integrations/services/webhooks.py:4 open_secret(attempt.credential) on a credential"
    ]
    assert find_secret_access_outside_secrets_py(SECRETS_MODULE, source) == []
