"""Tests of the ``commerce`` command line, in process and against a real waitress process."""
