"""Services hold the rules. They never touch ``request`` or render HTTP; each public call is one
unit of work and commits it (or raises a :class:`fieldsync.errors.FieldsyncError` and changes
nothing)."""
