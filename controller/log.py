"""The controller's log: one JSON object a line on standard error, which svc.startd
sends to the instance's log (`svcs -L svc:/system/vmbundle/controller`).

Routed through stdlib logging, so what qemu.qmp, aiohttp and asyncio log lands in
the same lines. Context is bound per guest (`vm=`, `fmri=`); what happened is the
`event` key, as structlog has it (a QMP event's name goes in `qmp_event=`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(stream: TextIO = sys.stderr, level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.dict_tracebacks,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Every request on the local API would be a line; problems still are.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get(**context: Any) -> Any:
    return structlog.get_logger("vmbundle.controller").bind(**context)
