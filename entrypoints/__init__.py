"""What a person or a process starts: the WSGI app, the command line, the server."""
