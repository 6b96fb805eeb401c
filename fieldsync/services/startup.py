"""What ``fieldsync serve`` prints and starts next to the WSGI server."""

from __future__ import annotations

import gc

from flask import Flask

from fieldsync.services import demo as demo_service
from fieldsync.services import devices
from fieldsync.services import forms as forms_service

DEMO_OFFICER = "ion.popescu"


def banner(app: Flask, base_url: str, *, demo: bool) -> list[str]:
    lines = [f"FieldSync listening on {base_url} (health: {base_url}/healthz)"]
    if demo:
        with app.app_context():
            credentials = demo_service.read_credentials(app.config["DATA_DIR"])
            for username, entry in credentials.items():
                lines.append(f"log in: {username} / {entry['password']} ({entry['role']}) "
                             f"at {base_url}/api/v1/auth/login")
            issued = devices.issue_code(DEMO_OFFICER, 24 * 3600)
        lines.append(f"enrolment code for {DEMO_OFFICER}'s tablet: {issued.code} (valid 24 h)")
        lines.append(f"  fieldsync-client enroll --server {base_url} --code {issued.code}")
    return lines


def tune_runtime() -> None:
    """Fewer, later garbage collections in a long-running server.

    The benchmark showed pull p99 spikes of 60-86 ms on PostgreSQL coming from the cyclic
    garbage collector, not the query (0.17 ms); freezing the start-up objects and raising the
    first-generation threshold removed them (bench/README.md)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def start_background_jobs(app: Flask, *, sole_process: bool = True) -> list[str]:
    """Finish envelopes a crash left unprocessed, then start the per-process scheduler.

    ``sole_process`` (``fieldsync serve``): nothing can be in flight, so every stored envelope
    is finished now. A gunicorn worker (``fieldsync.wsgi``) starts while its siblings may be
    serving pushes, so it leaves envelopes younger than ``jobs.IN_FLIGHT_SECONDS`` to the
    requests that stored them (the periodic job takes them if those requests died).
    """
    from fieldsync import jobs

    tune_runtime()
    with app.app_context():
        forms_service.check_settings()
    done = jobs.recover(app, min_age_seconds=0 if sole_process else jobs.IN_FLIGHT_SECONDS)
    jobs.start(app)
    return [f"recovered {done} envelope(s) left unprocessed by a crash"] if done else []
