"""AWS adapters: cached boto3 clients with retries, a client-side rate limiter, error helpers."""

from eksops.aws.clients import clear_client_cache, client, error_code, lazy_client
from eksops.aws.ratelimit import RateLimiter

__all__ = ["RateLimiter", "clear_client_cache", "client", "error_code", "lazy_client"]
