"""Test images, built locally (no registry can be reached here) and cached by tag.

``busybox_image()`` is a ``FROM scratch`` image with Debian's static busybox: it builds in about a second
and runs ``httpd``, ``nc`` and a shell, which is all most container tests need. The other functions build
stand-ins for the official images Mist's generated Dockerfiles name (``debian:bookworm-slim``,
``python:3.12-slim``, ``node:22-slim``, ``golang:1.22-bookworm``) from a Debian 12 base made with
``debootstrap``, so the product's defaults run unchanged. See docs/decisions/0001-test-images.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

DOCKER = "/usr/bin/docker"
BUSYBOX = "mist-test/busybox:1"
BUSYBOX_STANDIN = "busybox:1.36"
DEBIAN = "debian:bookworm-slim"
PYTHON = "python:3.12-slim"
NODE = "node:22-slim"
GOLANG = "golang:1.22-bookworm"
POSTGRES = "postgres:15"
MARIADB = "mariadb:10.11"
REDIS = "redis:7"
# The entrypoints of the database stand-ins (copied into their images).
STANDIN_FILES = Path(__file__).parent / "standins" / "images"

TEST_LABEL = "dev.mist.test"
# Images are rebuilt when their recipe changes, not only when the tag is missing.
RECIPE_LABEL = "dev.mist.test.recipe"

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_PATH = "/etc/ssl/certs/ca-certificates.crt"

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageBuildError(RuntimeError):
    """A test image could not be built; the message carries the tail of the build output."""


def cache_dir() -> Path:
    """Where the Debian rootfs tarball and the build locks live (outside the repo, kept by `make clean`)."""
    env = os.environ.get("MIST_TEST_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "mist-test"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _docker_env() -> dict[str, str]:
    # Pin the engine and BuildKit whatever the caller's environment says (DOCKER_HOST, a v28 client on PATH).
    return {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_BUILDKIT": "1",
    }


def _run(args: list[str], *, what: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, env=_docker_env())
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        tail = "\n".join(output.splitlines()[-40:])
        raise ImageBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout.decode(errors="replace")


def image_exists(tag: str) -> bool:
    result = subprocess.run([DOCKER, "image", "inspect", tag], capture_output=True, env=_docker_env())
    return result.returncode == 0


def _image_recipe(tag: str) -> str | None:
    result = subprocess.run(
        [DOCKER, "image", "inspect", "--format", f'{{{{ index .Config.Labels "{RECIPE_LABEL}" }}}}', tag],
        capture_output=True,
        env=_docker_env(),
    )
    if result.returncode != 0:
        return None
    return result.stdout.decode().strip()


def _recipe_id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """Serialise builds of one image across threads and pytest processes sharing the engine."""
    path = cache_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def busybox_image() -> str:
    """Build (once) and return the tag of the scratch + static busybox image (also tagged ``busybox:1.36``)."""
    if image_exists(BUSYBOX) and image_exists(BUSYBOX_STANDIN):
        return BUSYBOX
    with _build_lock(BUSYBOX), tempfile.TemporaryDirectory() as tmp:
        if image_exists(BUSYBOX) and image_exists(BUSYBOX_STANDIN):
            return BUSYBOX
        ctx = Path(tmp)
        if not Path("/bin/busybox").is_file():
            raise ImageBuildError("/bin/busybox is missing: run `make system-packages` (busybox-static)")
        shutil.copy("/bin/busybox", ctx / "busybox")
        (ctx / "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            'RUN ["/bin/mkdir", "-p", "/tmp", "/www", "/etc"]\n'
            'CMD ["/bin/sh"]\n'
        )
        _run(
            [
                DOCKER,
                "build",
                "-q",
                "--label",
                f"{TEST_LABEL}=1",
                "-t",
                BUSYBOX,
                "-t",
                BUSYBOX_STANDIN,
                str(ctx),
            ],
            what=f"building {BUSYBOX}",
        )
    return BUSYBOX


# --- Debian base -------------------------------------------------------------------------------------------

# What debuerreotype (the tool behind the official debian images) adds to make a rootfs a "-slim" image.
_SLIM_FILES: dict[str, str] = {
    "etc/dpkg/dpkg.cfg.d/docker": (
        "path-exclude /usr/share/doc/*\n"
        "path-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\n"
        "path-exclude /usr/share/groff/*\n"
        "path-exclude /usr/share/info/*\n"
        "path-exclude /usr/share/lintian/*\n"
        "path-exclude /usr/share/linda/*\n"
        "path-exclude /usr/share/locale/*\n"
        "path-include /usr/share/locale/locale.alias\n"
    ),
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "force-unsafe-io\n",
    "etc/apt/apt.conf.d/docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\n'
        'Dir::Cache::srcpkgcache "";\n'
    ),
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    # No service may start during an image build (postgresql, redis... would otherwise try).
    "usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
}

_SLIM_PRUNE = ["usr/share/doc", "usr/share/man", "usr/share/groff", "usr/share/info", "usr/share/lintian",
               "usr/share/linda", "usr/share/locale"]  # fmt: skip
_ROOTFS_VERSION = "1"


def debian_mirrors() -> tuple[str, str]:
    """The Debian mirror and security mirror this machine's apt uses (``MIST_TEST_DEBIAN_MIRROR`` overrides)."""
    mirror = os.environ.get("MIST_TEST_DEBIAN_MIRROR")
    security = os.environ.get("MIST_TEST_DEBIAN_SECURITY_MIRROR")
    found: list[str] = []
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.name.endswith(".list"):
            found += re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm", text, re.M)
        elif path.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                if "bookworm" in fields.get("Suites", "") and fields.get("Enabled", "yes") != "no":
                    found += fields.get("URIs", "").split()
    uris = [u.rstrip("/") for u in found if u.startswith(("http://", "https://"))]
    mirror = mirror or next((u for u in uris if u.endswith("/debian")), DEFAULT_MIRROR)
    security = security or next((u for u in uris if u.endswith("/debian-security")), DEFAULT_SECURITY_MIRROR)
    return mirror, security


def _debian_sources(mirror: str, security: str) -> str:
    return (
        "Types: deb\n"
        f"URIs: {mirror}\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        f"URIs: {security}\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def _slim(rootfs: Path, mirror: str, security: str) -> None:
    for rel, content in _SLIM_FILES.items():
        target = rootfs / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    (rootfs / "usr/sbin/policy-rc.d").chmod(0o755)
    for rel in _SLIM_PRUNE:
        top = rootfs / rel
        if not top.is_dir():
            continue
        for child in top.iterdir():
            if rel == "usr/share/doc" and child.is_dir() and not child.is_symlink():
                for item in child.iterdir():
                    if item.name != "copyright":
                        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            elif rel == "usr/share/locale" and child.name == "locale.alias":
                continue
            elif child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(_debian_sources(mirror, security))
    # Docker provides these at run time; the host's values must not leak into the image.
    for rel in ("etc/resolv.conf", "etc/hostname"):
        (rootfs / rel).unlink(missing_ok=True)
    (rootfs / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    (rootfs / "etc/machine-id").write_text("")
    for log in (rootfs / "var/log").rglob("*"):
        if log.is_file() and not log.is_symlink():
            log.write_bytes(b"")
    for rel in ("var/lib/apt/lists", "var/cache/apt", "tmp", "dev", "proc", "sys", "run"):
        top = rootfs / rel
        if top.is_dir():
            for child in top.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def _rootfs_tarball() -> Path:
    mirror, security = debian_mirrors()
    return cache_dir() / f"debian-bookworm-minbase-{_ROOTFS_VERSION}-{_recipe_id(mirror, security)}.tar"


def debian_rootfs() -> Path:
    """A cached tarball of a slimmed ``debootstrap --variant=minbase bookworm`` (needs root the first time)."""
    tarball = _rootfs_tarball()
    if tarball.is_file():
        return tarball
    with _build_lock(tarball.name):
        if tarball.is_file():
            return tarball
        if os.geteuid() != 0:
            raise ImageBuildError(
                "building the debian:bookworm-slim stand-in needs root (debootstrap): run the tests as root "
                "once, or as root: .venv/bin/python tests/images.py"
            )
        if not shutil.which("debootstrap"):
            raise ImageBuildError("debootstrap is missing: run `make system-packages` (as root)")
        mirror, security = debian_mirrors()
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            rootfs = Path(tmp) / "rootfs"
            _run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
                what=f"debootstrap bookworm from {mirror}",
            )
            _slim(rootfs, mirror, security)
            partial = Path(tmp) / "rootfs.tar"
            _run(
                ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."],
                what="packing the Debian rootfs",
            )
            partial.replace(tarball)
    return tarball


def debian_image() -> str:
    """Build (once) and return ``debian:bookworm-slim``: a Debian 12 minbase imported from a tarball."""
    # The recipe is known before the tarball exists, so a machine that has the image needs no debootstrap.
    recipe = _recipe_id(_rootfs_tarball().name)
    if _image_recipe(DEBIAN) == recipe:
        return DEBIAN
    with _build_lock(DEBIAN):
        if _image_recipe(DEBIAN) == recipe:
            return DEBIAN
        rootfs = debian_rootfs()
        changes = [
            f"LABEL {TEST_LABEL}=1",
            f"LABEL {RECIPE_LABEL}={recipe}",
            f"ENV PATH={PATH_ENV}",
            'CMD ["bash"]',
        ]
        args = [DOCKER, "import"]
        for change in changes:
            args += ["--change", change]
        _run([*args, str(rootfs), DEBIAN], what=f"importing {DEBIAN}")
    return DEBIAN


# --- Language images on top of the Debian base ----------------------------------------------------------------

_CA_COPY = (
    # The bundle at the standard path serves Go, git, curl and openssl; the copy under
    # /usr/local/share/ca-certificates keeps it in the bundle when a later build step reinstalls ca-certificates.
    f"COPY ca-certificates.crt {CA_PATH}\n"
    "COPY ca-certificates.crt /usr/local/share/ca-certificates/mist-test-host.crt\n"
)

_APT_INSTALL = (
    "RUN set -eux; apt-get update; "
    "apt-get install -y --no-install-recommends {packages}; "
    "rm -rf /var/lib/apt/lists/*{extra}\n"
)


def _python_dockerfile() -> str:
    return (
        f"FROM {DEBIAN}\n"
        + _CA_COPY
        + f"ENV LANG=C.UTF-8 PIP_CERT={CA_PATH} REQUESTS_CA_BUNDLE={CA_PATH} SSL_CERT_FILE={CA_PATH}\n"
        + _APT_INSTALL.format(
            packages="python3 python3-pip python3-venv ca-certificates netbase tzdata",
            extra=(
                # pip installs into the system, as in the official image (no PEP 668 marker there).
                "; rm -f /usr/lib/python3*/EXTERNALLY-MANAGED"
                "; ln -sf /usr/bin/python3 /usr/local/bin/python"
                "; ln -sf /usr/bin/pip3 /usr/local/bin/pip"
                "; ln -sf /usr/bin/pip3 /usr/local/bin/pip3"
                "; python --version; pip --version"
            ),
        )
        + 'CMD ["python3"]\n'
    )


def _node_dockerfile() -> str:
    return (
        f"FROM {DEBIAN}\n"
        + _CA_COPY
        + f"ENV NODE_EXTRA_CA_CERTS={CA_PATH} SSL_CERT_FILE={CA_PATH}\n"
        + _APT_INSTALL.format(
            packages="nodejs npm ca-certificates",
            extra=(
                # The official image has a `node` user (uid 1000) that Dockerfiles switch to with `USER node`.
                "; groupadd --gid 1000 node"
                "; useradd --uid 1000 --gid node --shell /bin/bash --create-home node"
                "; node --version; npm --version"
            ),
        )
        + 'CMD ["node"]\n'
    )


def _golang_dockerfile() -> str:
    return (
        f"FROM {DEBIAN}\n" + _CA_COPY + f"ENV SSL_CERT_FILE={CA_PATH} GOPATH=/go GOTOOLCHAIN=local "
        f"PATH=/go/bin:/usr/local/go/bin:{PATH_ENV}\n"
        + _APT_INSTALL.format(
            # gcc and libc6-dev: cgo is on by default, as in the official image.
            packages="golang-go ca-certificates git gcc libc6-dev make pkg-config netbase",
            extra=(
                "; ln -s /usr/lib/go /usr/local/go"
                '; mkdir -p "$GOPATH/src" "$GOPATH/bin"; chmod -R 1777 "$GOPATH"'
                "; go version"
            ),
        )
        + "WORKDIR /go\n"
        + 'CMD ["bash"]\n'
    )


def _build_on_debian(tag: str, dockerfile: str, files: dict[str, bytes] | None = None) -> str:
    """Build ``tag`` from ``dockerfile`` on the Debian base; ``files`` (name -> content) join the context."""
    base = debian_image()
    ca = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
    extra = files or {}
    recipe = _recipe_id(
        dockerfile,
        _image_recipe(base) or "",
        hashlib.sha256(ca).hexdigest(),
        *(f"{name}:{hashlib.sha256(content).hexdigest()}" for name, content in sorted(extra.items())),
    )
    if _image_recipe(tag) == recipe:
        return tag
    with _build_lock(tag):
        if _image_recipe(tag) == recipe:
            return tag
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(dockerfile)
            (ctx / "ca-certificates.crt").write_bytes(ca)
            for name, content in extra.items():
                (ctx / name).write_bytes(content)
                (ctx / name).chmod(0o755)
            _run(
                [DOCKER, "build", "--progress=plain", "--label", f"{TEST_LABEL}=1",
                 "--label", f"{RECIPE_LABEL}={recipe}", "-t", tag, str(ctx)],
                what=f"building {tag}",
            )  # fmt: skip
    return tag


def python_image() -> str:
    """Build (once) and return ``python:3.12-slim``: Debian's python3 with pip (system-wide) and venv."""
    return _build_on_debian(PYTHON, _python_dockerfile())


def node_image() -> str:
    """Build (once) and return ``node:22-slim``: Debian's nodejs and npm, and a ``node`` user."""
    return _build_on_debian(NODE, _node_dockerfile())


def golang_image() -> str:
    """Build (once) and return ``golang:1.22-bookworm``: Debian's Go (1.19) with git and a C toolchain."""
    return _build_on_debian(GOLANG, _golang_dockerfile())


# --- Database stand-ins: Debian's servers behind the official images' contracts --------------------------------


def _postgres_dockerfile() -> str:
    return (
        f"FROM {DEBIAN}\n"
        # No cluster from the package: the entrypoint makes one in PGDATA on the first start.
        + "RUN mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' "
        "> /etc/postgresql-common/createcluster.conf\n"
        + _APT_INSTALL.format(
            packages="postgresql-15 postgresql-client-15",
            extra=(
                "; mkdir -p /var/run/postgresql /var/lib/postgresql/data"
                "; chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql"
                "; chmod 3777 /var/run/postgresql"
            ),
        )
        + f"ENV LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:{PATH_ENV}\n"
        + "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
        + 'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        + "STOPSIGNAL SIGINT\n"
        + "EXPOSE 5432\n"
        + 'CMD ["postgres"]\n'
    )


def _mariadb_dockerfile() -> str:
    return (
        f"FROM {DEBIAN}\n"
        + _APT_INSTALL.format(
            packages="mariadb-server mariadb-client",
            extra=(
                # The package's own data directory and settings (bind to 127.0.0.1) are not the image's.
                "; rm -rf /var/lib/mysql; mkdir -p /var/lib/mysql /run/mysqld"
                "; chown -R mysql:mysql /var/lib/mysql /run/mysqld"
                "; printf '[mariadbd]\\nbind-address = 0.0.0.0\\nskip-name-resolve\\n' "
                "> /etc/mysql/mariadb.conf.d/99-standin.cnf"
            ),
        )
        + "COPY docker-entrypoint.sh healthcheck.sh /usr/local/bin/\n"
        + 'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        + "EXPOSE 3306\n"
        + 'CMD ["mariadbd"]\n'
    )


def _redis_dockerfile() -> str:
    return (
        f"FROM {DEBIAN}\n"
        + _APT_INSTALL.format(
            packages="redis-server redis-tools",
            extra="; mkdir -p /data; chown redis:redis /data",
        )
        + "WORKDIR /data\n"
        + "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
        + 'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        + "EXPOSE 6379\n"
        + 'CMD ["redis-server"]\n'
    )


def _standin_files(name: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((STANDIN_FILES / name).iterdir()) if p.is_file()}


def postgres_image() -> str:
    """Build (once) and return ``postgres:15``: Debian's PostgreSQL 15 behind the official entrypoint's contract."""
    return _build_on_debian(POSTGRES, _postgres_dockerfile(), _standin_files("postgres"))


def mariadb_image() -> str:
    """Build (once) and return ``mariadb:10.11``: Debian's MariaDB 10.11 behind the official entrypoint's
    contract, with ``healthcheck.sh``."""
    return _build_on_debian(MARIADB, _mariadb_dockerfile(), _standin_files("mariadb"))


def redis_image() -> str:
    """Build (once) and return ``redis:7``: Debian's Redis 7 run as the official image runs it."""
    return _build_on_debian(REDIS, _redis_dockerfile(), _standin_files("redis"))


# Two more tags of the PostgreSQL 15 line, for upgrades: a minor release (the same server, an image of its own)
# and a release whose server never starts (a broken image: the upgrade must roll back).
POSTGRES_MINOR = "postgres:15.99"
POSTGRES_BROKEN = "postgres:15.98"


def _tag_on(base: str, tag: str, lines: str) -> str:
    """Build ``tag`` as ``FROM base`` plus ``lines`` (cached by recipe, like every stand-in)."""
    dockerfile = f"FROM {base}\n{lines}"
    recipe = _recipe_id(dockerfile, _image_recipe(base) or "")
    if _image_recipe(tag) == recipe:
        return tag
    with _build_lock(tag), tempfile.TemporaryDirectory() as tmp:
        if _image_recipe(tag) != recipe:
            (Path(tmp) / "Dockerfile").write_text(dockerfile)
            _run(
                [DOCKER, "build", "--progress=plain", "--label", f"{TEST_LABEL}=1",
                 "--label", f"{RECIPE_LABEL}={recipe}", "-t", tag, tmp],
                what=f"building {tag}",
            )  # fmt: skip
    return tag


def postgres_minor_image() -> str:
    """``postgres:15.99``: the ``postgres:15`` stand-in as another image (a minor release of the same line)."""
    return _tag_on(postgres_image(), POSTGRES_MINOR, 'LABEL dev.mist.test.release="15.99"\n')


def postgres_broken_image() -> str:
    """``postgres:15.98``: a release of the 15 line whose server exits at once, never healthy."""
    return _tag_on(
        postgres_image(),
        POSTGRES_BROKEN,
        'ENTRYPOINT ["sh", "-c", "echo this release is broken >&2; exit 3"]\n',
    )


def database_standins() -> dict[str, str]:
    """Build every missing database stand-in (in parallel) and return their tags by engine."""
    builders: dict[str, Callable[[], str]] = {
        "postgres": postgres_image,
        "mariadb": mariadb_image,
        "redis": redis_image,
    }
    debian_image()
    with ThreadPoolExecutor(max_workers=len(builders)) as pool:
        futures = {name: pool.submit(build) for name, build in builders.items()}
        return {name: future.result() for name, future in futures.items()}


def all_standins() -> dict[str, str]:
    """Build every missing stand-in (the language images in parallel) and return their tags by short name."""
    builders: dict[str, Callable[[], str]] = {
        "python": python_image,
        "node": node_image,
        "golang": golang_image,
    }
    with ThreadPoolExecutor(max_workers=len(builders) + 1) as pool:
        busybox = pool.submit(busybox_image)
        debian = debian_image()
        futures = {name: pool.submit(build) for name, build in builders.items()}
        tags = {"busybox": BUSYBOX_STANDIN, "debian": debian}
        busybox.result()
        tags.update({name: future.result() for name, future in futures.items()})
    return tags


if __name__ == "__main__":
    import time

    start = time.monotonic()
    # `python tests/images.py databases` builds the database stand-ins too.
    tags = all_standins()
    if "databases" in sys.argv[1:]:
        tags.update(database_standins())
    for name, tag in tags.items():
        print(f"{name:8} {tag}")
    print(f"ready in {time.monotonic() - start:.0f} s")
