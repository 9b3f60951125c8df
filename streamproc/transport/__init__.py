"""redis-py set-up and the Redis primitives the daemons build on."""
