"""artdb.cli: the click command line, a thin layer over library functions in ``artdb.core``."""
