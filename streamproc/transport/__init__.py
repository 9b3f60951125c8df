"""redis-py set-up, the Redis primitives the daemons build on, and the event loop they run on."""
