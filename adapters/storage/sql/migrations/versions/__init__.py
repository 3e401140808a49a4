"""One module per schema revision, applied in order by ``commerce db upgrade``."""
