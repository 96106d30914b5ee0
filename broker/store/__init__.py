"""Redis: the connection, every key name, the Lua scripts, and what is kept under those keys."""
