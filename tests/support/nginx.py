"""A real nginx (Debian's) terminating mutual TLS in front of devreg's plain listener and
forwarding the client certificate as `$ssl_client_escaped_cert`."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.server import RunningServer, free_port, listening

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {data}/server.pem;
        ssl_certificate_key {data}/server.key;
        ssl_client_certificate {data}/ca.pem;
        ssl_verify_client on;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


class NginxFailed(RuntimeError):
    pass


@contextmanager
def nginx_in_front(upstream: RunningServer, workdir: Path) -> Iterator[int]:
    """nginx on a free port, proxying to `upstream`; yields the port. The caller checks
    that NGINX is not None first."""
    assert NGINX is not None
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=workdir,
            port=port,
            data=upstream.data_dir,
            upstream=upstream.base_url.rsplit(":", 1)[1],
        )
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (workdir / "error.log").read_text(errors="replace")
                raise NginxFailed(f"nginx did not start ({process.returncode}):\n{log}")
            time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
