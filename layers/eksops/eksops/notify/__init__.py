"""Notifications: the message envelope every function publishes, the SNS publisher, and Slack delivery."""

from eksops.notify.publish import Message, Publisher, Severity

__all__ = ["Message", "Publisher", "Severity"]
