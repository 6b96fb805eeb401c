"""WSGI entry point for external servers: ``gunicorn -w 4 'fieldsync.wsgi:app'``.

Creates the application from the environment and starts this worker's recovery job. Other
workers may already be serving pushes, so the start-up recovery leaves envelopes stored in the
last ``IN_FLIGHT_SECONDS`` to the requests that stored them.
"""

from fieldsync import create_app
from fieldsync.services.startup import start_background_jobs

app = create_app()
start_background_jobs(app, sole_process=False)
