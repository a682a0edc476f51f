"""Repositories without a Dockerfile: Mist generates one for the stack it finds, shows it in the log, and
the result deploys and serves. The official base images are local stand-ins (tests/images.py)."""

from __future__ import annotations

import pytest
from mistkit import deploy_and_wait, fetch, log_text

from mist_core.models import AppSpec, DeploymentState, HealthCheck

pytestmark = pytest.mark.docker

PYTHON_APP = """\
import http.server, os

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from python"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("", int(os.environ["PORT"])), Hello).serve_forever()
"""

NODE_SERVER = """\
const http = require("http");
http.createServer((req, res) => res.end("hello from node")).listen(process.env.PORT);
"""

GO_MAIN = """\
package main

import (
\t"net/http"
\t"os"
)

func main() {
\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello from go")) })
\thttp.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
"""

STACKS = {
    "python": (
        {"requirements.txt": "# no dependencies\n", "app.py": PYTHON_APP},
        "hello from python",
        "python",
    ),
    "node": (
        {
            "package.json": '{"name": "hello", "version": "1.0.0", "scripts": {"start": "node server.js"}}\n',
            "server.js": NODE_SERVER,
        },
        "hello from node",
        "node",
    ),
    "go": ({"go.mod": "module example.com/hello\n\ngo 1.19\n", "main.go": GO_MAIN}, "hello from go", "go"),
    "static": ({"index.html": "hello from a static site"}, "hello from a static site", "static"),
}


@pytest.mark.parametrize("stack", sorted(STACKS))
async def test_a_repository_without_a_dockerfile_gets_a_generated_one_that_deploys_and_serves(
    mist, git_repo, project_name, standin_images, stack
):
    files, expected, name = STACKS[stack]
    repo = git_repo(files)
    ref = f"{project_name}/{stack}"
    await mist.projects.create(project_name)
    await mist.apps.create(
        ref, AppSpec(git_url=str(repo), health=HealthCheck(type="http", path="/", interval=0.3, retries=60))
    )
    dep = await deploy_and_wait(mist, ref)
    log = await log_text(mist, dep.id)
    assert dep.state == DeploymentState.live, log
    assert f"generated one for a {name} app" in log
    assert "FROM " in log  # the generated Dockerfile is shown
    app = await mist.apps.get(ref)
    port = {"python": 8000, "node": 3000, "go": 8080, "static": 80}[stack]
    assert await fetch(app.container_name, port=port) == expected
