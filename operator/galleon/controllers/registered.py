"""Importing this module registers every galleon controller's kopf handlers."""
