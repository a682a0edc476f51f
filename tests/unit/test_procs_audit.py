"""Every process ``mist_core`` starts gets its environment from ``procs.host_process_env``: read the source
with ``ast`` and refuse any call that starts a process without ``env=`` built there, or through a shell.
A future call (compose, ssh, another CLI) that forgets it fails here before it can inherit the daemon's
environment or take a user's variable into its own."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "mist_core"
FACTORY = "host_process_env"

# Calls that start a process and accept ``env=``; the attribute names are caught on any object (an event
# loop's ``subprocess_exec``, a module imported under another name).
STARTERS = {
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "asyncio.create_subprocess_exec",
    "asyncio.subprocess.create_subprocess_exec",
}
STARTER_ATTRIBUTES = {"create_subprocess_exec", "subprocess_exec", "Popen"}
# Ways to start a process through a shell string or outside any environment Mist builds: never in the core.
FORBIDDEN = {
    "os.system",
    "os.popen",
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.posix_spawnp",
    "pty.spawn",
    "pty.fork",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "asyncio.create_subprocess_shell",
}
FORBIDDEN_PREFIXES = ("os.exec", "os.spawn")
FORBIDDEN_ATTRIBUTES = {"create_subprocess_shell", "subprocess_shell"}
# Methods that change a dict in place: an environment built by the factory must reach the process as built.
MUTATORS = {"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__", "__ior__"}


@dataclass(frozen=True)
class ProcessCall:
    where: str  # "path:line"
    name: str  # the call as resolved, e.g. "asyncio.create_subprocess_exec"
    problem: str | None  # None: its env= comes from the factory


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if parts:  # a call on an expression (self.loop().subprocess_exec): keep the attribute names
        return "?." + ".".join(reversed(parts))
    return None


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> qualified name, from the module's imports (``import subprocess as sp``,
    ``from asyncio import create_subprocess_exec``)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[(alias.asname or alias.name).split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def _resolve(func: ast.expr, aliases: dict[str, str]) -> str | None:
    dotted = _dotted(func)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    if head in aliases:
        return aliases[head] + ("." + rest if rest else "")
    return dotted


def _is_factory_call(node: ast.expr | None) -> bool:
    if not isinstance(node, ast.Call):
        return False
    dotted = _dotted(node.func)
    return dotted is not None and dotted.split(".")[-1] == FACTORY


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _enclosing(node: ast.AST, parents: dict[ast.AST, ast.AST], kinds: tuple[type, ...]) -> ast.AST | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, kinds):
            return node
    return None


def _strip_ctx(node: ast.expr) -> str:
    return ast.dump(node).replace("ctx=Store()", "").replace("ctx=Load()", "").replace("ctx=Del()", "")


def _bound(target: ast.expr) -> list[ast.expr]:
    """What an assignment target binds or changes: names, attributes and subscripts, through tuples."""
    if isinstance(target, ast.Tuple | ast.List):
        return [bound for element in target.elts for bound in _bound(element)]
    if isinstance(target, ast.Starred):
        return _bound(target.value)
    return [target]


def _env_problem(value: ast.expr, scope: ast.AST) -> str | None:
    """Why ``env=value`` is not an environment the factory built and nobody changed since, or None."""
    if _is_factory_call(value):
        return None
    if not isinstance(value, ast.Name | ast.Attribute):
        return f"env= is not built by {FACTORY}()"
    if isinstance(value, ast.Attribute) and not isinstance(value.value, ast.Name):
        return f"env= is not built by {FACTORY}()"
    key = _strip_ctx(value)
    shown = ast.unparse(value)
    if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) and isinstance(value, ast.Name):
        arguments = scope.args
        every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
        every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        if value.id in {a.arg for a in every}:
            return f"env= is the parameter {shown}, which the caller builds"
    assignments: list[ast.AST] = []
    for node in ast.walk(scope):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            targets = [node.target]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            targets = [node.optional_vars]
        elif isinstance(node, ast.NamedExpr):
            targets = [node.target]
        for target in targets:
            for bound in _bound(target):
                if isinstance(bound, ast.Subscript):
                    if _strip_ctx(bound.value) == key:
                        return f"{shown} is changed in place after {FACTORY}() built it"
                elif _strip_ctx(bound) == key:
                    assignments.append(node)
        if isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and _strip_ctx(target.value) == key:
                    return f"{shown} is changed in place after {FACTORY}() built it"
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
            and _strip_ctx(node.func.value) == key
        ):
            return f"{shown} is changed in place after {FACTORY}() built it"
    if len(assignments) != 1:
        return f"{shown} is bound {len(assignments)} times; it must be bound once, to {FACTORY}(...)"
    only = assignments[0]
    if not isinstance(only, ast.Assign | ast.AnnAssign) or not _is_factory_call(only.value):
        return f"{shown} is not built by {FACTORY}()"
    return None


def audit_source(source: str, where: str) -> list[ProcessCall]:
    """Every call in ``source`` that starts a process, with what is wrong with it (if anything)."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    parents = _parents(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _resolve(node.func, aliases)
        if name is None:
            continue
        attribute = name.split(".")[-1]
        location = f"{where}:{node.lineno}"
        if name in FORBIDDEN or name.startswith(FORBIDDEN_PREFIXES) or attribute in FORBIDDEN_ATTRIBUTES:
            found.append(ProcessCall(location, name, "starts a process through a shell or without env="))
            continue
        if name not in STARTERS and attribute not in STARTER_ATTRIBUTES:
            continue
        if any(keyword.arg is None for keyword in node.keywords):
            found.append(ProcessCall(location, name, "passes **kwargs, which can hide or replace env="))
            continue
        env = next((keyword.value for keyword in node.keywords if keyword.arg == "env"), None)
        if env is None:
            found.append(ProcessCall(location, name, "has no env=, so the child inherits the daemon's"))
            continue
        kinds: tuple[type, ...] = (ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(env, ast.Attribute):
            kinds = (ast.ClassDef,)
        scope = _enclosing(node, parents, kinds) or tree
        found.append(ProcessCall(location, name, _env_problem(env, scope)))
    return found


def audit_core() -> list[ProcessCall]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        found += audit_source(path.read_text(encoding="utf-8"), str(path.relative_to(CORE.parent)))
    return found


def test_every_process_mist_core_starts_gets_the_fixed_environment() -> None:
    calls = audit_core()
    problems = [f"{c.where}: {c.name} {c.problem}" for c in calls if c.problem]
    assert problems == []
    # The audit sees the processes the core is known to start (git, docker build), so it is not blind.
    files = {c.where.rsplit(":", 1)[0] for c in calls}
    assert {"mist_core/sources/git.py", "mist_core/builds/runner.py"} <= files


GOOD = {
    "a direct call": """
import asyncio
from mist_core.procs import host_process_env
async def f(home):
    await asyncio.create_subprocess_exec("git", env=host_process_env(home))
""",
    "a local built once": """
import subprocess
from mist_core import procs
def f(home):
    env = procs.host_process_env(home, {"DOCKER_BUILDKIT": "1"})
    subprocess.run(["docker"], env=env)
""",
    "an attribute built once in its class": """
import asyncio
from mist_core.procs import host_process_env
class Session:
    def __init__(self, home):
        self.env = host_process_env(home)
    async def run(self):
        await asyncio.create_subprocess_exec("git", env=self.env)
""",
}

BAD = {
    "no env": """
import subprocess
subprocess.run(["docker", "compose", "up"])
""",
    "os.environ": """
import os, asyncio
async def f():
    await asyncio.create_subprocess_exec("ssh", env=os.environ)
""",
    "a copy of os.environ": """
import os, subprocess
def f():
    env = dict(os.environ)
    subprocess.Popen(["ssh"], env=env)
""",
    "a user's variables added afterwards": """
import asyncio
from mist_core.procs import host_process_env
async def f(home, build_args):
    env = host_process_env(home)
    env.update(build_args)
    await asyncio.create_subprocess_exec("docker", env=env)
""",
    "one variable set afterwards": """
import asyncio
from mist_core.procs import host_process_env
async def f(home, value):
    env = host_process_env(home)
    env["LD_PRELOAD"] = value
    await asyncio.create_subprocess_exec("docker", env=env)
""",
    "rebound in a tuple": """
import subprocess
from mist_core.procs import host_process_env
def f(home, user_env):
    env = host_process_env(home)
    other, env = None, user_env
    subprocess.run(["docker"], env=env)
""",
    "rebound": """
import subprocess
from mist_core.procs import host_process_env
def f(home, extra):
    env = host_process_env(home)
    env = {**env, **extra}
    subprocess.run(["docker"], env=env)
""",
    "an attribute changed in another method": """
import asyncio
from mist_core.procs import host_process_env
class Session:
    def __init__(self, home):
        self.env = host_process_env(home)
    def add(self, key, value):
        self.env[key] = value
    async def run(self):
        await asyncio.create_subprocess_exec("git", env=self.env)
""",
    "the caller's env": """
import subprocess
def f(env):
    subprocess.run(["docker"], env=env)
""",
    "kwargs": """
import subprocess
def f(**options):
    subprocess.run(["docker"], **options)
""",
    "an alias of subprocess": """
import subprocess as sp
sp.check_output(["git", "log"])
""",
    "an imported function": """
from asyncio import create_subprocess_exec
async def f():
    await create_subprocess_exec("git")
""",
    "a loop method": """
async def f(loop, protocol):
    await loop.subprocess_exec(protocol, "git")
""",
    "a shell": """
import asyncio
from mist_core.procs import host_process_env
async def f(home, name):
    await asyncio.create_subprocess_shell(f"docker compose -p {name} up", env=host_process_env(home))
""",
    "os.system": """
import os
os.system("docker ps")
""",
    "os.execve": """
import os
os.execve("/usr/bin/docker", ["docker"], {})
""",
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_the_audit_accepts_an_environment_from_the_factory(case: str) -> None:
    calls = audit_source(GOOD[case], case)
    assert len(calls) == 1
    assert calls[0].problem is None


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_audit_catches_a_process_started_without_the_fixed_environment(case: str) -> None:
    calls = audit_source(BAD[case], case)
    assert calls, "the audit did not see the call"
    assert all(c.problem for c in calls)
