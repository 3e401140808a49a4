"""The REST API: a Falcon WSGI app over the core's use cases (see ``app.create_app``)."""
