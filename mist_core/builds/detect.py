"""Decide how an app's checkout becomes an image: the repository's own Dockerfile, or one generated from what
the repository holds (Go, Node, Python or a static site). Pure logic: it reads the checkout and writes nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mist_core import validate
from mist_core.errors import InvalidInput
from mist_core.models import AppSpec

# Names of build variables end up in Dockerfile text (ARG lines, secret mounts) and in `docker build`
# arguments (`id=NAME,src=...`), so only plain identifiers are let through.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Manifests larger than this are not a real package.json or Procfile; refusing them keeps a hostile checkout
# from making the daemon read gigabytes.
_MAX_MANIFEST_BYTES = 1024 * 1024

DEFAULT_PORTS = {"python": 8000, "node": 3000, "go": 8080, "static": 80}
DEFAULT_DOCKERIGNORE = ".git\n"

PYTHON_IMAGE = "python:3.12-slim"
NODE_IMAGE = "node:22-slim"
GO_BUILD_IMAGE = "golang:1.22-bookworm"
GO_RUNTIME_IMAGE = "debian:bookworm-slim"
STATIC_IMAGE = "busybox:1.36"


@dataclass(frozen=True)
class BuildPlan:
    """What to hand to the build runner.

    ``dockerfile`` is the repository's Dockerfile, or, when ``generated`` holds text, the path outside the
    repository where that text is to be written (``write()`` does it). ``dockerignore`` is the text of a
    ``.dockerignore`` to write at the root of ``context_dir`` because the context has none.
    """

    context_dir: Path
    dockerfile: Path
    generated: str | None
    stack: str
    port: int | None
    dockerignore: str | None = None

    def write(self) -> None:
        """Write the generated Dockerfile and the missing ``.dockerignore`` (into the throwaway checkout)."""
        if self.generated is not None:
            self.dockerfile.parent.mkdir(parents=True, exist_ok=True)
            self.dockerfile.write_text(self.generated, encoding="utf-8")
        if self.dockerignore is not None:
            target = self.context_dir / ".dockerignore"
            # O_EXCL: never follow a symlink the checkout may have planted under that name.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.dockerignore)


def plan_build(
    repo_dir: Path,
    spec: AppSpec,
    *,
    build_secret_names: Sequence[str] = (),
    build_arg_names: Sequence[str] = (),
    generated_path: Path | None = None,
) -> BuildPlan:
    """Choose the Dockerfile for ``spec`` in the checkout at ``repo_dir``.

    ``build_secret_names`` are mounted (never stored) in the install and build steps of a generated
    Dockerfile; ``build_arg_names`` become ``ARG`` lines. ``generated_path`` is where a generated
    Dockerfile will be written; it must lie outside the repository (default: ``<repo_dir>.Dockerfile``
    beside the checkout).
    """
    root = repo_dir.resolve()
    if not root.is_dir():
        raise InvalidInput(f"The checkout {repo_dir} is not a directory.")
    if spec.port is not None:
        validate.port(spec.port)
    secrets = _check_names(build_secret_names, "build secret")
    args = _check_names(build_arg_names, "build variable")

    context_dir = _inside(root, spec.context or ".", "context")
    if not context_dir.is_dir():
        raise InvalidInput(
            f"The build context '{spec.context}' is not a directory in the repository: set --context to a "
            "folder that exists in the branch.",
            field="context",
        )
    dockerignore = None if _lexists(context_dir / ".dockerignore") else DEFAULT_DOCKERIGNORE

    if spec.dockerfile:
        dockerfile = _inside(root, spec.dockerfile, "dockerfile")
        if not dockerfile.is_file():
            raise InvalidInput(
                f"Dockerfile '{spec.dockerfile}' not found in the repository: check the path (it is relative "
                "to the repository root) or clear --dockerfile to use detection.",
                field="dockerfile",
            )
        return BuildPlan(context_dir, dockerfile, None, "dockerfile", _port(spec, dockerfile), dockerignore)

    if _lexists(context_dir / "Dockerfile"):
        dockerfile = _inside(root, os.path.relpath(context_dir / "Dockerfile", root), "dockerfile")
        if dockerfile.is_file():
            return BuildPlan(
                context_dir, dockerfile, None, "dockerfile", _port(spec, dockerfile), dockerignore
            )

    target = (generated_path or root.parent / f"{root.name}.Dockerfile").resolve()
    if target.is_relative_to(root):
        raise InvalidInput(f"The generated Dockerfile must be written outside the checkout, not to {target}.")

    gen = _Generator(root, context_dir, spec, secrets, args)
    stack, text = gen.generate()
    port = spec.port or DEFAULT_PORTS[stack]
    return BuildPlan(context_dir, target, text, stack, port, dockerignore)


# ---------------------------------------------------------------------------------------------- paths


def _inside(root: Path, relative: str, field: str) -> Path:
    """Resolve ``relative`` under ``root``, following symlinks, and refuse anything that lands outside."""
    if "\0" in relative:
        raise InvalidInput(f"The {field} path contains a NUL character.", field=field)
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise InvalidInput(
            f"The {field} path '{relative}' leads outside the repository (through '..' or a symlink): "
            "give a path inside the repository.",
            field=field,
        )
    return resolved


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _check_names(names: Sequence[str], what: str) -> list[str]:
    out: list[str] = []
    for name in names:
        if not _NAME.match(name):
            raise InvalidInput(
                f"The {what} name '{name}' cannot be used in a build: use letters, digits and '_' only, "
                "not starting with a digit."
            )
        if name not in out:
            out.append(name)
    return out


def _port(spec: AppSpec, dockerfile: Path) -> int | None:
    """The app's port: the spec's, else the first ``EXPOSE`` of the repository's Dockerfile."""
    if spec.port:
        return spec.port
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")[:_MAX_MANIFEST_BYTES]
    except OSError:
        return None
    match = re.search(r"^\s*EXPOSE\s+(\d{1,5})(?:/tcp)?\b", text, re.IGNORECASE | re.MULTILINE)
    if match and 0 < int(match.group(1)) < 65536:
        return int(match.group(1))
    return None


# ---------------------------------------------------------------------------------------------- generation


def _exec_form(argv: Sequence[str]) -> str:
    # ensure_ascii keeps every control character (newline, CR, NUL...) escaped inside the JSON string, so
    # the instruction stays on one line whatever the command holds.
    return json.dumps(list(argv), ensure_ascii=True)


def _shell(command: str) -> list[str]:
    return ["/bin/sh", "-c", command]


class _Generator:
    def __init__(self, root: Path, context: Path, spec: AppSpec, secrets: list[str], args: list[str]) -> None:
        self.root = root
        self.context = context
        self.spec = spec
        self.secrets = secrets
        self.args = args
        self.install = self._override(spec.install_command, "install_command")
        self.build = self._override(spec.build_command, "build_command")
        self.start = self._override(spec.start_command, "start_command")

    @staticmethod
    def _override(command: str | None, field: str) -> str | None:
        if command is None or not command.strip():
            return None
        if "\0" in command:
            raise InvalidInput(f"The {field} contains a NUL character: remove it.", field=field)
        return command

    def has(self, name: str) -> bool:
        return (self.context / name).is_file()

    def read(self, name: str) -> str:
        path = _inside(self.root, os.path.relpath(self.context / name, self.root), name)
        if path.stat().st_size > _MAX_MANIFEST_BYTES:
            raise InvalidInput(f"{name} is larger than {_MAX_MANIFEST_BYTES} bytes: that is not a manifest.")
        return path.read_text(encoding="utf-8", errors="replace")

    def generate(self) -> tuple[str, str]:
        stack = self.detect()
        body = {"go": self.go, "node": self.node, "python": self.python, "static": self.static}[stack]()
        return stack, f"# Generated by Mist for a {stack} app\n" + "\n".join(body) + "\n"

    def detect(self) -> str:
        if self.has("go.mod"):
            return "go"
        if self.has("package.json"):
            return "node"
        if self.has("requirements.txt") or self.has("pyproject.toml"):
            return "python"
        if self.has("index.html"):
            return "static"
        where = "the repository root" if self.context == self.root else f"'{self.spec.context}'"
        raise InvalidInput(
            f"Cannot tell how to build this app: {where} has no Dockerfile, go.mod, package.json, "
            "requirements.txt, pyproject.toml or index.html. Add a Dockerfile, set --dockerfile to one in the "
            "repository, or set --context to the folder that holds the app.",
            field="dockerfile",
        )

    # -- shared pieces

    def from_lines(self, image: str, *, alias: str | None = None, args: bool = True) -> list[str]:
        lines = [f"FROM {image}" + (f" AS {alias}" if alias else "")]
        if args:
            lines.extend(f"ARG {name}" for name in self.args)
        return lines

    def run(self, command: str) -> str:
        """A RUN step for code from the repository: build secrets are mounted for this step only and
        exported into its environment, so they never land in a layer or in the image's history."""
        mounts = "".join(f"--mount=type=secret,id={n},target=/run/secrets/{n} " for n in self.secrets)
        prelude = "".join(
            f'if [ -f /run/secrets/{n} ]; then {n}="$(cat /run/secrets/{n})"; export {n}; fi\n'
            for n in self.secrets
        )
        return f"RUN {mounts}{_exec_form(_shell(prelude + command))}"

    def port_lines(self, stack: str) -> list[str]:
        port = int(self.spec.port or DEFAULT_PORTS[stack])
        return [f"ENV PORT={port}", f"EXPOSE {port}"]

    def cmd(self, default: list[str] | None, what: str) -> str:
        if self.start is not None:
            return f"CMD {_exec_form(_shell(self.start))}"
        if default is None:
            raise InvalidInput(
                f"Cannot tell how to start this {what} app: set a start command (--start-command) or add a "
                "Procfile with a 'web:' line.",
                field="start_command",
            )
        return f"CMD {_exec_form(default)}"

    def procfile_web(self) -> str | None:
        if not self.has("Procfile"):
            return None
        for line in self.read("Procfile").splitlines():
            key, sep, command = line.partition(":")
            if sep and key.strip() == "web" and command.strip():
                return command.strip()
        return None

    # -- stacks

    def python(self) -> list[str]:
        lines = self.from_lines(PYTHON_IMAGE)
        lines += [
            "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
            "WORKDIR /app",
        ]
        if self.install is None and self.has("requirements.txt"):
            # Dependencies first: the install layer is reused until requirements.txt changes.
            lines += ["COPY requirements.txt ./", self.run("pip install --no-cache-dir -r requirements.txt")]
            lines += ["COPY . ."]
        elif self.install is None:
            # `pip install .` needs the package's sources, not only pyproject.toml, so the whole tree goes
            # in before it.
            lines += ["COPY . .", self.run("pip install --no-cache-dir .")]
        else:
            # A custom install command may need any file of the repository.
            lines += ["COPY . .", self.run(self.install)]
        if self.build is not None:
            lines.append(self.run(self.build))
        lines += self.port_lines("python")
        default: list[str] | None = None
        web = self.procfile_web()
        if web is not None:
            default = _shell(web)
        elif self.has("app.py"):
            default = ["python", "app.py"]
        elif self.has("main.py"):
            default = ["python", "main.py"]
        lines.append(self.cmd(default, "Python"))
        return lines

    def node(self) -> list[str]:
        try:
            manifest = json.loads(self.read("package.json"))
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"package.json is not valid JSON ({exc.msg}, line {exc.lineno}): fix it."
            ) from exc
        scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
        has_build_script = isinstance(scripts, dict) and bool(scripts.get("build"))

        lines = self.from_lines(NODE_IMAGE)
        lines.append("WORKDIR /app")
        if self.install is None:
            if self.has("package-lock.json"):
                lines += ["COPY package.json package-lock.json ./", self.run("npm ci")]
            else:
                lines += ["COPY package.json ./", self.run("npm install")]
            lines.append("COPY . .")
        else:
            lines += ["COPY . .", self.run(self.install)]
        if self.build is not None:
            lines.append(self.run(self.build))
        elif has_build_script:
            lines.append(self.run("npm run build"))
        # Set after install and build: NODE_ENV=production during `npm ci` would skip the devDependencies
        # that most build scripts need.
        lines.append("ENV NODE_ENV=production")
        lines += self.port_lines("node")
        lines.append(self.cmd(["npm", "start"], "Node"))
        return lines

    def go(self) -> list[str]:
        lines = self.from_lines(GO_BUILD_IMAGE, alias="build")
        lines += ["WORKDIR /src", "ENV CGO_ENABLED=0"]
        if self.install is None:
            manifests = "go.mod go.sum" if self.has("go.sum") else "go.mod"
            lines += [f"COPY {manifests} ./", self.run("go mod download"), "COPY . ."]
        else:
            lines += ["COPY . .", self.run(self.install)]
        lines.append(self.run(self.build if self.build is not None else "go build -o /out/app ."))
        lines += self.from_lines(GO_RUNTIME_IMAGE, args=False)
        lines += [
            # The slim runtime has no CA bundle; without it the app cannot make HTTPS calls.
            "COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
            "COPY --from=build /out/app /usr/local/bin/app",
        ]
        lines += self.port_lines("go")
        lines.append(self.cmd(["/usr/local/bin/app"], "Go"))
        return lines

    def static(self) -> list[str]:
        port = int(self.spec.port or DEFAULT_PORTS["static"])
        lines = self.from_lines(STATIC_IMAGE)
        lines += ["WORKDIR /www", "COPY . /www"]
        if self.install is not None:
            lines.append(self.run(self.install))
        if self.build is not None:
            lines.append(self.run(self.build))
        lines.append(f"EXPOSE {port}")
        lines.append(self.cmd(["httpd", "-f", "-v", "-p", str(port), "-h", "/www"], "static"))
        return lines
