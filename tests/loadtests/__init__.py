"""Tests of the measuring and load-test kit in loadtests/."""
