"""nginx as the mutual-TLS *client* of the server under test: wrk cannot present a client
certificate, so wrk speaks plain HTTP (kept alive) to nginx on the load core, and nginx
speaks TLS with a device's certificate to the server.

Two listeners, one per mTLS scenario:
- `kept_alive`: an upstream pool of kept-alive TLS connections (`keepalive`, HTTP/1.1,
  no `Connection: close`): after the first requests, no handshakes at all;
- `new_connection`: no upstream pool and no TLS session reuse, so every request is a new
  TCP connection, a full handshake (client certificate included) and one request.
The same configuration fronts devreg and the raw TLS baseline: both pay the same client.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import cpu_seconds, descendants, free_port, pinned

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# TLS 1.3 on both sides: nginx 1.22's default client protocols stop at 1.2; naming the
# version keeps devreg and the baseline on the same handshake whatever their defaults.
TLS_PROTOCOLS = "TLSv1.3"

CONFIG = """
daemon off;
master_process {master};
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # wrk's connections stay open for the whole run (nginx closes after 1000 by default)
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    proxy_ssl_certificate {cert};
    proxy_ssl_certificate_key {key};
    proxy_ssl_protocols {protocols};
    proxy_connect_timeout 10s;
    upstream kept_alive {{
        server 127.0.0.1:{upstream};
        keepalive {connections};
        keepalive_requests 100000000;
        # below the servers' own 30 s: nginx drops an idle connection before the server
        # closes it, so a request never races a close between two runs
        keepalive_timeout 20s;
    }}
    server {{
        listen 127.0.0.1:{kept_alive_port} reuseport;
        location / {{
            proxy_pass https://kept_alive;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{new_connection_port} reuseport;
        location / {{
            # no pool: HTTP/1.0 with Connection: close, and no session resumption, so each
            # request costs a full handshake with the client certificate
            proxy_pass https://127.0.0.1:{upstream};
            proxy_ssl_session_reuse off;
        }}
    }}
}}
"""


@dataclass
class TlsClient:
    """A running nginx: its two plain-HTTP ports and its process (for its CPU time)."""

    kept_alive_url: str
    new_connection_url: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        return cpu_seconds(descendants(self.process.pid))


@contextmanager
def tls_client(
    upstream_port: int,
    cert: Path,
    key: Path,
    workdir: Path,
    cores: str | None,
    workers: int = 1,
    connections: int = 32,
) -> Iterator[TlsClient]:
    workdir.mkdir(parents=True, exist_ok=True)
    kept_alive_port, new_connection_port = free_port(), free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        CONFIG.format(
            master="on" if workers > 1 else "off",
            workers=workers,
            tmp=workdir,
            cert=cert,
            key=key,
            protocols=TLS_PROTOCOLS,
            upstream=upstream_port,
            connections=connections,
            kept_alive_port=kept_alive_port,
            new_connection_port=new_connection_port,
        )
    )
    argv = [NGINX, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    process = subprocess.Popen(
        pinned(argv, cores), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        _wait_listening(process, [kept_alive_port, new_connection_port], workdir)
        yield TlsClient(
            f"http://127.0.0.1:{kept_alive_port}",
            f"http://127.0.0.1:{new_connection_port}",
            process,
        )
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], ports: list[int], workdir: Path) -> None:
    deadline = time.monotonic() + 15
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "error.log").read_text(errors="replace")
                    raise RuntimeError(f"nginx did not start:\n{log}") from None
                time.sleep(0.05)


def version() -> str:
    done = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip().removeprefix("nginx version: ")
