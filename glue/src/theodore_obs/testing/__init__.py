"""Helpers for testing against the stack: local receivers standing in for Slack and PagerDuty."""

from .receivers import Delivery, Receivers

__all__ = ["Delivery", "Receivers"]
