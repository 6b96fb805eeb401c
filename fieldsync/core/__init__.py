"""Pure modules shared by the server and the tablet client.

Nothing in this package imports Flask, SQLAlchemy or the server's models: the form engine,
the envelope crypto, the hybrid logical clock and the merge rules must run unchanged on a tablet.
"""
