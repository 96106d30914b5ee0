"""Who is calling: broker tokens, OIDC tokens, gateway headers and service keys to a subject."""
