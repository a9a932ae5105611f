"""Errors of the services layer, classified for the task that runs a handler."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a service raises."""

    retryable = False


class StoreUnavailable(ServiceError):
    """A backing store could not answer (timeout, connection refused): worth a retry."""

    retryable = True
