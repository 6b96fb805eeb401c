"""FieldSync benchmarks: ``python -m bench {ingest,pull,rebuild,peer,profile,all}``.

Each scenario prints one line per figure (``name value unit``, optionally followed by
``# note``) and can write every figure to JSON. See ``bench/README.md``.
Nothing here is imported by the application or by its tests, except the smoke test.
"""
