"""``hanet serve``: the search API and web page over an index (uvicorn, 127.0.0.1 by default).

Example::

    hanet serve idx                       # http://127.0.0.1:8000/
    hanet serve idx --port 9000 --max-concurrency 2 --max-pending 64
"""

from __future__ import annotations

from hanet import options

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="the index directory (opened read-only)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer requests addressed to this host name (repeatable; '*': any). "
                             "By default the server answers its IP addresses, localhost and the name given "
                             "as --host (and this machine's name when --host is a wildcard address)")
    parser.add_argument("--port", type=options.PORT, default=8000, help="port (default 8000)")
    parser.add_argument("--max-query-chars", type=options.COUNT, default=500, help="longest query (default 500)")
    parser.add_argument("--max-k", type=options.COUNT, default=100, help="largest k (default 100)")
    parser.add_argument("--max-candidates", type=options.COUNT, default=5000, help="largest candidate count (default 5000)")
    parser.add_argument("--max-concurrency", type=options.COUNT, default=2, help="searches computed at once (default 2)")
    parser.add_argument("--max-pending", type=options.COUNT, default=64,
                        help="requests admitted at once; more get 503 (default 64)")
    parser.add_argument("--no-exhaustive", action="store_true", help="refuse mode=exhaustive")
    parser.add_argument("--threads", type=options.integer(1, 1024), help="torch threads per search (default: cores / max-concurrency)")
    parser.add_argument("--engine-url", metavar="URL", help="an engine-backed index's Qdrant at this URL instead "
                        "of the one the index records")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                        help="how much the server logs (default warning)")


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from hanet.errors import HanetError
    from hanet.serve.app import ServeLimits, create_app, default_threads

    if not 0 < args.port < 65536:
        raise HanetError(f"--port must be in 1..65535, not {args.port}")
    limits = ServeLimits(max_query_chars=args.max_query_chars, max_k=args.max_k, max_candidates=args.max_candidates,
                         max_concurrency=args.max_concurrency, max_pending=args.max_pending,
                         allow_exhaustive=not args.no_exhaustive)
    torch.set_num_threads(args.threads or default_threads(args.max_concurrency))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"hanet serve: warning: binding {args.host}: the API is reachable from other machines "
              f"(it has no authentication)", file=sys.stderr)
    from hanet.index.search import SearchIndex

    app = create_app(SearchIndex.open(args.index, max_query_chars=limits.max_query_chars, engine_url=args.engine_url),
                     limits, allowed_hosts=host_names(args.host, args.allow_host))
    index = app.state.index
    sock = listen(args.host, args.port)  # before saying "serving": a busy port is an error, not a lie
    print(f"hanet serve: {index.num_videos} videos from {args.index} on http://{args.host}:{args.port}/",
          file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, access_log=False))
    server.run(sockets=[sock])
    return 0


def host_names(host: str, extra: list[str]) -> list[str]:
    """Host names the server answers besides addresses and localhost: ``--host`` when it is a
    name, this machine's names when it binds every address, and ``--allow-host``."""
    import ipaddress
    import socket

    names = list(extra)
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        names.append(host)
        wildcard = False
    if wildcard:
        names += [socket.gethostname(), socket.getfqdn()]
    return names


def listen(host: str, port: int):
    """A listening socket on ``host:port``; HanetError naming the address if it cannot be had."""
    import socket

    from hanet.errors import HanetError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise HanetError(f"--host {host!r}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "address already in use (another server listens there)" if exc.errno == 98 else exc.strerror
        raise HanetError(f"cannot listen on {host}:{port}: {why}; choose another --port") from None
    sock.set_inheritable(True)
    return sock
