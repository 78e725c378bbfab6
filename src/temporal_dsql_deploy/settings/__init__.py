"""Settings: the one typed settings object, .env files, and the environment each process gets from it."""
