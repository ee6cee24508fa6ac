"""`vmbundle-controller`: the start method of svc:/system/vmbundle/controller.

The instance's duration is `contract`: the start method forks the controller and
returns 0 once the controller serves its local API (or the controller's own exit
status, 96 for a bad host configuration, when it cannot), so `online` means the
API answers. `--foreground` runs it in the caller's process, for development.
SIGTERM (SMF's `:kill` stop) ends it; guests run on, in their own contracts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from vmbundle import settings as host_settings
from vmbundle import users
from vmbundle.atomic import write_atomic
from vmbundle.controller import api, log, tickets, tls
from vmbundle.controller import web as web_app
from vmbundle.controller.daemon import Controller
from vmbundle.controller.sessions import Sessions
from vmbundle.controller.tickets import Tickets
from vmbundle.controller.watch import RootWatcher
from vmbundle.errors import SMF_EXIT_ERR_CONFIG, ConfigError, VmbundleError
from vmbundle.service.controller import ControllerPaths
from vmbundle.settings import HostSettings

READY = b"ready\n"


class AlreadyRunning(VmbundleError):
    """Another controller holds this run directory."""


def _prepare_dir(paths: ControllerPaths) -> int:
    """The controller's directory, 0700, locked for as long as this process lives."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.dir, 0o700)
    fd = os.open(paths.dir / "controller.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(
            f"{paths.dir}: another vmbundle controller runs for this run directory"
        ) from None
    return fd


async def serve(settings: HostSettings, ready_fd: int | None) -> int:
    logger = log.get()
    paths = ControllerPaths.under(settings.run_dir)
    lock_fd = _prepare_dir(paths)
    ctl = Controller(settings, logger)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nudges = ctl.open_nudges()
    watcher = RootWatcher(loop, ctl.bundle_event)
    watcher.start()
    # A request still running at stop gets a few seconds, not aiohttp's minute:
    # SMF's stop method times out at 60 s.
    runner = web.AppRunner(
        api.app(ctl), handle_signals=False, access_log=None, shutdown_timeout=3.0
    )
    await runner.setup()
    with contextlib.suppress(FileNotFoundError):
        paths.api_socket.unlink()
    site = web.UnixSite(runner, str(paths.api_socket))
    await site.start()
    os.chmod(paths.api_socket, 0o600)
    web_runner = await _serve_web(ctl, settings, paths) if settings.web_enabled else None
    logger.info("controller.serving", api=str(paths.api_socket), pid=os.getpid())
    if ready_fd is not None:
        os.write(ready_fd, READY)
        os.close(ready_fd)

    def after_pass() -> None:
        watcher.follow(ctl.watched_dirs())

    ctl.after_pass = after_pass
    looping = asyncio.create_task(ctl.run_forever(), name="reconcile")
    await stop.wait()
    logger.info("controller.stopping")
    ctl.bus.close()
    looping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await looping
    await ctl.close()
    await runner.cleanup()
    if web_runner is not None:
        await web_runner.cleanup()
    watcher.stop()
    loop.remove_reader(nudges.fileno())
    nudges.close()
    for p in (paths.api_socket, paths.nudge_socket):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    os.close(lock_fd)
    return 0


async def _serve_web(
    ctl: Controller, settings: HostSettings, paths: ControllerPaths
) -> web.AppRunner:
    """The web console on its TCP address: HTTPS beyond loopback (controller.tls)."""
    ssl_context = tls.context(settings)
    application = web_app.app(
        ctl,
        Sessions(lambda: users.load(settings.users_file)),
        Tickets(tickets.load_key(paths.dir / "ticket.key")),
        secure=ssl_context is not None,
    )
    runner = web.AppRunner(application, handle_signals=False, access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_listen, settings.web_port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise VmbundleError(
            f"web console: cannot listen on {settings.web_listen}:{settings.web_port}: "
            f"{exc.strerror}; set [web] port (or enabled = false) in the host configuration"
        ) from None
    scheme = "https" if ssl_context is not None else "http"
    port = next(iter(runner.addresses))[1]  # the one bound, when port 0 asked for any
    host = f"[{settings.web_listen}]" if ":" in settings.web_listen else settings.web_listen
    url = f"{scheme}://{host}:{port}/"
    write_atomic(paths.web_url, url.encode() + b"\n", mode=0o644, durable=False)
    log.get().info("web.serving", url=url)
    return runner


def _run(settings: HostSettings, ready_fd: int | None) -> int:
    try:
        return asyncio.run(serve(settings, ready_fd))
    except VmbundleError as exc:
        log.get().error("controller.failed", error=str(exc))
        print(f"vmbundle-controller: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


def _detached(settings: HostSettings) -> int:
    """Fork; the child is the controller, the parent returns once it serves."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        code = 1
        try:
            code = _run(settings, w)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        said = pipe.read(len(READY))
    if said == READY:
        return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) or 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vmbundle-controller", description="The vmbundle controller (run by SMF)."
    )
    parser.add_argument(
        "--foreground", action="store_true", help="run in this process until SIGTERM"
    )
    args = parser.parse_args(argv)
    log.configure()
    try:
        settings = host_settings.load(None)
    except ConfigError as exc:
        print(f"vmbundle-controller: {exc}", file=sys.stderr, flush=True)
        return SMF_EXIT_ERR_CONFIG
    if args.foreground:
        return _run(settings, None)
    return _detached(settings)


def run() -> None:
    code: Any = main()
    sys.exit(code)
