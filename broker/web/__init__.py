"""The HTTP edge: the app and its lifespan, middleware, routes, problem rendering, OpenAPI."""
