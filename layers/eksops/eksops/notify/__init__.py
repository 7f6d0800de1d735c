"""Notifications: the message envelope every function publishes, and the SNS publisher."""

from eksops.notify.publish import Message, Publisher, Severity

__all__ = ["Message", "Publisher", "Severity"]
