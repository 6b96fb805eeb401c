"""Background jobs (APScheduler), one scheduler per process in ``app.extensions``.

The recovery job finishes envelopes that were stored but not processed (a crash or kill
between receipt and reconciliation). It is safe to run in every worker at once: processing
locks each envelope row and an accepted envelope is never applied again.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from fieldsync.extensions import db

log = logging.getLogger(__name__)
EXTENSION = "fieldsync.scheduler"


# The periodic job leaves envelopes younger than this to the request that stored them.
IN_FLIGHT_SECONDS = 30


def recover(app: Flask, *, min_age_seconds: float = 0) -> int:
    from fieldsync.services import ingest

    with app.app_context():
        try:
            done = ingest.process_pending(min_age_seconds=min_age_seconds)
        finally:
            db.session.remove()
    if done:
        log.warning("recovered %d stored envelope(s) left unprocessed", done)
    return done


def start(app: Flask) -> BackgroundScheduler | None:
    interval = float(app.config["RECOVERY_INTERVAL"])
    if interval <= 0 or EXTENSION in app.extensions:
        return app.extensions.get(EXTENSION)
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(recover, "interval", args=[app], seconds=interval, id="recover",
                      kwargs={"min_age_seconds": IN_FLIGHT_SECONDS},
                      max_instances=1, coalesce=True)
    scheduler.start()
    app.extensions[EXTENSION] = scheduler
    return scheduler
