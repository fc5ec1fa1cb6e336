"""What a process needs at run time: settings, the database, Redis and the encryption key."""

from __future__ import annotations

from functools import cached_property

import redis

from .crypto import load_key
from .db import Database
from .settings import Settings


class Runtime:
    def __init__(self, settings: Settings):
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set (the `cartrecovery` CLI starts one)")
        self.settings = settings

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url)

    @cached_property
    def redis(self) -> redis.Redis:
        if not self.settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (the `cartrecovery` CLI starts one)")
        return redis.Redis.from_url(self.settings.redis_url)

    @cached_property
    def encryption_key(self) -> bytes:
        return load_key(self.settings.encryption_key, self.settings.secret_key)
